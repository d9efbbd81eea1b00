using System.Security.Cryptography;
using System.Text;
using RootfsExport.ExportServing;
using RootfsExport.NineP.Protocol;
using RootfsExport.Posix;
using RootfsExport.PseudoDb;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.NineP.Tests;

/// <summary>
/// Issue #23: boards attached as "&lt;export&gt;@&lt;board&gt;" each see the shared export with their own copy-on-write
/// layer: their changes land in &lt;export&gt;.boards/&lt;board&gt;/ and its own files.db (read back with real pseudo),
/// the shared export and its files.db never change, and the shared export's later changes show through.
/// </summary>
public sealed class BoardOverlayTests
{
    private const uint Root = 0;
    private const uint WriteTrunc = 0x8201; // O_WRONLY | O_TRUNC | O_LARGEFILE
    private const uint CreateWrite = 0x8042; // O_RDWR | O_CREAT | O_LARGEFILE

    private static async Task<uint> Walk(TestClient c, uint newFid, params string[] names)
    {
        var r = await c.Call<Rwalk>(new Twalk(Root, newFid, names));
        Assert.True(names.Length == r.Qids.Count, $"walk {string.Join('/', names)}: {r.Qids.Count} of {names.Length}");
        return newFid;
    }

    private static async Task<string> ReadText(TestClient c, uint fid, params string[] path)
    {
        await Walk(c, fid, path);
        await c.Call<Rlopen>(new Tlopen(fid, 0));
        var text = Encoding.UTF8.GetString(await c.ReadAll(fid));
        await c.Call<Rclunk>(new Tclunk(fid));
        return text;
    }

    private static async Task<string[]> List(TestClient c, uint fid, params string[] path)
    {
        await Walk(c, fid, path);
        await c.Call<Rlopen>(new Tlopen(fid, 0x10000));
        var names = (await c.ReadDir(fid)).Select(e => e.Name).Where(n => n is not ("." or "..")).Order(StringComparer.Ordinal).ToArray();
        await c.Call<Rclunk>(new Tclunk(fid));
        return names;
    }

    private static async Task Overwrite(TestClient c, uint fid, string text, params string[] path)
    {
        await Walk(c, fid, path);
        await c.Call<Rlopen>(new Tlopen(fid, WriteTrunc));
        await c.Call<Rwrite>(new Twrite(fid, 0, Encoding.UTF8.GetBytes(text)));
        await c.Call<Rclunk>(new Tclunk(fid));
    }

    /// <summary>Every path of the export with its type, host mode and content hash, and files.db's bytes: what no board may change.</summary>
    internal static string Fingerprint(ExportFixture fx) => Fingerprint(fx.Export);

