using RootfsExport.ExportServing;
using RootfsExport.NineP.Protocol;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.NineP.Tests;

/// <summary>The server over loopback TCP with an in-process client: ownership from the DB, writes recorded, confinement.</summary>
[Collection(FdCountingCollection.Name)]
public class ServerTests
{
    private const uint Root = 0;

    private static async Task<uint> Walk(TestClient c, uint newFid, params string[] names)
    {
        var r = await c.Call<Rwalk>(new Twalk(Root, newFid, names));
        Assert.Equal(names.Length, r.Qids.Count);
        return newFid;
    }

    [Fact]
    public async Task Getattr_reports_owners_modes_and_devices_from_the_database()
    {
        using var fx = new ExportFixture();
        await using var srv = new RunningServer(fx.Export);
        await using var c = await TestClient.ConnectAsync(srv.Port);
        var rootQid = await c.Mount(fx.Export);
        Assert.Equal(QidType.Dir, rootQid.Type);

        var root = (await c.Call<Rgetattr>(new Tgetattr(Root, AttrMask.Basic))).Attr;
        Assert.Equal((0u, 0u, 0x41edu), (root.Uid, root.Gid, root.Mode));

        var shared = (await c.Call<Rgetattr>(new Tgetattr(await Walk(c, 1, "srv", "shared"), AttrMask.Basic))).Attr;
        Assert.Equal((0u, 42u, 0x45edu), (shared.Uid, shared.Gid, shared.Mode)); // drwxr-sr-x 0:42

        var devnull = (await c.Call<Rgetattr>(new Tgetattr(await Walk(c, 2, "dev", "null"), AttrMask.Basic))).Attr;
        Assert.Equal(0x21b6u, devnull.Mode); // crw-rw-rw-
        Assert.Equal((ulong)(1 << 8 | 3), devnull.Rdev);

        var tool = (await c.Call<Rgetattr>(new Tgetattr(await Walk(c, 3, "bin", "tool"), AttrMask.Basic))).Attr;
        Assert.Equal(0x89edu, tool.Mode); // setuid in the DB, never on disk
        Assert.Equal(0, (int)(new FileInfo(Path.Combine(fx.Export, "bin/tool")).UnixFileMode & UnixFileMode.SetUser));
        // size from the host
        var host = (await c.Call<Rgetattr>(new Tgetattr(await Walk(c, 4, "etc", "hostname"), AttrMask.Basic))).Attr;
        Assert.Equal((ulong)ExportFixture.HostnameContent.Length, host.Size);
    }

    [Fact]
    public async Task Read_readdir_and_readlink()
    {
        using var fx = new ExportFixture();
        await using var srv = new RunningServer(fx.Export);
        await using var c = await TestClient.ConnectAsync(srv.Port);
        await c.Mount(fx.Export);

        var f = await Walk(c, 1, "etc", "hostname");
        Assert.Equal(0u, (await c.Call<Rlopen>(new Tlopen(f, 0))).Iounit); // files: msize - 24, the client's default
        Assert.Equal(ExportFixture.HostnameContent, System.Text.Encoding.UTF8.GetString(await c.ReadAll(f)));
        await c.Call<Rclunk>(new Tclunk(f));

        var d = await Walk(c, 2, "dev");
        // directories: Linux sizes its Treaddir receive buffers by the iounit, so it stays at 64 KiB
        Assert.Equal(65536u, (await c.Call<Rlopen>(new Tlopen(d, 0x10000))).Iounit);
        var entries = await c.ReadDir(d);
        Assert.Equal(new[] { ".", "..", "null" }, entries.Select(e => e.Name).Order().ToArray());
        Assert.Equal(2, entries.Single(e => e.Name == "null").Type); // DT_CHR from the DB

        var l = await Walk(c, 3, "bin", "sh");
        Assert.Equal("tool", (await c.Call<Rreadlink>(new Treadlink(l))).Target);
    }

