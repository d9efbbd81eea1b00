using System.Text;
using System.Text.RegularExpressions;
using RootfsExport.NineP.Protocol;
using RootfsExport.PseudoDb;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.NineP.Tests;

/// <summary>
/// `rootfs-export board list|diff|reset|commit` as users run them (the CLI as uid 65534, the board's changes
/// made over 9P through a running `serve`): diff lists exactly what the board changed, commit merges it into
/// the shared export so that `check` is clean and real pseudo sees the board's owners, a commit stopped part
/// way is finished by the next one (and no serve, update or check runs over it meanwhile), and a served board or
/// export is refused.
/// </summary>
public sealed class BoardCommitTests
{
    private const uint CreateWrite = 0x8042; // O_RDWR | O_CREAT | O_LARGEFILE
    private const uint WriteTrunc = 0x8201;

    private static BackgroundTool Serve(ExportFixture fx, out int port) => Serve(fx.Export, out port);

    private static BackgroundTool Serve(string export, out int port)
    {
        var serve = new BackgroundTool(["serve", export, "--9p", "tcp:127.0.0.1:0"]);
        serve.WaitFor("cmdline:");
        port = int.Parse(Regex.Match(serve.Output, @"on tcp:127\.0\.0\.1:(\d+)").Groups[1].Value);
        return serve;
    }

    private static async Task<uint> Walk(TestClient c, uint from, uint newFid, params string[] names)
    {
        var r = await c.Call<Rwalk>(new Twalk(from, newFid, names));
        Assert.True(names.Length == r.Qids.Count, $"walk {string.Join('/', names)}: {r.Qids.Count} of {names.Length}");
        return newFid;
    }

    private static async Task Create(TestClient c, uint dirFid, string name, string text, uint mode)
    {
        await c.Call<Rlcreate>(new Tlcreate(dirFid, name, CreateWrite, mode, 0));
        await c.Call<Rwrite>(new Twrite(dirFid, 0, Encoding.UTF8.GetBytes(text)));
        await c.Call<Rclunk>(new Tclunk(dirFid));
    }

    /// <summary>Board b1 attaches and creates etc/motd ("b1\n"); the caller decides when it detaches.</summary>
    private static async Task<TestClient> AttachB1WithMotd(int port, string export)
    {
        var b = await TestClient.ConnectAsync(port);
        await b.Mount(export + "@b1");
        await Create(b, await Walk(b, 0, 1, "etc"), "motd", "b1\n", 0x1a4);
        return b;
    }

    private static Task Setattr(TestClient c, uint fid, SetAttrMask mask, uint mode = 0, uint uid = 0, uint gid = 0) =>
        c.Call<Rsetattr>(new Tsetattr(fid, mask, mode, uid, gid, 0, 0, 0, 0, 0));

