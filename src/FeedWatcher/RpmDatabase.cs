using RootfsExport.ExportTree;
using RootfsExport.Posix;

namespace RootfsExport.FeedWatcher;

/// <summary>
/// Writes the target's rpmdb (var/lib/rpm/rpmdb.sqlite) the way rpm itself does, by running the build's rpm
/// (OE's rpm-native, else the host's) with --justdb on a private copy: the copy lives in a temporary root
/// outside the export, so rpm never opens, locks or follows anything the board made; the result is written
/// back through the export writer (confined, atomic, recorded in files.db like any other file). rpm --justdb
/// touches only the database: the header it stores is the package's own, so `rpm -qa`, `rpm -ql` and
/// `rpm -V` on the board see what `rpm -U` would have recorded. See docs/FEEDS.md for why not our own sqlite.
/// </summary>
internal sealed class RpmDatabase(TargetTree tree, ExportPath directory, string rpm)
{
    public const string FileName = "rpmdb.sqlite";

    /// <summary>Export-relative path of the database file.</summary>
    public ExportPath File => directory.Child(FileName);

    /// <summary>Files sqlite keeps beside the database; stale after we replace it, so they go.</summary>
    public IEnumerable<string> Companions => [File.Value + "-wal", File.Value + "-shm"];

    /// <summary>rpm-native of the build, else rpm in PATH; null when neither exists.</summary>
    public static string? Tool(string? buildDir) => ExportTree.Build.HostTools.Locate("rpm", "rpm-native", null, "rpm", buildDir);

    /// <summary>The database after recording this package installed (an older version of it replaced).</summary>
    public byte[] Install(string packagePath) => Run(
        ["-U", "--justdb", "--noscripts", "--notriggers", "--nodeps", "--replacepkgs", "--replacefiles", "--oldpackage",
         "--ignoresize", "--ignorearch", "--ignoreos", "--nosignature", packagePath], Path.GetFileName(packagePath));

    /// <summary>The database after forgetting every installed version of this package; null when it lists none.</summary>
    public byte[]? Erase(string package)
    {
        byte[]? result = null;
        WithCopy(root =>
        {
            if (Rpm(root, ["-q", package]).ExitCode != 0) return;
            Check(Rpm(root, ["-e", "--justdb", "--noscripts", "--notriggers", "--nodeps", "--allmatches", package]), package);
            result = ReadBack(root);
        });
        return result;
    }

    private byte[] Run(string[] args, string what)
    {
        byte[] result = [];
        WithCopy(root =>
        {
            Check(Rpm(root, args), what);
            result = ReadBack(root);
        });
        return result;
    }

    private void WithCopy(Action<string> work)
    {
        var root = Directory.CreateTempSubdirectory("rootfs-export-rpmdb-").FullName;
        try
        {
            var db = Path.Combine(root, "var/lib/rpm");
            Directory.CreateDirectory(db);
            // read confined to the export; a WAL the board's rpm left unmerged travels with the database
            if (tree.ReadAllBytes(File) is { } bytes) System.IO.File.WriteAllBytes(Path.Combine(db, FileName), bytes);
            if (tree.ReadAllBytes(ExportPath.Parse(File.Value + "-wal")) is { Length: > 0 } wal) System.IO.File.WriteAllBytes(Path.Combine(db, FileName + "-wal"), wal);
            work(root);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private ChildProcess.Result Rpm(string root, IEnumerable<string> args) =>
        ChildProcess.Capture(rpm, ["--root", root, "--dbpath", "/var/lib/rpm", "--define", "_db_backend sqlite", .. args],
            new Dictionary<string, string?> { ["LC_ALL"] = "C" }, TimeSpan.FromMinutes(5));

    private void Check(ChildProcess.Result r, string what)
    {
        if (r.ExitCode == 0) return;
        var message = string.Join("; ", r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => !l.StartsWith("rpm: RPM should not be used directly") && !l.StartsWith("rpm: However assuming")));
        throw new UserFacingException($"{what}: recording it in /{File.Value} with {rpm} --justdb failed (exit {r.ExitCode}): {message}");
    }

    /// <summary>The database rpm left, its WAL merged in (rpm checkpoints on close; a crash may leave one).</summary>
    private static byte[] ReadBack(string root)
    {
        var db = Path.Combine(root, "var/lib/rpm", FileName);
        var wal = db + "-wal";
        if (System.IO.File.Exists(wal) && new FileInfo(wal).Length > 0)
        {
            using var conn = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={db};Pooling=False");
            conn.Open();
            using var cmd = conn.CreateCommand();
            cmd.CommandText = "PRAGMA wal_checkpoint(TRUNCATE)";
            cmd.ExecuteNonQuery();
        }
        return System.IO.File.ReadAllBytes(db);
    }
}