    [Fact]
    public async Task Creations_changes_and_removals_are_recorded_in_files_db()
    {
        using var fx = new ExportFixture();
        await using (var srv = new RunningServer(fx.Export))
        await using (var c = await TestClient.ConnectAsync(srv.Port))
        {
            await c.Mount(fx.Export);
            // create + write + chown, as `echo x > f; chown 1234:5678 f` in a guest
            var f = await Walk(c, 1, "etc");
            var q = (await c.Call<Rlcreate>(new Tlcreate(f, "motd", 0x8042, 0x1a4, 0))).Qid;
            Assert.Equal(QidType.File, q.Type);
            Assert.Equal(6u, (await c.Call<Rwrite>(new Twrite(f, 0, "hello\n"u8.ToArray()))).Count);
            await c.Call<Rsetattr>(new Tsetattr(f, (SetAttrMask)0x46, 0, 1234, 5678, 0, 0, 0, 0, 0));
            await c.Call<Rsetattr>(new Tsetattr(f, SetAttrMask.Mode, 0xdb6 /* 06666 */, 0, 0, 0, 0, 0, 0, 0));
            await c.Call<Rclunk>(new Tclunk(f));

            var d = await Walk(c, 2, "srv", "shared");
            await c.Call<Rmkdir>(new Tmkdir(d, "sub", 0x43ed, 42));
            await c.Call<Rsymlink>(new Tsymlink(d, "link", "../../etc/motd", 42));
            await c.Call<Rmknod>(new Tmknod(d, "console", 0x2180, 5, 1, 0));
            await c.Call<Rmknod>(new Tmknod(d, "fifo", 0x1180, 0, 0, 0));
            var m = await Walk(c, 3, "etc", "motd");
            await c.Call<Rlink>(new Tlink(d, m, "motd.hard"));

            // rename keeps the owner, and moves the subtree's rows
            var sub = await Walk(c, 4, "srv", "shared", "sub");
            await c.Call<Rlcreate>(new Tlcreate(sub, "inner", 0x8042, 0x1a4, 7));
            await c.Call<Rclunk>(new Tclunk(sub));
            var etc = await Walk(c, 5, "etc");
            await c.Call<Rrenameat>(new Trenameat(etc, "motd", etc, "motd.renamed"));
            await c.Call<Rrenameat>(new Trenameat(d, "sub", d, "sub2"));
            // a fid walked before the rename still reaches the object
            Assert.Equal(1234u, (await c.Call<Rgetattr>(new Tgetattr(m, AttrMask.Basic))).Attr.Uid);
            // unlink and rmdir
            await c.Call<Rlcreate>(new Tlcreate(await Walk(c, 6, "etc"), "gone", 0x8042, 0x1a4, 0));
            await c.Call<Runlinkat>(new Tunlinkat(etc, "gone", 0));
            await c.Call<Rmkdir>(new Tmkdir(etc, "emptydir", 0x41ed, 0));
            await c.Call<Runlinkat>(new Tunlinkat(etc, "emptydir", 0x200));
        }

        var motd = fx.Row("etc/motd.renamed")!;
        Assert.Equal((1234u, 5678u, 0x8db6u), (motd.Uid, motd.Gid, motd.Mode));
        Assert.Null(fx.Row("etc/motd"));
        var onDisk = new FileInfo(Path.Combine(fx.Export, "etc/motd.renamed"));
        Assert.Equal("hello\n", File.ReadAllText(onDisk.FullName));
        Assert.Equal(0, (int)(onDisk.UnixFileMode & (UnixFileMode.SetUser | UnixFileMode.SetGroup | UnixFileMode.OtherWrite)));
        var hard = fx.Row("srv/shared/motd.hard")!;
        Assert.Equal((motd.Dev, motd.Ino, 1234u), (hard.Dev, hard.Ino, hard.Uid));
        // a directory made in the setgid srv/shared is setgid too, and what is made in it gets its group
        Assert.Equal((0u, 42u, 0x47edu), (fx.Row("srv/shared/sub2")!.Uid, fx.Row("srv/shared/sub2")!.Gid, fx.Row("srv/shared/sub2")!.Mode));
        Assert.Equal(42u, fx.Row("srv/shared/sub2/inner")!.Gid);
        Assert.Null(fx.Row("srv/shared/sub/inner"));
        Assert.Equal(0xa1ffu, fx.Row("srv/shared/link")!.Mode);
        var console = fx.Row("srv/shared/console")!;
        Assert.Equal((0x2180u, Libc.MakeDev(5, 1)), (console.Mode, console.Rdev));
        Assert.True(File.Exists(Path.Combine(fx.Export, "srv/shared/console")));
        Assert.Equal(0L, new FileInfo(Path.Combine(fx.Export, "srv/shared/console")).Length);
        Assert.Equal(0x1180u, fx.Row("srv/shared/fifo")!.Mode);
        Assert.Null(fx.Row("etc/gone"));
        Assert.Null(fx.Row("etc/emptydir"));
        Assert.False(File.Exists(Path.Combine(fx.Export, "etc/gone")));
    }

