using RootfsExport.Posix;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportTree;

/// <summary>
/// Runs programs under a real pseudo on an export's state (what runqemu-export-rootfs and poky-nfsroot's
/// nfs-cp do): finds pseudo (option, OE native sysroots, PATH), builds its environment, stops its server
/// afterwards so files.db is flushed before our own code reads it again.
/// </summary>
public sealed record PseudoRunner(string Binary, string Prefix)
{
    /// <summary>Finds pseudo: --pseudo, $OECORE_NATIVE_SYSROOT, the build's native sysroots, then PATH.</summary>
    public static PseudoRunner Locate(string? explicitPath, string? buildDir)
    {
        var binary = Build.HostTools.Locate("pseudo", "pseudo-native", explicitPath, "--pseudo", buildDir) ?? throw new UserFacingException(
            "pseudo not found: pass --pseudo PATH, run inside an OE build that has pseudo-native " +
            "(bitbake pseudo-native -c addto_recipe_sysroot, or qemu-helper-native), or install it (Debian/Ubuntu: apt install pseudo)");
        return new PseudoRunner(binary, Path.GetDirectoryName(Path.GetDirectoryName(binary)!)!);
    }

    /// <param name="untracked">paths pseudo must not record (our own pid and exports files): a row for a file
    /// we later delete without pseudo would be stale, and pseudo aborts clients when its inode is reused.</param>
    public Dictionary<string, string?> EnvironmentFor(string export, params string[] untracked)
    {
        var state = PseudoState.ForExport(export);
        var ignore = untracked.Concat((System.Environment.GetEnvironmentVariable("PSEUDO_IGNORE_PATHS") ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries));
        return new Dictionary<string, string?>
        {
            // pseudo since 2023 tracks only PSEUDO_INCLUDE_PATHS when set; older ones skip PSEUDO_IGNORE_PATHS
            ["PSEUDO_INCLUDE_PATHS"] = ExportPaths.Canonical(export),
            ["PSEUDO_IGNORE_PATHS"] = string.Join(',', ignore.Append("/proc/").Append("/sys/").Append("/dev/")),
            ["PSEUDO_PREFIX"] = Prefix,
            ["PSEUDO_LOCALSTATEDIR"] = state.Directory,
            // user and group names resolve from the target's /etc/passwd and /etc/group, as in an image build
            ["PSEUDO_PASSWD"] = NameFiles(export, state),
            ["PSEUDO_NOSYMLINKEXP"] = "1",
            ["PSEUDO_DISABLED"] = "0",
            ["PSEUDO_UNLOAD"] = null,
        };
    }

    /// <summary>
    /// A private copy of the target's etc/passwd and etc/group for pseudo's name lookups, read through the
    /// confined handle. pseudo opens PSEUDO_PASSWD/etc/passwd with a plain open(), which would follow a
    /// symlink the board made (etc/passwd -> a file of the host user); the copy holds only what is really
    /// in the export (empty when the file is missing or reached through a symlink).
    /// </summary>
    private static string NameFiles(string export, PseudoState state)
    {
        var dir = Path.Combine(state.Directory, "rootfs-export-names");
        Directory.CreateDirectory(Path.Combine(dir, "etc"));
        using var root = HostDirectory.Open(ExportPaths.Canonical(export));
        foreach (var name in new[] { "passwd", "group" })
        {
            byte[] content;
            try { content = root.ReadFileBeneath("etc/" + name, 16 << 20); }
            catch (PosixException) { content = []; }
            var path = Path.Combine(dir, "etc", name);
            File.WriteAllBytes(path + ".tmp", content);
            File.Move(path + ".tmp", path, overwrite: true);
        }
        return dir;
    }

    /// <summary>Runs argv under pseudo (interactive), then stops pseudo's server so files.db is written out.</summary>
    public int Exec(string export, IReadOnlyList<string> argv)
    {
        var state = PseudoState.ForExport(export);
        if (!state.Exists)
            throw new UserFacingException($"'{export}' has no pseudo state ({state.FilesDbPath}); create the export with 'rootfs-export unpack' first");
        var env = EnvironmentFor(export);
        int rc = ChildProcess.RunInteractive(Binary, argv, env);
        Stop(export);
        return rc;
    }

    /// <summary>pseudo -S: asks the server of this state to write its database and exit.</summary>
    public void Stop(string export)
    {
        var state = PseudoState.ForExport(export);
        if (state.LiveServerPid() is null) return;
        // -S returns once the request is sent; the server flushes files.db and releases its lock on exit.
        // A server that still has clients (a straggling child of the program) declines: ask again.
        ChildProcess.Result? last = null;
        for (int attempt = 0; attempt < 6 && state.LiveServerPid() != null; attempt++)
        {
            last = ChildProcess.Capture(Binary, ["-S"], EnvironmentFor(export), TimeSpan.FromSeconds(60));
            for (int i = 0; i < 40 && state.LiveServerPid() != null; i++) Thread.Sleep(50);
        }
        if (state.LiveServerPid() is int pid)
            throw new UserFacingException($"pseudo server (pid {pid}) on {state.Directory} did not stop: {last?.Stdout}{last?.Stderr}".TrimEnd());
    }
}
