using RootfsExport.Posix;

namespace RootfsExport.ExportTree.Build;

/// <summary>
/// Finds a host tool the way a developer has it: an explicit path, the OE native sysroot of the
/// environment ($OECORE_NATIVE_SYSROOT), the build's sysroots-components/&lt;recipe&gt; and
/// qemu-helper-native's recipe-sysroot-native (what runqemu uses), PTXdist's sysroot-host, then PATH.
/// </summary>
public static class HostTools
{
    public static string? Locate(string binary, string nativeRecipe, string? explicitPath, string option, string? buildDir)
    {
        if (explicitPath != null)
            return File.Exists(explicitPath) ? Path.GetFullPath(explicitPath) : throw new UserFacingException($"{option} '{explicitPath}' does not exist");
        return Candidates(binary, nativeRecipe, buildDir).FirstOrDefault(File.Exists);
    }

    private static IEnumerable<string> Candidates(string binary, string nativeRecipe, string? buildDir)
    {
        if (Environment.GetEnvironmentVariable("OECORE_NATIVE_SYSROOT") is { Length: > 0 } native)
            yield return Path.Combine(native, "usr", "bin", binary);
        buildDir ??= Environment.GetEnvironmentVariable("BUILDDIR") is { Length: > 0 } b ? b : null;
        if (buildDir != null && Directory.Exists(buildDir))
        {
            foreach (var tmp in Directory.EnumerateDirectories(buildDir, "tmp*"))
            {
                yield return Path.Combine(tmp, "sysroots-components", "x86_64", nativeRecipe, "usr", "bin", binary);
                var work = Path.Combine(tmp, "work", "x86_64-linux", "qemu-helper-native");
                if (Directory.Exists(work))
                    foreach (var ver in Directory.EnumerateDirectories(work))
                        yield return Path.Combine(ver, "recipe-sysroot-native", "usr", "bin", binary);
            }
            foreach (var platform in Directory.EnumerateDirectories(buildDir, "platform-*"))
            {
                yield return Path.Combine(platform, "sysroot-host", "bin", binary);
                yield return Path.Combine(platform, "sysroot-host", "sbin", binary);
            }
        }
        if (ChildProcess.FindInPath(binary) is { } inPath) yield return inPath;
    }
}