    [Fact]
    public async Task Fids_follow_renames_of_the_directories_above_them_and_never_reach_a_replaced_one()
    {
        using var fx = new ExportFixture();
        await using (var srv = new RunningServer(fx.Export))
        await using (var c = await TestClient.ConnectAsync(srv.Port))
        {
            await c.Mount(fx.Export);
            var d = await Walk(c, 1, "srv", "shared");
            await c.Call<Rmkdir>(new Tmkdir(d, "a", 0x41ed, 0));
            Assert.Single((await c.Call<Rwalk>(new Twalk(d, 2, ["a"]))).Qids);
            await c.Call<Rwalk>(new Twalk(2, 3, []));
            var fq = (await c.Call<Rlcreate>(new Tlcreate(3, "f", 0x8042, 0x1a4, 0))).Qid;
            Assert.Equal(fq.Path, (await c.Call<Rwalk>(new Twalk(2, 4, ["f"]))).Qids[0].Path); // a walk from the dir fid

            await c.Call<Rrenameat>(new Trenameat(d, "a", d, "b"));
            // the dir fid and the file fids below now are srv/shared/b and srv/shared/b/f
            Assert.Equal(fq.Path, (await c.Call<Rgetattr>(new Tgetattr(4, AttrMask.Basic))).Attr.Qid.Path);
            Assert.Equal(fq.Path, (await c.Call<Rwalk>(new Twalk(2, 5, ["f"]))).Qids[0].Path);
            await c.Call<Rmkdir>(new Tmkdir(2, "made-in-b", 0x41ed, 7));
            Assert.True(Directory.Exists(Path.Combine(fx.Export, "srv/shared/b/made-in-b")));

            // a new "a" is a different directory: its name reaches the new one, the old fid stays with "b"
            await c.Call<Rmkdir>(new Tmkdir(d, "a", 0x41ed, 0));
            Assert.Single((await c.Call<Rwalk>(new Twalk(d, 6, ["a"]))).Qids);
            await c.Call<Rlcreate>(new Tlcreate(6, "g", 0x8042, 0x1a4, 0));
            Assert.Equal(Errno.ENOENT, await c.Errno(new Twalk(2, 7, ["g"])));
            Assert.Single((await c.Call<Rwalk>(new Twalk(d, 7, ["a", "g"]))).Qids.Skip(1));
            Assert.True(File.Exists(Path.Combine(fx.Export, "srv/shared/a/g")));
            Assert.True(File.Exists(Path.Combine(fx.Export, "srv/shared/b/f")));

            // an object renamed away from under its fid: the fid follows it to its new directory
            await c.Call<Rrenameat>(new Trenameat(2, "f", d, "f-moved"));
            Assert.Equal(fq.Path, (await c.Call<Rgetattr>(new Tgetattr(4, AttrMask.Basic))).Attr.Qid.Path);
            await c.Call<Rsetattr>(new Tsetattr(4, SetAttrMask.Uid, 0, 4321, 0, 0, 0, 0, 0, 0));
        }
        Assert.Equal(4321u, fx.Row("srv/shared/f-moved")!.Uid);
        Assert.Equal(42u, fx.Row("srv/shared/b/made-in-b")!.Gid); // b is in the setgid srv/shared, so setgid itself
        Assert.Null(fx.Row("srv/shared/b/f"));
    }

