using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Tests;

/// <summary>serve --nfs: unfsd under pseudo on the export's state.</summary>
public sealed class NfsServeTests : IClassFixture<GoldenRootfs>
{
    private readonly GoldenRootfs _golden;

    public NfsServeTests(GoldenRootfs golden) => _golden = golden;

    /// <summary>
    /// CI has no unfsd (no Debian release packages it), so the environment serve --nfs starts unfsd in is
    /// proven with a real child in its place: under real pseudo it sees the DB's owners, and what it creates
    /// and chowns lands in files.db once serve has stopped it and flushed pseudo.
    /// </summary>
    [Fact]
    public void The_environment_unfsd_runs_in_shows_db_owners_and_records_creations()
    {
        using var dir = new ScratchDir();
        var export = dir["export"];
        Run.Tool("unpack", _golden.TarGz, export).ShouldSucceed();
        var outDir = dir["out"];
        Run.Program("mkdir", [outDir], asUnprivileged: true).ShouldSucceed();
        var standIn = dir["unfsd"];
        File.WriteAllText(standIn, """
            #!/bin/sh
            # stand-in for unfsd, started exactly as unfsd would be
            echo "$@" > "$OUT/args"
            while [ $# -gt 0 ]; do case "$1" in -e) exports=$2; shift;; -i) pidfile=$2; shift;; esac; shift; done
            echo $$ > "$pidfile"
            cp "$exports" "$OUT/exports"
            export_dir=$(sed 's/ (.*//' "$exports")
            stat -c '%u:%g %a' "$export_dir/etc/shadow" > "$OUT/stat"
            echo created > "$export_dir/etc/from-nfs" && chown 5:5 "$export_dir/etc/from-nfs"
            mkdir "$export_dir/home/board" && chown 1000:1000 "$export_dir/home/board"
            touch "$OUT/ready"
            trap 'exit 0' TERM
            while :; do sleep 0.1; done
            """);
        Run.Program("chmod", "755", standIn).ShouldSucceed();

        // the stand-in's report files are outside the export: keep pseudo from recording them
        using var serve = new BackgroundTool(["serve", export, "--nfs", "--unfsd", standIn], new Dictionary<string, string> { ["OUT"] = outDir, ["PSEUDO_IGNORE_PATHS"] = outDir + "/" });
        serve.WaitUntil(() => File.Exists(Path.Combine(outDir, "ready")), "the stand-in unfsd to start", 60);
        int exit = serve.Stop();
        var stdout = serve.Output;
        Assert.True(exit == 0, stdout);

        var live = new PseudoDb.PseudoState(export + ".pseudo_state").LiveServerPid();
        Assert.True(live is null, $"pseudo server {live} still holds the state after serve stopped\n{stdout}\n{File.ReadAllText(export + ".pseudo_state/pseudo.log")}");
        Assert.Equal("0:42 640", File.ReadAllText(Path.Combine(outDir, "stat")).Trim());
        Assert.Equal($"{export} (rw,no_root_squash,no_all_squash,insecure)\n", File.ReadAllText(Path.Combine(outDir, "exports")));
        var args = File.ReadAllText(Path.Combine(outDir, "args"));
        Assert.Matches(@"^-d -p -l 127\.0\.0\.1 -n (\d+) -m \1 -e \S+/exports -i \S+/unfsd\.pid$", args.Trim());
        Assert.Matches($@"cmdline: root=/dev/nfs nfsroot=127\.0\.0\.1:{export},v3,tcp,port=\d+,mountport=\d+,nolock", stdout);
        Assert.Contains("barebox: boot nfs://127.0.0.1:", stdout);
        Assert.Contains("enforces no permissions", stdout);

        var rows = PseudoPeer.Rows(export + ".pseudo_state/files.db", export);
        Assert.StartsWith("5 5 100", rows["etc/from-nfs"]);
        Assert.StartsWith("1000 1000 40", rows["home/board"]);
        Assert.Contains("clean:", Run.Tool("check", export).ShouldSucceed().Stdout);
    }