    /// <summary>rock3a's session: creates, chowns, overwrites, chmods, deletes, replaces a directory, links out of the export.</summary>
    private static async Task ChangeBoard(ExportFixture fx, int port)
    {
        await using (var host = await TestClient.ConnectAsync(port))
        {
            await host.Mount(fx.Export); // the shared export gets srv/shared/old, which rock3a's new srv/shared must not keep
            await Create(host, await Walk(host, 0, 1, "srv", "shared"), "old", "old\n", 0x1a4);
        }
        await using var b = await TestClient.ConnectAsync(port);
        await b.Mount(fx.Export + "@rock3a");
        await Create(b, await Walk(b, 0, 1, "etc"), "motd", "rock3a\n", 0x1a4);
        await Setattr(b, await Walk(b, 0, 2, "etc", "motd"), SetAttrMask.Uid | SetAttrMask.Gid, uid: 1234, gid: 5678);
        await b.Call<Rxattrcreate>(new Txattrcreate(2, "user.note", 2, 0));
        await b.Call<Rwrite>(new Twrite(2, 0, "hi"u8.ToArray()));
        await b.Call<Rclunk>(new Tclunk(2));
        await b.Call<Rlopen>(new Tlopen(await Walk(b, 0, 3, "etc", "hostname"), WriteTrunc));
        await b.Call<Rwrite>(new Twrite(3, 0, "rock3a-host\n"u8.ToArray()));
        await Setattr(b, await Walk(b, 0, 4, "bin", "tool"), SetAttrMask.Mode | SetAttrMask.Uid, mode: 0x1ed, uid: 7);
        await b.Call<Runlinkat>(new Tunlinkat(await Walk(b, 0, 5, "dev"), "null", 0));
        var srv = await Walk(b, 0, 6, "srv");
        await b.Call<Runlinkat>(new Tunlinkat(await Walk(b, 0, 7, "srv", "shared"), "old", 0));
        await b.Call<Runlinkat>(new Tunlinkat(srv, "shared", 0x200));
        await b.Call<Rmkdir>(new Tmkdir(srv, "shared", 0x41c0, 3));
        await Create(b, await Walk(b, 0, 8, "srv", "shared"), "new", "new\n", 0x180);
        await b.Call<Rsymlink>(new Tsymlink(0, "lib", fx.Outside, 0)); // a symlink out of the export: stored, never followed
        await b.Call<Rmkdir>(new Tmkdir(0, "opt", 0x41ed, 0));
        await Create(b, await Walk(b, 0, 9, "opt"), "run", "#!/bin/sh\n", 0x1ed);
        await Setattr(b, await Walk(b, 0, 10, "opt", "run"), SetAttrMask.Mode, mode: 0x9ed); // 04755
    }

    private static readonly string[] ExpectedDiff =
    [
        "modified  -rwxr-xr-x 7:0 /bin/tool",
        "deleted   crw-rw-rw- 0:0 /dev/null",
        "modified  -rw-r--r-- 0:0 /etc/hostname",
        "added     -rw-r--r-- 1234:5678 /etc/motd",
        "added     lrwxrwxrwx 0:0 /lib",
        "added     drwxr-xr-x 0:0 /opt",
        "added     -rwsr-xr-x 0:0 /opt/run",
        "modified  drwx------ 0:3 /srv/shared",
        "added     -rw------- 0:0 /srv/shared/new",
    ];