    [Fact]
    public async Task Xattrs_including_capabilities_live_in_the_database()
    {
        using var fx = new ExportFixture();
        var cap = Convert.FromHexString("0100000200200000000000000000000000000000");
        await using (var srv = new RunningServer(fx.Export))
        await using (var c = await TestClient.ConnectAsync(srv.Port))
        {
            await c.Mount(fx.Export);
            var f = await Walk(c, 1, "bin", "tool");
            Assert.Equal(Errno.ENODATA, await c.Errno(new Txattrwalk(f, 2, "security.capability")));
            var w = await Walk(c, 3, "bin", "tool");
            await c.Call<Rxattrcreate>(new Txattrcreate(w, "security.capability", (ulong)cap.Length, 0));
            await c.Call<Rwrite>(new Twrite(w, 0, cap));
            await c.Call<Rclunk>(new Tclunk(w));
            Assert.Equal(20ul, (await c.Call<Rxattrwalk>(new Txattrwalk(f, 4, "security.capability"))).Size);
            Assert.Equal(cap, await c.ReadAll(4));
            Assert.Equal(20ul + 0, (await c.Call<Rxattrwalk>(new Txattrwalk(f, 5, ""))).Size); // "security.capability\0"
            // size mismatch at clunk fails and records nothing
            var bad = await Walk(c, 6, "etc", "hostname");
            await c.Call<Rxattrcreate>(new Txattrcreate(bad, "user.x", 10, 0));
            await c.Call<Rwrite>(new Twrite(bad, 0, "abc"u8.ToArray()));
            Assert.Equal(Errno.EINVAL, await c.Errno(new Tclunk(bad)));
        }
        Assert.Equal(cap, fx.Xattr("bin/tool", "security.capability"));
        Assert.Null(fx.Xattr("etc/hostname", "user.x"));
        Assert.Empty(ListHostXattrs(Path.Combine(fx.Export, "bin/tool")));
    }

    [Fact]
    public async Task A_file_created_here_has_no_xattrs_until_one_is_set()
    {
        using var fx = new ExportFixture();
        var cap = Convert.FromHexString("0100000200200000000000000000000000000000");
        await using (var srv = new RunningServer(fx.Export))
        await using (var c = await TestClient.ConnectAsync(srv.Port))
        {
            await c.Mount(fx.Export);
            var d = await Walk(c, 1, "etc");
            await c.Call<Rlcreate>(new Tlcreate(d, "made", 0x8042, 0x1ed, 0));
            var f = await Walk(c, 2, "etc", "made");
            Assert.Equal(Errno.ENODATA, await c.Errno(new Txattrwalk(f, 3, "security.capability")));
            Assert.Equal(0ul, (await c.Call<Rxattrwalk>(new Txattrwalk(f, 4, ""))).Size);
            var w = await Walk(c, 5, "etc", "made");
            await c.Call<Rxattrcreate>(new Txattrcreate(w, "security.capability", (ulong)cap.Length, 0));
            await c.Call<Rwrite>(new Twrite(w, 0, cap));
            await c.Call<Rclunk>(new Tclunk(w));
            Assert.Equal(20ul, (await c.Call<Rxattrwalk>(new Txattrwalk(f, 6, "security.capability"))).Size);
            Assert.Equal(cap, await c.ReadAll(6));
        }
        Assert.Equal(cap, fx.Xattr("etc/made", "security.capability"));
    }

    private static unsafe string ListHostXattrs(string path)
    {
        var buf = new byte[1024];
        fixed (byte* p = buf)
        {
            nint n = Libc.Llistxattr(path, p, (nuint)buf.Length);
            return n <= 0 ? "" : System.Text.Encoding.UTF8.GetString(buf, 0, (int)n).Replace("security.selinux\0", "");
        }
    }