    internal static string Fingerprint(string export)
    {
        var sb = new StringBuilder();
        foreach (var p in Directory.EnumerateFileSystemEntries(export, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal))
        {
            var info = new FileInfo(p);
            sb.Append(p[export.Length..]).Append(' ').Append(info.Attributes.HasFlag(FileAttributes.ReparsePoint) ? "l:" + info.LinkTarget
                : Directory.Exists(p) ? "d" : Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(p))));
            sb.Append(' ').Append(info.UnixFileMode).Append('\n');
        }
        sb.Append("files.db ").Append(Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(PseudoState.ForExport(export).FilesDbPath))));
        return sb.ToString();
    }

    [Fact]
    public async Task Two_boards_change_only_their_own_layers_and_the_shared_export_stays_as_it_was()
    {
        using var fx = new ExportFixture();
        var before = Fingerprint(fx);
        await using (var srv = new RunningServer(fx.Export))
        await using (var b1 = await TestClient.ConnectAsync(srv.Port))
        await using (var b2 = await TestClient.ConnectAsync(srv.Port))
        {
            await b1.Mount(fx.Export + "@rock3a");
            await b2.Mount(fx.Export + "@imx8mp.2");
            // rock3a: creates and chowns, overwrites, chmods, deletes a file, replaces a directory
            var etc = await Walk(b1, 1, "etc");
            await b1.Call<Rlcreate>(new Tlcreate(etc, "motd", CreateWrite, 0x1a4, 0));
            await b1.Call<Rwrite>(new Twrite(etc, 0, "rock3a\n"u8.ToArray()));
            await b1.Call<Rsetattr>(new Tsetattr(etc, SetAttrMask.Uid | SetAttrMask.Gid, 0, 1234, 5678, 0, 0, 0, 0, 0));
            await b1.Call<Rclunk>(new Tclunk(etc));
            await Overwrite(b1, 2, "rock3a-host\n", "etc", "hostname");
            await b1.Call<Rsetattr>(new Tsetattr(await Walk(b1, 3, "bin", "tool"), SetAttrMask.Mode | SetAttrMask.Uid, 0x1ed, 7, 0, 0, 0, 0, 0, 0));
            await b1.Call<Runlinkat>(new Tunlinkat(await Walk(b1, 4, "dev"), "null", 0));
            var srvDir = await Walk(b1, 5, "srv");
            await b1.Call<Runlinkat>(new Tunlinkat(srvDir, "shared", 0x200));
            await b1.Call<Rmkdir>(new Tmkdir(srvDir, "shared", 0x41c0, 3));

            // imx8mp.2 sees none of it, and makes its own hostname
            Assert.Equal(ExportFixture.HostnameContent, await ReadText(b2, 1, "etc", "hostname"));
            Assert.Equal(["hostname"], await List(b2, 2, "etc"));
            Assert.Equal(["null"], await List(b2, 3, "dev"));
            var tool = (await b2.Call<Rgetattr>(new Tgetattr(await Walk(b2, 4, "bin", "tool"), AttrMask.Basic))).Attr;
            Assert.Equal((0u, 0x89edu), (tool.Uid, tool.Mode));
            await Overwrite(b2, 5, "imx\n", "etc", "hostname");

            // rock3a sees its own
            Assert.Equal("rock3a-host\n", await ReadText(b1, 10, "etc", "hostname"));
            Assert.Equal(["hostname", "motd"], await List(b1, 11, "etc"));
            Assert.Empty(await List(b1, 12, "dev"));
            Assert.Equal(Errno.ENOENT, await b1.Errno(new Twalk(4, 13, ["null"])));
            var motd = (await b1.Call<Rgetattr>(new Tgetattr(await Walk(b1, 14, "etc", "motd"), AttrMask.Basic))).Attr;
            Assert.Equal((1234u, 5678u, 0x81a4u), (motd.Uid, motd.Gid, motd.Mode));
            var shared = (await b1.Call<Rgetattr>(new Tgetattr(await Walk(b1, 15, "srv", "shared"), AttrMask.Basic))).Attr;
            Assert.Equal((0u, 3u, 0x41c0u), (shared.Uid, shared.Gid, shared.Mode));
            // the copied-up file keeps the shared export's owner where the board did not change it
            var copied = (await b1.Call<Rgetattr>(new Tgetattr(await Walk(b1, 16, "etc", "hostname"), AttrMask.Basic))).Attr;
            Assert.Equal((0u, 0u, 0x81a4u), (copied.Uid, copied.Gid, copied.Mode));
        }
        Assert.Equal(before, Fingerprint(fx));

        var layer = BoardPaths.For(fx.Export, "rock3a");
        Assert.Equal("rock3a-host\n", File.ReadAllText(Path.Combine(layer.Upper, "etc/hostname")));
        Assert.Equal("imx\n", File.ReadAllText(Path.Combine(BoardPaths.For(fx.Export, "imx8mp.2").Upper, "etc/hostname")));
        PseudoSees(layer, new()
        {
            ["etc/motd"] = "1234 5678 644 regular file 0,0",
            ["etc/hostname"] = "0 0 644 regular file 0,0",
            ["bin/tool"] = "7 0 755 regular file 0,0",
            ["dev/null"] = "0 0 0 character special file 0,0", // the whiteout, as overlayfs records one
            ["srv/shared"] = "0 3 700 directory 0,0",
        });
    }

    /// <summary>Real pseudo, pointed at the board's own state, reports these owners for the board's layer.</summary>
    private static void PseudoSees(BoardPaths layer, Dictionary<string, string> expected)
    {
        Run.RequirePeer("pseudo");
        if (Run.IsRoot) Run.Program("chown", "-R", $"{Run.NobodyId}:{Run.NobodyId}", layer.BoardsDir).ShouldSucceed();
        var env = new Dictionary<string, string> { ["PSEUDO_PREFIX"] = "/usr", ["PSEUDO_LOCALSTATEDIR"] = layer.State.Directory };
        var upper = ExportPaths.Canonical(layer.Upper);
        try
        {
            var stat = Run.Program("pseudo", new[] { "stat", "-c", "%n %u %g %a %F %t,%T" }.Concat(expected.Keys.Select(k => Path.Combine(upper, k))),
                asUnprivileged: true, env: env, timeout: TimeSpan.FromMinutes(1)).ShouldSucceed().Stdout;
            var seen = stat.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l[(upper.Length + 1)..]).ToArray();
            Assert.Equal(expected.Select(e => $"{e.Key} {e.Value}").ToArray(), seen);
        }
        finally
        {
            Run.Program("pseudo", ["-S"], asUnprivileged: true, env: env, timeout: TimeSpan.FromMinutes(1));
        }
    }

    [Fact]
    public async Task The_shared_exports_changes_reach_a_board_except_the_paths_it_changed()
    {
        using var fx = new ExportFixture();
        await using var srv = new RunningServer(fx.Export);
        await using var board = await TestClient.ConnectAsync(srv.Port);
        await using var host = await TestClient.ConnectAsync(srv.Port);
        await board.Mount(fx.Export + "@lab1");
        await host.Mount(fx.Export); // a plain aname: the shared export, read-write as before boards
        await Overwrite(board, 1, "mine\n", "etc", "hostname");

        // the shared export changes underneath: a new file, the board's changed file, a file the board never touched
        var etc = await Walk(host, 1, "etc");
        await host.Call<Rlcreate>(new Tlcreate(etc, "os-release", CreateWrite, 0x1a4, 0));
        await host.Call<Rwrite>(new Twrite(etc, 0, "ID=new\n"u8.ToArray()));
        await host.Call<Rclunk>(new Tclunk(etc));
        await Overwrite(host, 2, "updated\n", "etc", "hostname");
        await Overwrite(host, 3, "#!/bin/sh\necho new tool\n", "bin", "tool");

        Assert.Equal("ID=new\n", await ReadText(board, 2, "etc", "os-release"));
        Assert.Equal("#!/bin/sh\necho new tool\n", await ReadText(board, 3, "bin", "tool"));
        Assert.Equal("mine\n", await ReadText(board, 4, "etc", "hostname"));
        Assert.Equal(["hostname", "os-release"], await List(board, 5, "etc"));
    }

    [Fact]
    public async Task Deletions_hide_the_shared_objects_and_a_directory_made_again_starts_empty()
    {
        using var fx = new ExportFixture();
        await using var srv = new RunningServer(fx.Export);
        await using var c = await TestClient.ConnectAsync(srv.Port);
        await c.Mount(fx.Export + "@b");
        var bin = await Walk(c, 1, "bin");
        Assert.Equal(Errno.ENOTEMPTY, await c.Errno(new Tunlinkat(Root, "bin", 0x200)));
        await c.Call<Runlinkat>(new Tunlinkat(bin, "sh", 0));
        await c.Call<Runlinkat>(new Tunlinkat(bin, "tool", 0));
        Assert.Empty(await List(c, 2, "bin"));
        await c.Call<Runlinkat>(new Tunlinkat(Root, "bin", 0x200));
        Assert.Equal(Errno.ENOENT, await c.Errno(new Twalk(Root, 3, ["bin"])));
        await c.Call<Rmkdir>(new Tmkdir(Root, "bin", 0x41ed, 0));
        Assert.Empty(await List(c, 4, "bin")); // opaque: the shared bin/tool does not show through
        await c.Call<Rlcreate>(new Tlcreate(await Walk(c, 5, "bin"), "tool", CreateWrite, 0x1ed, 0));
        await c.Call<Rclunk>(new Tclunk(5));
        Assert.Equal(["tool"], await List(c, 6, "bin"));
        Assert.Equal("", await ReadText(c, 7, "bin", "tool"));

        // a file of the shared export renamed: the new name has it, the old one is gone; a shared directory: EXDEV
        await c.Call<Rrenameat>(new Trenameat(Root, "etc-link", Root, "etc-link2"));
        Assert.Equal("/etc", (await c.Call<Rreadlink>(new Treadlink(await Walk(c, 8, "etc-link2")))).Target);
        Assert.Equal(Errno.ENOENT, await c.Errno(new Twalk(Root, 9, ["etc-link"])));
        Assert.Equal(Errno.EXDEV, await c.Errno(new Trenameat(Root, "etc", Root, "etc2")));
        // a name the board sees cannot be created again; a removed one can
        Assert.Equal(Errno.EEXIST, await c.Errno(new Tmkdir(Root, "srv", 0x41ed, 0)));
        await c.Call<Rsymlink>(new Tsymlink(Root, "etc-link", "/srv", 0));
        Assert.Equal("/srv", (await c.Call<Rreadlink>(new Treadlink(await Walk(c, 10, "etc-link")))).Target);
        Assert.Equal("/etc", new FileInfo(Path.Combine(fx.Export, "etc-link")).LinkTarget); // the shared one is untouched
        Assert.True(File.Exists(Path.Combine(fx.Export, "bin/tool")));
    }

    [Fact]
    public async Task Xattrs_are_copied_up_and_the_overlays_own_are_hidden()
    {
        using var fx = new ExportFixture();
        await using var srv = new RunningServer(fx.Export);
        await using var host = await TestClient.ConnectAsync(srv.Port);
        await host.Mount(fx.Export);
        var w = await Walk(host, 1, "bin", "tool");
        await host.Call<Rxattrcreate>(new Txattrcreate(w, "user.origin", 6, 0));
        await host.Call<Rwrite>(new Twrite(w, 0, "shared"u8.ToArray()));
        await host.Call<Rclunk>(new Tclunk(w));

        await using var c = await TestClient.ConnectAsync(srv.Port);
        await c.Mount(fx.Export + "@b");
        await c.Call<Rsetattr>(new Tsetattr(await Walk(c, 1, "bin", "tool"), SetAttrMask.Uid, 0, 9, 0, 0, 0, 0, 0, 0));
        await c.Call<Rxattrwalk>(new Txattrwalk(1, 2, "user.origin"));
        Assert.Equal("shared"u8.ToArray(), await c.ReadAll(2));
        await c.Call<Runlinkat>(new Tunlinkat(await Walk(c, 3, "srv"), "shared", 0x200));
        await c.Call<Rmkdir>(new Tmkdir(3, "shared", 0x41ed, 0));
        await c.Call<Rxattrwalk>(new Txattrwalk(await Walk(c, 4, "srv", "shared"), 5, ""));
        Assert.Empty(await c.ReadAll(5));
        Assert.Equal(Errno.EPERM, await c.Errno(new Txattrcreate(4, BoardLayer.OpaqueXattr, 1, 0)));
        Assert.Equal(9u, (await c.Call<Rgetattr>(new Tgetattr(1, AttrMask.Basic))).Attr.Uid);
        Assert.Equal(0u, (await host.Call<Rgetattr>(new Tgetattr(await Walk(host, 2, "bin", "tool"), AttrMask.Basic))).Attr.Uid);
    }

    [Fact]
    public async Task A_bad_board_name_is_refused_and_a_boards_symlinks_lead_nowhere_on_the_host()
    {
        using var fx = new ExportFixture();
        var outside = fx.OutsideListing();
        await using var srv = new RunningServer(fx.Export);
        await using (var bad = await TestClient.ConnectAsync(srv.Port))
        {
            await bad.Call<Rversion>(new Tversion(8192, "9P2000.L"));
            var r = await bad.SendAsync(new Tattach(0, P9.NoFid, "root", fx.Export + "@../x", P9.NoUname));
            Assert.Equal(Errno.EPERM, (int)Assert.IsType<Rlerror>(r).Ecode); // a path, not inside the export
            r = await bad.SendAsync(new Tattach(0, P9.NoFid, "root", fx.Export + "@bad name", P9.NoUname));
            Assert.Equal(Errno.EINVAL, (int)Assert.IsType<Rlerror>(r).Ecode);
            r = await bad.SendAsync(new Tattach(0, P9.NoFid, "root", fx.Export + "@-dash", P9.NoUname));
            Assert.Equal(Errno.EINVAL, (int)Assert.IsType<Rlerror>(r).Ecode);
        }
        await using var c = await TestClient.ConnectAsync(srv.Port);
        await c.Mount(fx.Export + "@b");
        // the board puts a symlink to the host's outside directory where its etc was, then writes "through" it
        var etc = await Walk(c, 1, "etc");
        await c.Call<Runlinkat>(new Tunlinkat(etc, "hostname", 0));
        await c.Call<Runlinkat>(new Tunlinkat(Root, "etc", 0x200));
        await c.Call<Rsymlink>(new Tsymlink(Root, "etc", fx.Outside, 0));
        Assert.Single((await c.Call<Rwalk>(new Twalk(Root, 2, ["etc", "secret"]))).Qids); // stops at the symlink
        Assert.Equal(Errno.ENOTDIR, await c.Errno(new Twalk(await Walk(c, 20, "etc"), 21, ["secret"])));
        await c.Call<Rsetattr>(new Tsetattr(await Walk(c, 3, "escape"), SetAttrMask.Uid | SetAttrMask.Mode, 0x1ff, 5, 0, 0, 0, 0, 0, 0));
        Assert.NotEqual(0, await c.Errno(new Tlcreate(3, "planted", CreateWrite, 0x1a4, 0)));
        Assert.Equal(outside.Append("export.boards").Order().ToArray(), fx.OutsideListing());
        Assert.Equal("outside the export\n", File.ReadAllText(Path.Combine(fx.Outside, "secret")));
    }
}

