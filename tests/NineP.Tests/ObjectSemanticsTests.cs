using RootfsExport.NineP.Protocol;
using RootfsExport.Posix;
using Xunit;

namespace RootfsExport.NineP.Tests;

/// <summary>
/// What a process on the board expects of the object behind a file it holds: chown moves the ctime, an open
/// file outlives its name (unlink, rename over it) and still answers fstat, sub-second times survive.
/// </summary>
public class ObjectSemanticsTests
{
    private const uint Root = 0;

    private static async Task<Attributes> Attr(TestClient c, uint fid) => (await c.Call<Rgetattr>(new Tgetattr(fid, AttrMask.Basic))).Attr;

    private static (ulong, ulong) Ctime(Attributes a) => (a.CtimeSec, a.CtimeNsec);

    [Fact]
    public async Task Chown_changes_ctime_for_files_and_symlinks_and_so_does_chown_minus_one()
    {
        using var fx = new ExportFixture();
        await using var srv = new RunningServer(fx.Export);
        await using var c = await TestClient.ConnectAsync(srv.Port);
        await c.Mount(fx.Export);
        await c.Call<Rwalk>(new Twalk(Root, 1, ["etc", "hostname"]));
        await c.Call<Rwalk>(new Twalk(Root, 2, ["bin", "sh"])); // a symlink: lchown
        foreach (var (fid, valid) in new[] { (1u, (SetAttrMask)0x46), (2u, (SetAttrMask)0x46), (1u, SetAttrMask.Ctime) })
        {
            var before = Ctime(await Attr(c, fid));
            await Task.Delay(30);
            await c.Call<Rsetattr>(new Tsetattr(fid, valid, 0, 1234, 5678, 0, 0, 0, 0, 0));
            Assert.True(Ctime(await Attr(c, fid)).CompareTo(before) > 0, $"ctime of fid {fid} after setattr {valid}");
        }
        var link = await Attr(c, 2);
        Assert.Equal((1234u, 5678u, 0xa1ffu), (link.Uid, link.Gid, link.Mode));
    }

    [Fact]
    public async Task An_open_unlinked_file_answers_getattr_with_nlink_0_and_keeps_its_owner()
    {
        using var fx = new ExportFixture();
        await using (var srv = new RunningServer(fx.Export))
        {
            await using var c = await TestClient.ConnectAsync(srv.Port);
            await c.Mount(fx.Export);
            await c.Call<Rwalk>(new Twalk(Root, 1, ["etc"]));
            await c.Call<Rwalk>(new Twalk(1, 2, []));
            await c.Call<Rlcreate>(new Tlcreate(2, "tmpfile", 0x8042, 0x180, 0)); // fid 2: the open file
            await c.Call<Rwrite>(new Twrite(2, 0, "private\n"u8.ToArray()));
            await c.Call<Rwalk>(new Twalk(1, 3, ["tmpfile"]));                     // fid 3: the dentry's fid
            await c.Call<Rsetattr>(new Tsetattr(3, SetAttrMask.Uid | SetAttrMask.Gid, 0, 1000, 1000, 0, 0, 0, 0, 0));

            await c.Call<Runlinkat>(new Tunlinkat(1, "tmpfile", 0));
            foreach (var fid in new[] { 2u, 3u })
            {
                var a = await Attr(c, fid);
                Assert.Equal((0ul, 1000u, 1000u, 0x8180u, 8ul), (a.Nlink, a.Uid, a.Gid, a.Mode, a.Size));
        }
        // fchmod and ftruncate of the nameless file go to its row and its inode
        await c.Call<Rsetattr>(new Tsetattr(2, SetAttrMask.Mode | SetAttrMask.Size, 0x1a0, 0, 0, 3, 0, 0, 0, 0));
        var after = await Attr(c, 3);
        Assert.Equal((0x81a0u, 3ul), (after.Mode, after.Size));
        Assert.Equal("pri"u8.ToArray(), (await c.Call<Rread>(new Tread(2, 0, 100))).Data.ToArray());
        Assert.Equal(Errno.ENOENT, await c.Errno(new Twalk(3, 4, [])));   // its name is gone: no new fid by it
        Assert.Equal(Errno.ENOENT, await c.Errno(new Twalk(1, 4, ["tmpfile"])));
        }
        // files.db is read once the server has stopped: its store commits in bursts (CommitWindowMs), on stop at the latest
        Assert.Null(fx.Row("etc/tmpfile"));
    }

    [Fact]
    public async Task A_file_replaced_by_rename_while_open_still_answers_for_itself()
    {
        using var fx = new ExportFixture();
        await using var srv = new RunningServer(fx.Export);
        await using var c = await TestClient.ConnectAsync(srv.Port);
        await c.Mount(fx.Export);
        await c.Call<Rwalk>(new Twalk(Root, 1, ["etc"]));
        await c.Call<Rwalk>(new Twalk(1, 2, ["hostname"]));
        await c.Call<Rwalk>(new Twalk(1, 3, ["hostname"]));
        var oldQid = (await c.Call<Rlopen>(new Tlopen(3, 0))).Qid;
        await c.Call<Rwalk>(new Twalk(1, 4, []));
        var newQid = (await c.Call<Rlcreate>(new Tlcreate(4, "hostname.new", 0x8042, 0x1a4, 0))).Qid;
        await c.Call<Rsetattr>(new Tsetattr(4, SetAttrMask.Uid, 0, 77, 0, 0, 0, 0, 0, 0));

        await c.Call<Rrenameat>(new Trenameat(1, "hostname.new", 1, "hostname"));
        foreach (var fid in new[] { 2u, 3u })
        {
            var a = await Attr(c, fid);
            Assert.Equal((oldQid.Path, 0ul, 0u, (ulong)ExportFixture.HostnameContent.Length), (a.Qid.Path, a.Nlink, a.Uid, a.Size));
        }
        Assert.Equal(ExportFixture.HostnameContent, System.Text.Encoding.UTF8.GetString((await c.Call<Rread>(new Tread(3, 0, 100))).Data.Span));
        var fresh = (await c.Call<Rwalk>(new Twalk(1, 5, ["hostname"]))).Qids[0];
        Assert.Equal(newQid.Path, fresh.Path);
        Assert.Equal(77u, (await Attr(c, 5)).Uid);
        Assert.Equal(77u, (await Attr(c, 4)).Uid); // the renamed file's own fid followed it
    }

    [Fact]
    public async Task Sub_second_times_are_set_and_reported()
    {
        using var fx = new ExportFixture();
        await using var srv = new RunningServer(fx.Export);
        await using var c = await TestClient.ConnectAsync(srv.Port);
        await c.Mount(fx.Export);
        await c.Call<Rwalk>(new Twalk(Root, 1, ["etc", "hostname"]));
        await c.Call<Rsetattr>(new Tsetattr(1, SetAttrMask.Atime | SetAttrMask.AtimeSet | SetAttrMask.Mtime | SetAttrMask.MtimeSet,
            0, 0, 0, 0, 1_600_000_000, 123_456_789, 1_600_000_001, 987_654_321));
        var a = await Attr(c, 1);
        Assert.Equal((1_600_000_000ul, 123_456_789ul, 1_600_000_001ul, 987_654_321ul), (a.AtimeSec, a.AtimeNsec, a.MtimeSec, a.MtimeNsec));
    }
}
