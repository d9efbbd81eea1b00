using RootfsExport.NineP.Protocol;
using RootfsExport.Posix;
using Xunit;

namespace RootfsExport.NineP.Tests;

/// <summary>
/// What a board mounted with access=user sends: one attach per uid (uname "", n_uname = the uid). New objects
/// belong to their creator, permissions come from files.db and the export's etc/passwd and etc/group, root
/// is never checked, setgid directories hand down their group (and to directories their setgid bit).
/// </summary>
public class AccessUserTests
{
    private const uint Root = 0, Alice = 100, Bob = 200;

    private static void WriteUsers(ExportFixture fx)
    {
        File.WriteAllText(Path.Combine(fx.Export, "etc/passwd"), "root:x:0:0:root:/root:/bin/sh\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/sh\n");
        File.WriteAllText(Path.Combine(fx.Export, "etc/group"), "root:x:0:\nstaff:x:50:alice\nalice:x:1000:\nbob:x:1001:\n");
    }

    private static async Task AttachAs(TestClient c, ExportFixture fx, uint fid, uint uid) =>
        await c.Call<Rattach>(new Tattach(fid, P9.NoFid, "", fx.Export, uid));

    private static async Task<uint> Walk(TestClient c, uint from, uint newFid, params string[] names)
    {
        Assert.Equal(names.Length, (await c.Call<Rwalk>(new Twalk(from, newFid, names))).Qids.Count);
        return newFid;
    }

    [Fact]
    public async Task Users_own_what_they_create_and_get_only_what_the_database_modes_allow()
    {
        using var fx = new ExportFixture();
        WriteUsers(fx);
        await using (var srv = new RunningServer(fx.Export))
        await using (var c = await TestClient.ConnectAsync(srv.Port))
        {
            await c.Mount(fx.Export);
            await AttachAs(c, fx, Alice, 1000);
            await AttachAs(c, fx, Bob, 1001);
            await c.Call<Rmkdir>(new Tmkdir(Root, "tmp", 0x3ff | 0x200, 0));      // 01777
            await c.Call<Rmkdir>(new Tmkdir(Root, "proj", 0x400 | 0x1fd, 50));     // 02775 root:staff
            var etc = await Walk(c, Root, 1, "etc");
            await c.Call<Rlcreate>(new Tlcreate(etc, "secret", 0x8042, 0x180, 0)); // 0600 root:root

            // alice: no write in /etc, no read of a 0600 root file, reads 0644
            Assert.Equal(Errno.EACCES, await c.Errno(new Tlcreate(await Walk(c, Alice, 10, "etc"), "mine", 0x8042, 0x1a4, 1000)));
            Assert.Equal(Errno.EACCES, await c.Errno(new Tlopen(await Walk(c, Alice, 11, "etc", "secret"), 0)));
            await c.Call<Rlopen>(new Tlopen(await Walk(c, Alice, 12, "etc", "hostname"), 0));

            // alice in the sticky /tmp: hers, with the gid her process has (the client sends it)
            var tmp = await Walk(c, Alice, 13, "tmp");
            await c.Call<Rlcreate>(new Tlcreate(await Walk(c, tmp, 14), "a", 0x8042, 0x1a4, 1000));
            await c.Call<Rmkdir>(new Tmkdir(tmp, "d", 0x1ed, 1000));
            await c.Call<Rsymlink>(new Tsymlink(tmp, "l", "a", 1000));
            await c.Call<Rmknod>(new Tmknod(tmp, "p", 0x1000 | 0x1a4, 0, 0, 0));
            Assert.Equal(Errno.EPERM, await c.Errno(new Tmknod(tmp, "c", 0x2000 | 0x1a4, 1, 3, 1000)));
            // chown away: no; chgrp to a group of hers: yes; to bob's: no
            var a = await Walk(c, tmp, 15, "a");
            Assert.Equal(Errno.EPERM, await c.Errno(new Tsetattr(a, SetAttrMask.Uid, 0, 1001, 0, 0, 0, 0, 0, 0)));
            await c.Call<Rsetattr>(new Tsetattr(a, SetAttrMask.Gid, 0, 0, 50, 0, 0, 0, 0, 0));
            Assert.Equal(Errno.EPERM, await c.Errno(new Tsetattr(a, SetAttrMask.Gid, 0, 0, 1001, 0, 0, 0, 0, 0)));

            // bob: may not remove alice's file from the sticky /tmp, nor chmod it, nor write it
            var bobTmp = await Walk(c, Bob, 20, "tmp");
            Assert.Equal(Errno.EPERM, await c.Errno(new Tunlinkat(bobTmp, "a", 0)));
            Assert.Equal(Errno.EPERM, await c.Errno(new Tsetattr(await Walk(c, bobTmp, 21, "a"), SetAttrMask.Mode, 0x1ff, 0, 0, 0, 0, 0, 0, 0)));
            Assert.Equal(Errno.EACCES, await c.Errno(new Tlopen(await Walk(c, bobTmp, 22, "a"), 1)));

            // the setgid directory hands down staff, and its setgid bit to a new directory
            var proj = await Walk(c, Alice, 30, "proj");
            await c.Call<Rmkdir>(new Tmkdir(proj, "sub", 0x1ed, 1000));
            await c.Call<Rlcreate>(new Tlcreate(await Walk(c, proj, 31), "f", 0x8042, 0x1a4, 1000));
            Assert.Equal(Errno.EACCES, await c.Errno(new Tmkdir(await Walk(c, Bob, 32, "proj"), "no", 0x1ed, 1001)));

            // root is never checked
            await c.Call<Runlinkat>(new Tunlinkat(await Walk(c, Root, 40, "tmp"), "p", 0));
        }
        Assert.Equal((1000u, 50u, 0x81a4u), Owner(fx, "tmp/a"));
        Assert.Equal((1000u, 1000u, 0x41edu), Owner(fx, "tmp/d"));
        Assert.Equal((1000u, 1000u, 0xa1ffu), Owner(fx, "tmp/l"));
        Assert.Null(fx.Row("tmp/p"));
        Assert.Null(fx.Row("etc/mine"));
        Assert.Equal((1000u, 50u, 0x45edu), Owner(fx, "proj/sub"));
        Assert.Equal((1000u, 50u, 0x81a4u), Owner(fx, "proj/f"));
    }