    [Fact]
    public async Task Nothing_outside_the_export_is_reachable()
    {
        using var fx = new ExportFixture();
        var before = fx.OutsideListing();
        await using var srv = new RunningServer(fx.Export);
        await using var c = await TestClient.ConnectAsync(srv.Port);
        var rootQid = await c.Mount(fx.Export);

        // '..' at the root stays at the root, also in the middle of a walk
        var up = await c.Call<Rwalk>(new Twalk(Root, 1, ["..", "..", ".."]));
        Assert.All(up.Qids, q => Assert.Equal(rootQid, q));
        var viaUp = await c.Call<Rwalk>(new Twalk(Root, 2, ["etc", "..", "..", "etc", "hostname"]));
        Assert.Equal(5, viaUp.Qids.Count);
        Assert.Single((await c.Call<Rwalk>(new Twalk(Root, 3, ["..", "outside"]))).Qids); // partial walk: stops at the root

        // symlinks are returned, never followed: not in a walk, not on open
        var esc = await c.Call<Rwalk>(new Twalk(Root, 4, ["escape", "secret"]));
        Assert.Single(esc.Qids);
        Assert.Equal(QidType.Symlink, esc.Qids[0].Type);
        Assert.Single((await c.Call<Rwalk>(new Twalk(Root, 5, ["etc-link", "passwd"]))).Qids);
        await c.Call<Rwalk>(new Twalk(Root, 6, ["escape"]));
        Assert.Equal(Errno.ELOOP, await c.Errno(new Tlopen(6, 0)));
        // a symlink the client makes does not help either
        await c.Call<Rsymlink>(new Tsymlink(Root, "mine", "/etc/passwd", 0));
        await c.Call<Rwalk>(new Twalk(Root, 7, ["mine"]));
        Assert.Equal(Errno.ELOOP, await c.Errno(new Tlopen(7, 2)));
        Assert.NotEqual(0, await c.Errno(new Tsetattr(7, SetAttrMask.Size, 0, 0, 0, 0, 0, 0, 0, 0)));
        // names with slashes are refused
        Assert.Equal(Errno.EINVAL, await c.Errno(new Twalk(Root, 8, ["../outside"])));
        Assert.Equal(Errno.EINVAL, await c.Errno(new Tlcreate(await Walk(c, 9, "etc"), "../../outside/x", 0x42, 0x1a4, 0)));
        Assert.Equal(Errno.EINVAL, await c.Errno(new Tmkdir(Root, "..", 0x41ed, 0)));
        // attach names outside the export are refused
        await using var c2 = await TestClient.ConnectAsync(srv.Port);
        await c2.Call<Rversion>(new Tversion(65536, "9P2000.L"));
        Assert.Equal(Errno.EPERM, await c2.Errno(new Tattach(0, P9.NoFid, "root", "/etc", P9.NoUname)));
        Assert.Equal(Errno.EPERM, await c2.Errno(new Tattach(0, P9.NoFid, "root", fx.Outside, P9.NoUname)));
        Assert.NotEqual(0, await c2.Errno(new Tattach(0, P9.NoFid, "root", fx.Export + "/../outside", P9.NoUname)));
        Assert.NotEqual(0, await c2.Errno(new Tattach(0, P9.NoFid, "root", fx.Export + "/escape", P9.NoUname)));
        await c2.Call<Rattach>(new Tattach(1, P9.NoFid, "root", fx.Export + "/etc", P9.NoUname));
        Assert.All((await c2.Call<Rwalk>(new Twalk(1, 2, ["..", ".."]))).Qids, q => Assert.Equal(rootQid, q));

        Assert.Equal(before, fx.OutsideListing());
        Assert.Equal("outside the export\n", File.ReadAllText(Path.Combine(fx.Outside, "secret")));
    }

    [Fact]
    public async Task Many_tags_in_flight_msize_1MiB_and_flush()
    {
        using var fx = new ExportFixture(bigFileBytes: 3 << 20);
        await using var srv = new RunningServer(fx.Export);
        await using var c = await TestClient.ConnectAsync(srv.Port);
        await c.Mount(fx.Export, msize: (1 << 20) + 24);
        Assert.Equal((uint)(1 << 20) + 24, c.Msize);

        var f = await Walk(c, 1, "srv", "big.bin");
        await c.Call<Rlopen>(new Tlopen(f, 0));
        var first = await c.Call<Rread>(new Tread(f, 0, 1 << 20));
        Assert.Equal(1 << 20, first.Data.Length);
        Assert.Equal(File.ReadAllBytes(Path.Combine(fx.Export, "srv/big.bin")), await c.ReadAll(f));

        // 64 pipelined requests on distinct tags, each answered once
        var tasks = Enumerable.Range(0, 64).Select(i => i % 2 == 0
            ? c.SendAsync(new Tgetattr(Root, AttrMask.Basic))
            : c.SendAsync(new Tread(f, (ulong)i * 4096, 65536))).ToArray();
        var replies = await Task.WhenAll(tasks);
        Assert.All(replies, r => Assert.IsNotType<Rlerror>(r));

        // Tflush: answered after the flushed request's reply, and also for an unknown tag
        ushort readTag = c.NewTag();
        var read = c.SendAsync(new Tread(f, 0, 1 << 20), readTag);
        var flush = c.SendAsync(new Tflush(readTag));
        await Task.WhenAll(read, flush);
        Assert.IsType<Rflush>(await flush);
        lock (c.ReplyOrder)
        {
            int readAt = c.ReplyOrder.FindLastIndex(x => x.Tag == readTag);
            int flushAt = c.ReplyOrder.FindLastIndex(x => x.Type == MessageType.Rflush);
            Assert.True(readAt < flushAt, "Rflush came before the flushed reply");
        }
        Assert.IsType<Rflush>(await c.SendAsync(new Tflush(4242)));
    }