/// <summary>BoardLab off line: what a board changed, by kind with owners, and a reset that drops its layer.</summary>
public sealed class BoardLabTests
{
    [Fact]
    public async Task Diff_lists_each_change_and_reset_drops_the_layer()
    {
        using var fx = new ExportFixture();
        await using (var srv = new RunningServer(fx.Export))
        await using (var c = await TestClient.ConnectAsync(srv.Port))
        {
            await c.Mount(fx.Export + "@b1");
            var etc = (await c.Call<Rwalk>(new Twalk(0, 1, ["etc"]))).Qids.Count == 1 ? 1u : 0u;
            await c.Call<Rlcreate>(new Tlcreate(etc, "motd", 0x8042, 0x1a4, 0));
            await c.Call<Rsetattr>(new Tsetattr(etc, SetAttrMask.Uid, 0, 1234, 0, 0, 0, 0, 0, 0));
            await c.Call<Rwalk>(new Twalk(0, 2, ["dev"]));
            await c.Call<Runlinkat>(new Tunlinkat(2, "null", 0));
            await c.Call<Rwalk>(new Twalk(0, 3, ["bin", "tool"]));
            await c.Call<Rsetattr>(new Tsetattr(3, SetAttrMask.Mode, 0x1ed, 0, 0, 0, 0, 0, 0, 0));
            // the board is served: reset refuses
            Assert.Throws<UserFacingException>(() => BoardLab.Reset(fx.Export, "b1"));
        }
        Assert.Equal(["b1"], BoardLab.List(fx.Export));
        Assert.Equal(new[]
        {
            new BoardChange("bin/tool", BoardChangeKind.Modified, 0, 0, 0x81ed),
            new BoardChange("dev/null", BoardChangeKind.Deleted, 0, 0, 0x21b6),
            new BoardChange("etc/motd", BoardChangeKind.Added, 1234, 0, 0x81a4),
        }, BoardLab.Diff(fx.Export, "b1"));
        Assert.True(BoardLab.Reset(fx.Export, "b1"));
        Assert.Empty(BoardLab.List(fx.Export));
        Assert.False(Directory.Exists(BoardPaths.For(fx.Export, "b1").Upper));
    }
}
