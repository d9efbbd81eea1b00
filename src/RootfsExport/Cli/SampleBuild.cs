namespace RootfsExport.Cli;

/// <summary>
/// The small OE-shaped build bundled in the repository (samples/oe-build, made by
/// samples/make-sample-build.py), used when no build environment is found.
/// </summary>
public static class SampleBuild
{
    public static string? Locate()
    {
        if (Environment.GetEnvironmentVariable("ROOTFS_EXPORT_SAMPLE_BUILD") is { Length: > 0 } fromEnv) return fromEnv;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir != null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "samples", "oe-build");
            if (Directory.Exists(candidate)) return candidate;
        }
        return null;
    }
}