    [Fact]
    public async Task Fids_and_fds_are_released_on_clunk_and_disconnect()
    {
        using var fx = new ExportFixture();
        await using var srv = new RunningServer(fx.Export);
        await using (var warm = await TestClient.ConnectAsync(srv.Port)) await warm.Mount(fx.Export);
        await Task.Delay(200);
        int before = Directory.GetFiles("/proc/self/fd").Length;
        await using (var c = await TestClient.ConnectAsync(srv.Port))
        {
            await c.Mount(fx.Export);
            for (uint i = 1; i <= 200; i++)
            {
                await c.Call<Rwalk>(new Twalk(Root, i, ["etc", "hostname"]));
                await c.Call<Rlopen>(new Tlopen(i, 0));
            }
            Assert.True(Directory.GetFiles("/proc/self/fd").Length >= before + 200);
            for (uint i = 1; i <= 100; i++) await c.Call<Rclunk>(new Tclunk(i));
            Assert.Equal(Errno.EBADF, await c.Errno(new Tread(1, 0, 10)));
        }
        for (int i = 0; i < 50 && Directory.GetFiles("/proc/self/fd").Length > before + 2; i++) await Task.Delay(100);
        Assert.InRange(Directory.GetFiles("/proc/self/fd").Length, 0, before + 2);
    }

    [Fact]
    public async Task Tauth_is_refused_the_way_diod_clients_expect_and_attach_by_n_uname_works()
    {
        using var fx = new ExportFixture();
        await using var srv = new RunningServer(fx.Export);
        await using var c = await TestClient.ConnectAsync(srv.Port);
        await c.Call<Rversion>(new Tversion(65536, "9P2000.L"));
        Assert.Equal(Errno.ENOENT, await c.Errno(new Tauth(1, "", fx.Export, 1000)));
        await c.Call<Rattach>(new Tattach(5, P9.NoFid, "root", fx.Export, P9.NoUname));
        await c.Call<Rmkdir>(new Tmkdir(5, "pub", 0x41ff, 0)); // 0777: uid 1000 may create in it
        await c.Call<Rattach>(new Tattach(0, P9.NoFid, "", fx.Export + "/pub", 1000));
        await c.Call<Rlcreate>(new Tlcreate(0, "by1000", 0x42, 0x1a4, 1000));
        Assert.Equal(1000u, (await c.Call<Rgetattr>(new Tgetattr(0, AttrMask.Basic))).Attr.Uid);
        Assert.Equal(Errno.EOPNOTSUPP, await c.Errno(new Rclunk())); // an R-message sent as a request
    }

    [Fact]
    public void Serving_is_refused_without_state_and_while_pseudo_is_live()
    {
        using var scratch = new ScratchDir("rfe-9p");
        Directory.CreateDirectory(scratch["bare"]);
        var e = Assert.Throws<UserFacingException>(() => ExportServer.Open(scratch["bare"]));
        Assert.Contains("unpack", e.Message);

        using var fx = new ExportFixture();
        Run.RequirePeer("pseudo");
        var env = new Dictionary<string, string> { ["PSEUDO_PREFIX"] = "/usr", ["PSEUDO_LOCALSTATEDIR"] = fx.State.Directory };
        // a pseudo server (it exits by itself after 30 s idle) holding pseudo.lock
        // (pseudo -d's parent may die of its daemon's SIGUSR1 on a busy machine: the held lock is what counts)
        Run.Program("pseudo", ["-d"], asUnprivileged: true, env: env, timeout: TimeSpan.FromSeconds(60));
        for (int i = 0; i < 100 && fx.State.LiveServerPid() is null; i++) Thread.Sleep(100);
        try
        {
            Assert.NotNull(fx.State.LiveServerPid());
            var live = Assert.Throws<UserFacingException>(() => ExportServer.Open(fx.Export));
            Assert.Contains("pseudo", live.Message);
        }
        finally
        {
            Run.Program("pseudo", ["-S"], asUnprivileged: true, env: env, timeout: TimeSpan.FromSeconds(60));
        }
    }
}
