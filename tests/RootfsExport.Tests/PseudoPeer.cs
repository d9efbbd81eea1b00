using RootfsExport.TestSupport;

namespace RootfsExport.Tests;

/// <summary>Debian's real pseudo, run as the unprivileged user on a given state directory.</summary>
public static class PseudoPeer
{
    public static Dictionary<string, string> Env(string stateDir) => new()
    {
        ["PSEUDO_PREFIX"] = "/usr",
        ["PSEUDO_LOCALSTATEDIR"] = stateDir,
    };

    /// <summary>Runs a shell command under pseudo, then stops the server so files.db is flushed.</summary>
    public static RunResult Run(string stateDir, string script)
    {
        Run_("pseudo", stateDir, "-S");
        var result = TestSupport.Run.Program("pseudo", ["sh", "-c", script], asUnprivileged: true, env: Env(stateDir), timeout: TimeSpan.FromMinutes(3));
        Run_("pseudo", stateDir, "-S");
        return result;
    }

    private static void Run_(string program, string stateDir, string arg) =>
        TestSupport.Run.Program(program, [arg], asUnprivileged: true, env: Env(stateDir), timeout: TimeSpan.FromSeconds(60));

    /// <summary>path (relative to the export, "." for the root) → "uid gid mode rdev" from a files.db.</summary>
    public static SortedDictionary<string, string> Rows(string filesDb, string export)
    {
        var output = TestSupport.Run.Program("sqlite3", "-separator", "|", filesDb,
            "select path, uid, gid, mode, rdev from files order by path").ShouldSucceed().Stdout;
        var rows = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var f = line.Split('|');
            if (f[0] != export && !f[0].StartsWith(export + "/")) continue;
            var rel = f[0] == export ? "." : f[0][(export.Length + 1)..];
            rows[rel] = $"{f[1]} {f[2]} {Convert.ToString(long.Parse(f[3]), 8)} {f[4]}";
        }
        return rows;
    }

    /// <summary>relative path → "name=hex;..." for every path whose inode has xattrs.</summary>
    public static SortedDictionary<string, string> Xattrs(string filesDb, string export)
    {
        var output = TestSupport.Run.Program("sqlite3", "-separator", "|", filesDb,
            "select f.path, x.name, hex(x.value) from xattrs x join files f on f.dev = x.dev and f.ino = x.ino order by f.path, x.name").ShouldSucceed().Stdout;
        var result = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in output.Split('\n', StringSplitOptions.RemoveEmptyEntries))
        {
            var f = line.Split('|');
            var rel = f[0] == export ? "." : f[0][(export.Length + 1)..];
            result[rel] = result.TryGetValue(rel, out var prev) ? $"{prev};{f[1]}={f[2]}" : $"{f[1]}={f[2]}";
        }
        return result;
    }
}
