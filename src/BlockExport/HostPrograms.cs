using RootfsExport.Posix;

namespace RootfsExport.BlockExport;

/// <summary>
/// The Debian programs this area drives (e2fsprogs, cryptsetup-bin, nbdkit). An ordinary user's PATH often
/// lacks /usr/sbin and /sbin, where Debian installs mke2fs and veritysetup, so those are searched too.
/// </summary>
public static class HostPrograms
{
    public static string Require(string name, string package)
    {
        var found = ChildProcess.FindInPath(name);
        foreach (var dir in new[] { "/usr/sbin", "/sbin", "/usr/bin" })
            if (found is null && File.Exists(Path.Combine(dir, name))) found = Path.Combine(dir, name);
        return found ?? throw new UserFacingException($"{name} not found: install {package} (Debian/Ubuntu: apt install {package})");
    }

    /// <summary>Runs to completion; a failure becomes one error naming the program and its last output lines.</summary>
    public static string Run(string program, IReadOnlyList<string> args, IReadOnlyDictionary<string, string?>? env = null, TimeSpan? timeout = null)
    {
        var r = ChildProcess.Capture(program, args, env, timeout ?? TimeSpan.FromMinutes(30));
        if (r.ExitCode != 0)
        {
            var tail = string.Join(" | ", (r.Stderr + r.Stdout).Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).TakeLast(4));
            throw new UserFacingException($"{Path.GetFileName(program)} failed (exit {r.ExitCode}): {tail}");
        }
        return r.Stdout;
    }
}
