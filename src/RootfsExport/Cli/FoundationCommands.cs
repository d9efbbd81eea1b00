using System.CommandLine;
using RootfsExport.ExportTree;

namespace RootfsExport.Cli;

/// <summary>unpack, check: creating an export and keeping its ownership database honest.</summary>
public static class FoundationCommands
{
    public static IEnumerable<Command> Create() => [Unpack(), Check()];

    private static Command Unpack()
    {
        var tarball = new Argument<FileInfo>("tarball") { Description = "image rootfs tarball (.tar, .tar.gz, .tar.bz2, .tar.xz, .tar.zst)" };
        var export = new Argument<DirectoryInfo>("exportdir") { Description = "export directory to create; its pseudo state goes to <exportdir>/../<name>.pseudo_state" };
        var replace = new Option<bool>("--replace") { Description = "replace an existing export atomically (new one is built beside it, then swapped)" };
        var cmd = new Command("unpack", "Unpack a rootfs tarball as an ordinary user, recording owners, modes, devices and xattrs in a pseudo-compatible files.db")
        {
            tarball, export, replace,
        };
        cmd.SetAction(parse =>
        {
            var tar = parse.GetValue(tarball)!;
            var dir = parse.GetValue(export)!;
            long size = tar.Exists ? tar.Length : 0;
            var result = UnpackProgress.Run($"unpack {tar.Name}", size,
                progress => ExportCreator.Unpack(tar.FullName, dir.FullName, parse.GetValue(replace), progress));
            Console.WriteLine($"{(result.Replaced ? "replaced" : "created")} {result.Export}: {result.Entries} entries in {result.Elapsed.TotalSeconds:F2} s ({result.Compression})");
            Console.WriteLine($"ownership database: {result.StateDir}/files.db");
            return 0;
        });
        return cmd;
    }

    private static Command Check()
    {
        var export = new Argument<DirectoryInfo>("exportdir") { Description = "export directory" };
        var repair = new Option<bool>("--repair") { Description = "fix what was found (stale rows, re-keyed inodes, moved export, missing rows as root-owned)" };
        var cmd = new Command("check", "Compare the pseudo database with the export on disk (pseudo aborts its clients on mismatched rows)")
        {
            export, repair,
        };
        cmd.SetAction(parse =>
        {
            var report = ExportChecker.Check(parse.GetValue(export)!.FullName, parse.GetValue(repair));
            foreach (var p in report.Problems.Take(50)) Console.WriteLine($"{p.Kind,-14} {p.Path}: {p.Detail}");
            if (report.Problems.Count > 50) Console.WriteLine($"... and {report.Problems.Count - 50} more");
            var summary = report.Problems.GroupBy(p => p.Kind).Select(g => $"{g.Count()} {g.Key}");
            if (report.Problems.Count == 0)
                Console.WriteLine($"clean: {report.Objects} objects, {report.Rows} rows");
            else
                Console.WriteLine($"{report.Problems.Count} problem(s) ({string.Join(", ", summary)}){(report.Repaired ? ", repaired" : "; run with --repair to fix")}");
            return report.Problems.Count == 0 || report.Repaired ? 0 : 1;
        });
        return cmd;
    }
}