    [Fact]
    public void Missing_unfsd_says_how_to_get_it()
    {
        using var dir = new ScratchDir();
        var export = dir["export"];
        Run.Tool("unpack", _golden.TarGz, export).ShouldSucceed();
        var result = Run.Tool(["serve", export, "--nfs"], new Dictionary<string, string> { ["PATH"] = "/usr/bin:/bin", ["BUILDDIR"] = "" });
        if (UnfsdPeer.Path != null) return; // an unfsd is installed on this machine: nothing to report
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("bitbake unfs3-native -c addto_recipe_sysroot", result.Stderr);
    }

    /// <summary>End to end with a real unfsd and Debian's userspace NFS client (libnfs-utils).</summary>
    [UnfsdFact]
    [Trait("Category", "EndToEnd")]
    public void Real_unfsd_serves_db_owners_and_records_nfs_writes()
    {
        using var dir = new ScratchDir();
        var export = dir["export"];
        Run.Tool("unpack", _golden.TarGz, export).ShouldSucceed();
        var port = 33049 + Random.Shared.Next(0, 500) * 2;
        using var serve = new BackgroundTool(["serve", export, "--nfs", "--unfsd", UnfsdPeer.Path!, "--nfs-port", port.ToString()]);
        try
        {
            string url(string p, string extra = "") => $"nfs://127.0.0.1{export}/{p}?nfsport={port}&mountport={port}{extra}";
            RunResult ls = new(1, "", "");
            for (int i = 0; i < 100 && ls.ExitCode != 0; i++) { Thread.Sleep(200); ls = Run.Program("nfs-ls", url("dev")); }
            ls.ShouldSucceed();
            Assert.Matches(@"crw-------\s+1\s+0\s+0\s.*console", ls.Stdout);
            File.WriteAllText(dir["payload"], "from the board\n");
            Run.Program("chmod", "a+r", dir["payload"]).ShouldSucceed();
            Run.Program("nfs-cp", dir["payload"], url("etc/written-over-nfs", "&uid=5&gid=5")).ShouldSucceed();
        }
        finally
        {
            Assert.True(serve.Stop() == 0, serve.Output);
        }
        var rows = PseudoPeer.Rows(export + ".pseudo_state/files.db", export);
        Assert.StartsWith("5 5 ", rows["etc/written-over-nfs"]);
        Assert.Contains("clean:", Run.Tool("check", export).ShouldSucceed().Stdout);
    }
}

/// <summary>Where a real unfsd is: $ROOTFS_EXPORT_UNFSD or PATH. unfs3 is in no Debian release (see README).</summary>
public static class UnfsdPeer
{
    public static string? Path =>
        Environment.GetEnvironmentVariable("ROOTFS_EXPORT_UNFSD") is { Length: > 0 } p && File.Exists(p) ? p
        : (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Select(d => System.IO.Path.Combine(d, "unfsd")).FirstOrDefault(File.Exists);
}

/// <summary>A fact that reports itself skipped, with the reason, when no unfsd is available.</summary>
public sealed class UnfsdFactAttribute : FactAttribute
{
    public UnfsdFactAttribute()
    {
        if (UnfsdPeer.Path is null)
            Skip = "no unfsd: no Debian package provides unfsd or a server that can stand in for it (unfs3 is in no Debian release; " +
                   "nfs-ganesha, Debian's only user-space NFS server, takes a config file instead of unfsd's command line and its VFS backend " +
                   "opens files by handle as root, past pseudo; docs/DEVLOOP.md). Provide one with ROOTFS_EXPORT_UNFSD=/path/to/unfsd " +
                   "(from an OE build: bitbake unfs3-native -c addto_recipe_sysroot; or built from github.com/unfs3/unfs3)";
    }
}
