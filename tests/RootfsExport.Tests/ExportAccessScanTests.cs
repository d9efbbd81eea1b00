using System.Text.RegularExpressions;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Tests;

/// <summary>
/// Issue #20: engines reach export content only through ExportHandle / HostDirectory (*at() calls, openat2
/// RESOLVE_BENEATH), never by building a path below the export and handing it to System.IO, which follows
/// the symlinks a board plants. A source scan: every System.IO file call (File.*, Directory.*, FileStream,
/// FileInfo, DirectoryInfo, Path.Combine) in an engine project whose line names the export or its root is a
/// finding, unless the file is listed below with how many such lines it has and why they are not content.
/// A new finding fails with the line; route it through ExportHandle (or add it here with a reason).
/// </summary>
public sealed partial class ExportAccessScanTests
{
    private static readonly string[] Engines = ["ExportTree", "ExportEngine", "BootSpec", "Payload", "FeedWatcher", "BlockExport"];

    /// <summary>Lines that name the export but touch no content below it, by file: (count, why).</summary>
    private static readonly Dictionary<string, (int Count, string Why)> Allowed = new()
    {
        ["src/ExportTree/ExportCreator.cs"] = (12, "the export directory itself and its siblings (staging tree, swap journal): created, swapped and removed by rename; content is written through ExportWriter"),
        ["src/ExportTree/ExportHandle.cs"] = (1, "whether the export directory exists before its root is opened"),
        ["src/ExportTree/Nfs/UnfsdServer.cs"] = (1, "whether the export directory exists before unfsd is started on it"),
        ["src/ExportTree/PseudoRunner.cs"] = (1, "the state directory's private copy of etc/passwd and etc/group (read from the export through HostDirectory)"),
        ["src/ExportTree/Build/BuildLayout.cs"] = (3, "the build directory (image tarballs, default export path), not an export"),
        ["src/ExportTree/Build/PtxdistNfsroot.cs"] = (2, "PTXdist's platform root/ directory, an input of the build"),
        ["src/ExportEngine/ExportUpdater.cs"] = (3, "the export directory itself: its parent created, whether it exists or is empty before the image step"),
        ["src/BootSpec/BootEntries.cs"] = (1, "whether the export directory exists"),
        ["src/BootSpec/NbdEndpoint.cs"] = (1, "a block image file beside the export, given by the user"),
        ["src/Payload/ModulesPayload.cs"] = (1, "the modules directory's name for messages; it is opened with openat2 RESOLVE_BENEATH"),
        ["src/FeedWatcher/FeedScanner.cs"] = (3, "feed directories of the build"),
        ["src/FeedWatcher/FeedWatch.cs"] = (4, "feed directories and the watch socket of the build"),
        ["src/FeedWatcher/RpmHeader.cs"] = (2, "a temporary copy of the rpmdb (read from the export through the confined TargetTree) for rpm's own tools"),
        ["src/FeedWatcher/FeedUpdater.cs"] = (1, "the state directory's copy of the package being applied"),
        ["src/FeedWatcher/RpmState.cs"] = (2, "rpm records kept in the state directory"),
        ["src/FeedWatcher/RpmDatabase.cs"] = (6, "a temporary root for rpm --justdb; the export's rpmdb is read through the confined TargetTree, the new one handed back as bytes"),
        ["src/BlockExport/NbdServer.cs"] = (2, "block image files and nbdkit's run directory beside the export"),
        ["src/BlockExport/PiNetboot.cs"] = (3, "the TFTP root and block images, outside the export; the firmware path is only text"),
    };

    [GeneratedRegex(@"\b(File|Directory)\.[A-Z]\w*\(|new (FileStream|FileInfo|DirectoryInfo)\(|Path\.Combine\(")]
    private static partial Regex SystemIoCall();

    [GeneratedRegex(@"\b(export|exportDir|Export|canonical|root|Root|tree)\b")]
    private static partial Regex NamesTheExport();

    [Fact]
    public void Engines_touch_export_content_only_through_the_confined_handle()
    {
        var found = new Dictionary<string, List<string>>();
        foreach (var engine in Engines)
            foreach (var file in Directory.EnumerateFiles(Path.Combine(Repository.Root, "src", engine), "*.cs", SearchOption.AllDirectories))
            {
                var rel = Path.GetRelativePath(Repository.Root, file);
                if (rel.Contains("/obj/") || rel.Contains("/bin/")) continue;
                foreach (var line in File.ReadLines(file).Select(l => l.Trim()).Where(l => !l.StartsWith("//")))
                    if (SystemIoCall().IsMatch(line) && NamesTheExport().IsMatch(line))
                        (found.TryGetValue(rel, out var l) ? l : found[rel] = []).Add(line);
            }
        var problems = new List<string>();
        foreach (var (file, lines) in found)
        {
            int allowed = Allowed.TryGetValue(file, out var a) ? a.Count : 0;
            if (lines.Count > allowed)
                problems.Add($"{file}: {lines.Count} System.IO call(s) naming the export, {allowed} allowed; go through ExportHandle/HostDirectory:\n  " + string.Join("\n  ", lines));
        }
        foreach (var (file, a) in Allowed)
            if (found.GetValueOrDefault(file)?.Count is not { } n || n < a.Count)
                problems.Add($"{file}: allowed {a.Count} but found {found.GetValueOrDefault(file)?.Count ?? 0}: lower the count in {nameof(Allowed)}");
        Assert.True(problems.Count == 0, string.Join("\n", problems));
    }
}