    private static string[] Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries);

    [Fact]
    public async Task Commit_merges_a_boards_changes_so_check_is_clean_and_pseudo_sees_its_owners()
    {
        using var fx = new ExportFixture();
        var outside = fx.OutsideListing();
        using (var serve = Serve(fx, out var port))
        {
            await ChangeBoard(fx, port);
            Assert.Equal(0, serve.Stop(30));
        }
        Assert.Matches(@"^rock3a\s+9 change\(s\): 5 added, 3 modified, 1 deleted\s+not served", Run.Tool("board", "list", fx.Export).ShouldSucceed().Stdout);
        Assert.Equal(ExpectedDiff, Lines(Run.Tool("board", "diff", fx.Export, "rock3a").ShouldSucceed().Stdout));

        var commit = Run.Tool("board", "commit", fx.Export, "rock3a").ShouldSucceed().Stdout;
        Assert.Equal(ExpectedDiff, Lines(commit)[..^1]);
        Assert.Contains("committed board rock3a into", commit);
        Assert.Contains("clean:", Run.Tool("check", fx.Export).ShouldSucceed().Stdout);
        Assert.Contains("no board has a layer", Run.Tool("board", "list", fx.Export).ShouldSucceed().Stdout);
        Assert.False(Directory.Exists(Path.Combine(fx.Export + ".boards", "rock3a")));

        Assert.Equal("rock3a-host\n", File.ReadAllText(Path.Combine(fx.Export, "etc/hostname")));
        Assert.Equal("rock3a\n", File.ReadAllText(Path.Combine(fx.Export, "etc/motd")));
        Assert.Equal(["new"], Directory.EnumerateFileSystemEntries(Path.Combine(fx.Export, "srv/shared")).Select(p => Path.GetFileName(p)!).ToArray());
        Assert.False(File.Exists(Path.Combine(fx.Export, "dev/null")));
        Assert.Equal(fx.Outside, new FileInfo(Path.Combine(fx.Export, "lib")).LinkTarget);
        Assert.Equal(outside.Append("export.boards").Order().ToArray(), fx.OutsideListing()); // nothing written through the board's symlink
        Assert.Equal("outside the export\n", File.ReadAllText(Path.Combine(fx.Outside, "secret")));
        using (var db = FilesDb.Open(fx.State, create: false))
        {
            var motd = db.GetByPath(fx.DbPath("etc/motd"))!;
            Assert.Equal("hi"u8.ToArray(), db.GetXattr(motd.Dev, motd.Ino, "user.note"));
            Assert.DoesNotContain(db.AllXattrs(), x => x.Name.StartsWith("trusted.overlay.", StringComparison.Ordinal));
        }
        PseudoSees(fx, new()
        {
            ["bin/tool"] = "7 0 755 regular file",
            ["etc/hostname"] = "0 0 644 regular file",
            ["etc/motd"] = "1234 5678 644 regular file",
            ["lib"] = "0 0 777 symbolic link",
            ["opt/run"] = "0 0 4755 regular file",
            ["srv/shared"] = "0 3 700 directory",
            ["srv/shared/new"] = "0 0 600 regular file",
        });
    }

    /// <summary>A directory's mtime on the host, to the nanosecond.</summary>
    private static (long, uint) HostMtime(string path)
    {
        if (RootfsExport.Posix.Native.Libc.StatxAt(RootfsExport.Posix.Native.Libc.AT_FDCWD, path, RootfsExport.Posix.Native.Libc.AT_SYMLINK_NOFOLLOW,
                RootfsExport.Posix.Native.Libc.STATX_BASIC_STATS, out var st) != 0) throw new IOException($"stat {path}");
        return (st.Mtime.Sec, st.Mtime.Nsec);
    }

    private static async Task<(long, uint)> BoardMtime(TestClient c, uint fid, params string[] names)
    {
        var at = names.Length == 0 ? 0 : await Walk(c, 0, fid, names);
        var a = (await c.Call<Rgetattr>(new Tgetattr(at, AttrMask.Basic))).Attr;
        if (names.Length > 0) await c.Call<Rclunk>(new Tclunk(at));
        return ((long)a.MtimeSec, (uint)a.MtimeNsec);
    }

    [Fact]
    public async Task Commit_leaves_the_boards_directories_symlinks_and_fifos_with_the_times_the_board_saw()
    {
        using var fx = new ExportFixture();
        var untouched = new[] { "dev", "bin", "srv", "srv/shared" }.ToDictionary(d => d, d => HostMtime(Path.Combine(fx.Export, d)));
        var seen = new Dictionary<string, (long, uint)>();
        using (var serve = Serve(fx, out var port))
        await using (var b = await TestClient.ConnectAsync(port))
        {
            await b.Mount(fx.Export + "@b1");
            await Create(b, await Walk(b, 0, 1, "etc"), "motd", "b1\n", 0x1a4); // etc and the root are copied up, etc changes
            await b.Call<Rmkdir>(new Tmkdir(0, "opt", 0x41ed, 0));
            await Create(b, await Walk(b, 0, 2, "opt"), "run", "#!/bin/sh\n", 0x1ed);
            await Setattr(b, await Walk(b, 0, 3, "bin", "tool"), SetAttrMask.Mode, mode: 0x1ed); // bin copied up to hold a change
            await b.Call<Rsetattr>(new Tsetattr(await Walk(b, 0, 4, "srv"), SetAttrMask.Mtime | SetAttrMask.MtimeSet, 0, 0, 0, 0, 0, 0, 978307200, 5)); // touch -d 2001-01-01 /srv
            await b.Call<Rsymlink>(new Tsymlink(await Walk(b, 0, 5, "opt"), "link", "run", 0)); // a symlink and a FIFO keep theirs too
            await b.Call<Rmknod>(new Tmknod(5, "fifo", 0x11a4, 0, 0, 0));
            foreach (var d in new[] { "", "etc", "opt", "bin", "srv", "opt/link", "opt/fifo" })
                seen[d] = await BoardMtime(b, 10, d.Length == 0 ? [] : d.Split('/'));
            Assert.Equal(0, serve.Stop(30));
        }
        Assert.Equal((978307200L, 5u), seen["srv"]);
        Assert.Equal(untouched["bin"], seen["bin"]); // copying bin/tool up is no change to bin (overlayfs restores the parent's times too)
        Thread.Sleep(50); // the commit's own time differs from every time the board saw
        Run.Tool("board", "commit", fx.Export, "b1").ShouldSucceed();
        foreach (var (d, mtime) in seen) Assert.True(mtime == HostMtime(Path.Combine(fx.Export, d)), $"/{d}: board saw {mtime}, the export has {HostMtime(Path.Combine(fx.Export, d))}");
        Assert.Equal(untouched["dev"], HostMtime(Path.Combine(fx.Export, "dev")));
        Assert.Equal(untouched["srv/shared"], HostMtime(Path.Combine(fx.Export, "srv/shared")));
        Assert.Contains("clean:", Run.Tool("check", fx.Export).ShouldSucceed().Stdout);
    }

    /// <summary>Real pseudo, on the shared export's state, reports these owners.</summary>
    private static void PseudoSees(ExportFixture fx, Dictionary<string, string> expected) => PseudoSees(fx.Export, expected);

    private static void PseudoSees(string exportDir, Dictionary<string, string> expected)
    {
        Run.RequirePeer("pseudo");
        var env = new Dictionary<string, string> { ["PSEUDO_PREFIX"] = "/usr", ["PSEUDO_LOCALSTATEDIR"] = PseudoState.ForExport(exportDir).Directory };
        var export = ExportPaths.Canonical(exportDir);
        try
        {
            var stat = Run.Program("pseudo", new[] { "stat", "-c", "%n %u %g %a %F" }.Concat(expected.Keys.Select(k => Path.Combine(export, k))),
                asUnprivileged: true, env: env, timeout: TimeSpan.FromMinutes(1)).ShouldSucceed().Stdout;
            Assert.Equal(expected.Select(e => $"{e.Key} {e.Value}").ToArray(), Lines(stat).Select(l => l[(export.Length + 1)..]).ToArray());
        }
        finally
        {
            Run.Program("pseudo", ["-S"], asUnprivileged: true, env: env, timeout: TimeSpan.FromMinutes(1));
        }
    }

    /// <summary>The sample OE build, copied, with its export made by `update --no-feeds`: a feed package is still pending.</summary>
    private sealed class UpdatedBuild : IDisposable
    {
        public ScratchDir Dir { get; } = new("rfe-commit");
        public string Root => Dir["build"];
        public string Export => Path.Combine(Root, "export", "reference-base-image-qemux86-64");
        public PseudoState State => PseudoState.ForExport(Export);
        public string Image => Path.Combine(Root, "tmp", "deploy", "images", "qemux86-64", "reference-base-image-qemux86-64.rootfs.tar.zst");

        public UpdatedBuild()
        {
            Run.Program("cp", "-a", Repository.SampleBuild, Root).ShouldSucceed();
            if (Run.IsRoot) Run.Program("chown", "-R", $"{Run.NobodyId}:{Run.NobodyId}", Root).ShouldSucceed();
            Update("--no-feeds").ShouldSucceed();
        }

        public RunResult Update(params string[] extra) =>
            Run.Tool(["update", "reference-base-image", .. extra], new Dictionary<string, string> { ["BUILDDIR"] = Root }, TimeSpan.FromMinutes(2), Dir.Path);

        /// <summary>Every object of the export (inode, mode, size, mtime) and files.db's bytes: what a refused run must leave alone.</summary>
        public string Snapshot()
        {
            var tree = Run.Program("find", Export, "-printf", "%P %i %m %s %T@ %l\n").ShouldSucceed().Stdout;
            var db = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(State.FilesDbPath)));
            return string.Join('\n', Lines(tree).Order(StringComparer.Ordinal)) + "\nfiles.db " + db;
        }

        public void Dispose() => Dir.Dispose();
    }

    [Fact]
    public async Task A_commit_stopped_part_way_blocks_serve_update_and_check_and_the_next_commit_finishes_it()
    {
        using var build = new UpdatedBuild();
        var export = build.Export;
        using (var serve = Serve(export, out var port))
        {
            await using (var b = await TestClient.ConnectAsync(port))
            {
                await b.Mount(export + "@b1");
                await Setattr(b, await Walk(b, 0, 1, "bin", "busybox"), SetAttrMask.Uid, uid: 99);
                await Create(b, await Walk(b, 0, 2, "etc"), "motd", "b1\n", 0x1a4);
            }
            Assert.Equal(0, serve.Stop(30));
        }
        var etc = Path.Combine(export, "etc");
        Run.Program("chmod", "0555", etc).ShouldSucceed(); // bin/busybox goes in, then etc/motd cannot
        var stopped = Run.Tool("board", "commit", export, "b1");
        Assert.Equal(1, stopped.ExitCode);
        Assert.Contains("stopped part way", stopped.Stderr);

        var canonical = ExportPaths.Canonical(export);
        var journal = Path.Combine(build.State.Directory, "rootfs-export-board-commit.journal");
        var finishHint = $"'rootfs-export board commit {canonical} b1'";
        var before = build.Snapshot();
        var update = build.Update(); // the feed's newer hello-sample would go in, were it not refused
        Assert.Equal(1, update.ExitCode);
        Assert.Contains($"commit of board b1 into this export was interrupted (journal {journal})", update.Stderr);
        Assert.Contains(finishHint, update.Stderr);
        Assert.DoesNotContain("hello-sample", update.Stdout);
        var check = Run.Tool("check", export);
        Assert.Equal(1, check.ExitCode);
        Assert.Contains(finishHint, check.Stderr);
        Assert.DoesNotContain("MissingRow", check.Stdout + check.Stderr);
        Assert.Contains(finishHint, Run.Tool("check", "--repair", export).Stderr);
        var refused = Run.Tool(["serve", export, "--9p", "tcp:127.0.0.1:0"], null, TimeSpan.FromMinutes(1));
        Assert.Equal(1, refused.ExitCode);
        Assert.Contains("commit of board b1 into this export was interrupted", refused.Stderr);
        Assert.Contains(finishHint, refused.Stderr);
        var reset = Run.Tool("board", "reset", export, "b1"); // its layer is what the next commit finishes from
        Assert.Equal(1, reset.ExitCode);
        Assert.Contains("was interrupted", reset.Stderr);
        var replace = Run.Tool("unpack", "--replace", build.Image, export); // would drop the half-done commit with the old state
        Assert.Equal(1, replace.ExitCode);
        Assert.Contains($"cannot replace {canonical} now", replace.Stderr);
        Assert.Contains($"commit of board b1 into this export was interrupted (journal {journal})", replace.Stderr);
        Assert.Contains(finishHint, replace.Stderr);
        Assert.True(File.Exists(journal));
        Assert.Equal(before, build.Snapshot());

        Run.Program("chmod", "0755", etc).ShouldSucceed();
        Assert.Contains("finished the interrupted commit of board b1", Run.Tool("board", "commit", export, "b1").ShouldSucceed().Stdout);
        Assert.False(File.Exists(journal));
        Assert.Contains("hello-sample 1.0-r0 → 1.1-r0", build.Update().ShouldSucceed().Stdout);
        Assert.Contains("clean:", Run.Tool("check", export).ShouldSucceed().Stdout);
        Assert.Empty(Directory.EnumerateFileSystemEntries(export, ".rfe-board-commit*"));
        PseudoSees(export, new() { ["bin/busybox"] = "99 0 755 regular file", ["etc/motd"] = "0 0 644 regular file" });
    }

    [Fact]
    public async Task A_commit_stopped_while_staging_leaves_the_export_as_it_was_its_root_times_too()
    {
        using var fx = new ExportFixture();
        using (var serve = Serve(fx, out var port))
        await using (await AttachB1WithMotd(port, fx.Export))
            Assert.Equal(0, serve.Stop(30));
        var motd = Path.Combine(fx.Export + ".boards", "b1", "etc", "motd");
        Run.Program("chmod", "0000", motd).ShouldSucceed(); // the board's file cannot be read, so it cannot be staged
        var before = Snapshot(fx.Export);
        Thread.Sleep(50); // a time the commit sets differs from every time before it
        var stopped = Run.Tool("board", "commit", fx.Export, "b1");
        Assert.Equal(1, stopped.ExitCode);
        Assert.Contains($"board b1: cannot copy {ExportPaths.Canonical(fx.Export)}.boards/b1/etc/motd out of its layer", stopped.Stderr);
        Assert.Contains("nothing of the shared export was changed", stopped.Stderr);
        Assert.Equal(before, Snapshot(fx.Export)); // the staging directory came and went in the root: its mtime is the root's again
        Assert.False(File.Exists(Path.Combine(fx.State.Directory, "rootfs-export-board-commit.journal")));

        Run.Program("chmod", "0644", motd).ShouldSucceed();
        Run.Tool("board", "commit", fx.Export, "b1").ShouldSucceed();
        Assert.Equal("b1\n", File.ReadAllText(Path.Combine(fx.Export, "etc", "motd")));
    }

    /// <summary>Every object of an export (inode, mode, size, mtime, link target, the root included) and files.db's bytes.</summary>
    private static string Snapshot(string export)
    {
        var tree = Run.Program("find", export, "-printf", "%P %i %m %s %T@ %l\n").ShouldSucceed().Stdout;
        var db = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(PseudoState.ForExport(export).FilesDbPath)));
        return string.Join('\n', Lines(tree).Order(StringComparer.Ordinal)) + "\nfiles.db " + db;
    }

    /// <summary>`board list` once the serve has recorded the board's change (files.db is written in groups, within 200 ms).</summary>
    private static string ListWhenRecorded(string export)
    {
        for (int i = 0; ; i++)
        {
            var list = Run.Tool("board", "list", export).ShouldSucceed().Stdout;
            if (!list.Contains("no changes") || i == 20) return list;
            Thread.Sleep(100);
        }
    }

    [Fact]
    public async Task A_running_serve_commits_a_board_that_has_detached_and_every_client_sees_the_commit_at_once()
    {
        using var fx = new ExportFixture();
        using var serve = Serve(fx, out var port);
        await using var plain = await TestClient.ConnectAsync(port); // attached to the shared export throughout
        await plain.Mount(fx.Export);
        await using (var b = await AttachB1WithMotd(port, fx.Export))
            await Setattr(b, await Walk(b, 0, 2, "etc", "motd"), SetAttrMask.Uid | SetAttrMask.Gid, uid: 1234, gid: 5678);
        Assert.Equal(2, await plain.Errno(new Twalk(await Walk(plain, 0, 20, "etc"), 21, ["motd"]))); // ENOENT: the board's file is its own until the commit

        var commit = OnceDetached("commit", fx.Export, "b1"); // the board's connection is gone, and its fids with it
        Assert.Contains("the serving process does the commit of board b1", commit.Stdout);
        Assert.Contains("added     -rw-r--r-- 1234:5678 /etc/motd", commit.Stdout);
        Assert.Contains("committed board b1 into", commit.Stdout);
        Assert.Contains("board commit: committed board b1", serve.Output);

        var motd = (await plain.Call<Rgetattr>(new Tgetattr(await Walk(plain, 0, 22, "etc", "motd"), AttrMask.Basic))).Attr;
        Assert.Equal((1234u, 5678u, 3ul), (motd.Uid, motd.Gid, motd.Size)); // the plain client sees it, owners too, without reconnecting
        Assert.False(Directory.Exists(fx.Export + ".boards/b1"));
        await using (var again = await TestClient.ConnectAsync(port)) // the board attaches again: a new, empty layer over the committed export
        {
            await again.Mount(fx.Export + "@b1");
            await again.Call<Rlopen>(new Tlopen(await Walk(again, 0, 1, "etc", "motd"), 0));
            Assert.Equal("b1\n", Encoding.UTF8.GetString((await again.Call<Rread>(new Tread(1, 0, 100))).Data.Span));
        }
        Assert.Equal(0, serve.Stop(30));
        Assert.Contains("clean:", Run.Tool("check", fx.Export).ShouldSucceed().Stdout);
        PseudoSees(fx, new() { ["etc/motd"] = "1234 5678 644 regular file" });
    }

    [Fact]
    public async Task A_running_serve_resets_a_board_that_has_detached_and_the_board_then_sees_the_shared_export()
    {
        using var fx = new ExportFixture();
        using var serve = Serve(fx, out var port);
        await (await AttachB1WithMotd(port, fx.Export)).DisposeAsync();
        var reset = OnceDetached("reset", fx.Export, "b1");
        Assert.Contains("the serving process does the reset of board b1", reset.Stdout);
        Assert.Contains("board b1 reset: dropped 1 change(s): 1 added", reset.Stdout);
        Assert.False(Directory.Exists(fx.Export + ".boards/b1"));
        await using (var again = await TestClient.ConnectAsync(port))
        {
            await again.Mount(fx.Export + "@b1");
            Assert.Equal(2, await again.Errno(new Twalk(await Walk(again, 0, 1, "etc"), 2, ["motd"]))); // ENOENT: its change is gone
        }
        Assert.Equal(0, serve.Stop(30));
        Assert.False(File.Exists(Path.Combine(fx.Export, "etc", "motd")));
    }

    /// <summary>`board commit|reset` handed to the serve, again while the serve has not yet seen the board's connection close (up to 2 s).</summary>
    private static RunResult OnceDetached(string action, string export, string board)
    {
        for (int i = 0; ; i++)
        {
            var run = Run.Tool("board", action, export, board);
            if (run.ExitCode == 0 || !run.Stderr.Contains("is attached to this serve") || i == 20) return run.ShouldSucceed();
            Thread.Sleep(100);
        }
    }

    [Fact]
    public async Task A_served_board_or_export_is_refused_and_unknown_names_are_named()
    {
        using var fx = new ExportFixture();
        using (var serve = Serve(fx, out var port))
        await using (await AttachB1WithMotd(port, fx.Export))
        {
            Assert.Matches(@"^b1\s+1 change\(s\): 1 added, 0 modified, 0 deleted\s+served by pid \d+", ListWhenRecorded(fx.Export));
            var commit = Run.Tool("board", "commit", fx.Export, "b1"); // handed to the serve, which refuses an attached board
            Assert.Equal(1, commit.ExitCode);
            Assert.Contains("the serving process does the commit of board b1", commit.Stdout);
            Assert.Contains("board b1 is attached to this serve (", commit.Stderr);
            Assert.Contains("unmount it (or power the board off) and commit again", commit.Stderr);
            var unknownServed = Run.Tool("board", "commit", fx.Export, "b2");
            Assert.Equal(1, unknownServed.ExitCode);
            Assert.Contains("board b2 has no layer beside", unknownServed.Stderr);
            var reset = Run.Tool("board", "reset", fx.Export, "b1");
            Assert.Equal(1, reset.ExitCode);
            Assert.Contains("board b1 is attached to this serve (", reset.Stderr);
            Assert.Contains("and reset again", reset.Stderr);
            Assert.Equal(0, serve.Stop(30));
        }
        var unknown = Run.Tool("board", "diff", fx.Export, "b2");
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("board b2 has no layer beside", unknown.Stderr);
        Assert.Contains("boards: b1", unknown.Stderr);
        var bad = Run.Tool("board", "commit", fx.Export, "../x");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("board name '../x' must match", bad.Stderr);
        var noExport = Run.Tool("board", "list", fx.Scratch["nowhere"]);
        Assert.Equal(1, noExport.ExitCode);
        Assert.Contains("does not exist", noExport.Stderr);
        Assert.Contains("board b1 reset: dropped 1 change(s)", Run.Tool("board", "reset", fx.Export, "b1").ShouldSucceed().Stdout);
        Assert.Contains("clean:", Run.Tool("check", fx.Export).ShouldSucceed().Stdout);
    }
}
