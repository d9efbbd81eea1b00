using System.CommandLine;
using RootfsExport.ExportTree;
using RootfsExport.ExportTree.Build;

namespace RootfsExport.Cli;

/// <summary>unpack, check: creating an export and keeping its ownership database honest.</summary>
public static class FoundationCommands
{
    public static IEnumerable<Command> Create() => [Update(), Unpack(), Check(), Exec(), Perms()];

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

    /// <summary>Options shared by update and watch: where the build is and which export to keep current.</summary>
    public sealed record BuildOptions(Option<DirectoryInfo?> BuildDir, Option<string?> Machine, Option<DirectoryInfo?> Export)
    {
        public static BuildOptions Create() => new(
            new Option<DirectoryInfo?>("--build-dir") { Description = "OE build directory (default: $BUILDDIR, the current directory if it is a build, else the bundled sample build)" },
            new Option<string?>("--machine") { Description = "MACHINE (default: $MACHINE, else conf/local.conf)" },
            new Option<DirectoryInfo?>("--export") { Description = "export directory (default: <build>/export/<image>-<machine>; for the sample build ./export/<image>-<machine>)" });

        public void AddTo(Command cmd)
        {
            cmd.Options.Add(BuildDir);
            cmd.Options.Add(Machine);
            cmd.Options.Add(Export);
        }

        public (BuildLayout Layout, string Export) Resolve(ParseResult parse, string image)
        {
            var layout = BuildLayout.Locate(parse.GetValue(BuildDir)?.FullName, parse.GetValue(Machine), SampleBuild.Locate());
            var export = parse.GetValue(Export)?.FullName ?? layout.DefaultExport(image);
            return (layout, export);
        }
    }

    private static Command Update()
    {
        var image = new Argument<string>("image") { Description = "image recipe name, e.g. core-image-minimal (PTXdist: any name; platform-*/images/root.tgz is used)" };
        var build = BuildOptions.Create();
        var noFeeds = new Option<bool>("--no-feeds") { Description = "only refresh from the image tarball; do not apply packages from the feeds" };
        var install = new Option<string[]>("--install") { Description = "also install these packages (with their dependencies) from the feed", AllowMultipleArgumentsPerToken = true };
        var cmd = new Command("update", "Create or refresh the export of an image: unpack its newest rootfs tarball when it changed, then apply newer packages from the build's feeds")
        {
            image, noFeeds, install,
        };
        build.AddTo(cmd);
        cmd.SetAction(parse =>
        {
            UpdateTrace.Step("command line parsed");
            var name = parse.GetValue(image)!;
            var (layout, export) = build.Resolve(parse, name);
            Console.WriteLine(layout.Kind switch
            {
                BuildKind.Sample => $"Build: bundled sample build {layout.BuildDir} (MACHINE {layout.Machine}); no OE build environment found",
                BuildKind.Ptxdist => $"Build: PTXdist {layout.PlatformDir}",
                _ => $"Build: {layout.BuildDir} (MACHINE {layout.Machine})",
            });
            var tarball = layout.FindImageTarball(name);
            var real = new FileInfo(tarball).ResolveLinkTarget(true)?.FullName;
            Console.WriteLine($"Image: {tarball}{(real != null ? $" -> {Path.GetFileName(real)}" : "")}");
            var request = new UpdateHandover(layout, name, export, parse.GetValue(install) ?? [], parse.GetValue(noFeeds));
            UpdateTrace.Step("build and image found");
            var exitCode = UpdateSteps.RunOrHandOver(request, Console.Out).ExitCode;
            UpdateTrace.Step("update done");
            return exitCode;
        });
        return cmd;
    }

    private static Command Exec()
    {
        var export = new Argument<DirectoryInfo>("exportdir") { Description = "export directory" };
        var command = new Argument<string[]>("command") { Description = "command and arguments (after --)", Arity = ArgumentArity.OneOrMore };
        var pseudo = new Option<FileInfo?>("--pseudo") { Description = "pseudo binary (default: OE native sysroot, then PATH)" };
        var cmd = new Command("exec", "Run a command under pseudo with this export's ownership database (files it creates are recorded)")
        {
            export, command, pseudo,
        };
        cmd.SetAction(parse =>
        {
            var dir = parse.GetValue(export)!.FullName;
            var runner = PseudoRunner.Locate(parse.GetValue(pseudo)?.FullName, null);
            return runner.Exec(dir, parse.GetValue(command)!);
        });
        return cmd;
    }

    private static Command Perms()
    {
        var format = new Option<string>("--format") { Description = "fakeroot (fakeroot -s/-i save file) or ptxdist (.perms)", Required = true };
        format.AcceptOnlyFromAmong("fakeroot", "ptxdist");
        var exportArg = new Argument<DirectoryInfo>("exportdir") { Description = "export directory" };
        var fileArg = new Argument<FileInfo>("file") { Description = "file to read" };
        var output = new Option<FileInfo?>("-o", "--output") { Description = "file to write (default: standard output)" };

        var export = new Command("export", "Write the export's ownership as a fakeroot save file or a PTXdist .perms file") { exportArg, format, output };
        export.SetAction(parse =>
        {
            var dir = parse.GetValue(exportArg)!.FullName;
            var text = parse.GetValue(format) == "fakeroot" ? OwnershipTransfer.ExportFakeroot(dir) : OwnershipTransfer.ExportPerms(dir);
            if (parse.GetValue(output) is { } file) File.WriteAllText(file.FullName, text);
            else Console.Write(text);
            return 0;
        });

        var import = new Command("import", "Apply a fakeroot save file or PTXdist .perms file to the export's ownership database") { exportArg, fileArg, format };
        import.SetAction(parse =>
        {
            var dir = parse.GetValue(exportArg)!.FullName;
            var file = parse.GetValue(fileArg)!.FullName;
            var report = parse.GetValue(format) == "fakeroot" ? OwnershipTransfer.ImportFakeroot(dir, file) : OwnershipTransfer.ImportPerms(dir, file);
            foreach (var s in report.Skipped.Take(20)) Console.Error.WriteLine($"skipped: {s}");
            Console.WriteLine($"applied {report.Applied} record(s){(report.Skipped.Count > 0 ? $", skipped {report.Skipped.Count}" : "")}");
            return 0;
        });
        return new Command("perms", "Import or export ownership in fakeroot's and PTXdist's formats") { export, import };
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
                Console.WriteLine($"{report.Problems.Count} problem(s) ({string.Join(", ", summary)}){(report.Repaired ? ", repaired" : parse.GetValue(repair) ? ", not all can be repaired" : "; run with --repair to fix")}");
            return report.Problems.Count == 0 || report.Repaired ? 0 : 1;
        });
        return cmd;
    }
}
