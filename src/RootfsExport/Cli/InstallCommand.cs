using System.CommandLine;
using System.Runtime.CompilerServices;

namespace RootfsExport.Cli;

/// <summary>
/// install: copies the running native program and the native libraries beside it (libe_sqlite3.so) to
/// &lt;prefix&gt;/bin, where it runs with no .NET SDK or runtime and no network (build tasks, PTXdist, users).
/// </summary>
public static class InstallCommand
{
    public static IEnumerable<Command> Create() => [Install()];

    private static Command Install()
    {
        var prefix = new Option<DirectoryInfo?>("--prefix") { Description = "install into PREFIX/bin (default: ~/.local)" };
        var cmd = new Command("install", "Install this native program as PREFIX/bin/rootfs-export (default ~/.local/bin), with the native libraries it loads")
        {
            prefix,
        };
        cmd.SetAction(parse =>
        {
            var dir = parse.GetValue(prefix)?.FullName ?? DefaultPrefix();
            foreach (var line in Run(dir)) Console.WriteLine(line);
            return 0;
        });
        return cmd;
    }

    private static string DefaultPrefix() =>
        Environment.GetEnvironmentVariable("HOME") is { Length: > 0 } home
            ? Path.Combine(home, ".local")
            : throw new UserFacingException("HOME is not set: pass --prefix");

    /// <summary>Copies the program and its libraries; each file is written beside its target and renamed over it,
    /// so a running copy (a watch, a server) keeps its old inode and a half-written binary is never on PATH.</summary>
    public static IEnumerable<string> Run(string prefix)
    {
        if (RuntimeFeature.IsDynamicCodeSupported)
            throw new UserFacingException("install copies the native program, and this is the JIT build: run ./rootfs-export install from the repository (it publishes the native program first)");
        var self = Environment.ProcessPath ?? throw new UserFacingException("cannot tell where this program is (no /proc?)");
        var from = Path.GetDirectoryName(self)!;
        var bin = Path.Combine(prefix, "bin");
        Directory.CreateDirectory(bin);
        var files = new List<string> { self };
        files.AddRange(Directory.EnumerateFiles(from, "*.so").Order());
        foreach (var file in files)
        {
            var target = Path.Combine(bin, Path.GetFileName(file));
            if (Path.GetFullPath(target) == Path.GetFullPath(file)) continue; // already running from there
            var tmp = target + ".tmp-install";
            File.Copy(file, tmp, overwrite: true);
            File.SetUnixFileMode(tmp, (UnixFileMode)0b111_101_101); // 0755: the publish leaves libe_sqlite3.so 0744
            File.Move(tmp, target, overwrite: true);
        }
        yield return $"installed {Path.Combine(bin, "rootfs-export")} ({files.Count - 1} native librar{(files.Count == 2 ? "y" : "ies")} beside it)";
        var path = Environment.GetEnvironmentVariable("PATH") ?? "";
        if (!path.Split(':').Any(p => p.Length > 0 && Path.GetFullPath(p).TrimEnd('/') == bin.TrimEnd('/')))
            yield return $"note: {bin} is not on PATH; add it, or set ROOTFS_EXPORT_BIN = \"{Path.Combine(bin, "rootfs-export")}\" for the bitbake class";
    }
}