    [Fact]
    public async Task Search_permission_in_a_directory_comes_from_its_row_and_without_one_from_the_host()
    {
        using var fx = new ExportFixture();
        WriteUsers(fx);
        await using var srv = new RunningServer(fx.Export);
        await using var c = await TestClient.ConnectAsync(srv.Port);
        await c.Mount(fx.Export);
        await AttachAs(c, fx, Alice, 1000);
        await c.Call<Rmkdir>(new Tmkdir(Root, "private", 0x1c0, 0));       // 0700 root:root in files.db
        await c.Call<Rlcreate>(new Tlcreate(await Walk(c, Root, 1, "private"), "f", 0x8042, 0x1a4, 0));
        File.SetUnixFileMode(Path.Combine(fx.Export, "private"), (UnixFileMode)0x1ff); // the host's mode says 0777
        var hostMade = Directory.CreateDirectory(Path.Combine(fx.Export, "hostmade")); // no row: the host decides
        File.WriteAllText(Path.Combine(hostMade.FullName, "g"), "");
        hostMade.UnixFileMode = (UnixFileMode)0x1c0;

        Assert.Equal(Errno.EACCES, await c.Errno(new Twalk(await Walk(c, Alice, 10, "private"), 11, ["f"])));
        Assert.Equal(Errno.EACCES, await c.Errno(new Twalk(await Walk(c, Alice, 12, "hostmade"), 13, ["g"])));
        hostMade.UnixFileMode = (UnixFileMode)0x1ed;
        await Walk(c, Alice, 14, "hostmade", "g");
        await Walk(c, Root, 15, "private", "f");
    }

    private static (uint, uint, uint) Owner(ExportFixture fx, string rel)
    {
        var row = fx.Row(rel) ?? throw new Xunit.Sdk.XunitException($"no row for {rel}");
        return (row.Uid, row.Gid, row.Mode);
    }
}
