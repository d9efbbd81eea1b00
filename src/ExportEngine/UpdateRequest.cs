using RootfsExport.ExportTree.Build;

namespace RootfsExport.ExportEngine;

/// <summary>What one `update` does: the image's newest tarball, then the feeds (unless NoFeeds), then boot entries.</summary>
/// <param name="Install">packages to install from the feeds besides what the image has</param>
public sealed record UpdateRequest(BuildLayout Layout, string Image, string Export, IReadOnlyList<string> Install, bool NoFeeds);

/// <summary>How one update went: the exit code, and how many package files were still being written (watch retries those).</summary>
public readonly record struct UpdateOutcome(int ExitCode, int NotReady);
