using System.Text.RegularExpressions;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.BlockExport.Tests;

/// <summary>serve --nbd: Debian's nbdkit, a copy-on-write overlay per board, read back with libnbd's nbdinfo and nbdcopy.</summary>
public sealed class NbdServeTests(BlockFixture fixture) : IClassFixture<BlockFixture>
{
    /// <summary>Two free ports P, P+1 below the ephemeral range (32768+), so no client socket takes one while a board's nbdkit restarts.</summary>
    private static int FreeBase()
    {
        var random = new Random();
        for (int i = 0; i < 200; i++)
        {
            int port = random.Next(20000, 32000);
            if (RootfsExport.BlockExport.NbdServer.IsFree(System.Net.IPAddress.Loopback, port) && RootfsExport.BlockExport.NbdServer.IsFree(System.Net.IPAddress.Loopback, port + 1)) return port;
        }
        throw new InvalidOperationException("no two free ports in 20000..32000");
    }

    [Fact]
    public void Each_board_writes_its_own_overlay_and_the_image_is_read_back_unchanged()
    {
        using var dir = new ScratchDir();
        var export = fixture.NewExport(dir);
        var image = dir["rootfs.ext4"];
        Run.Tool("image", export, "-o", image).ShouldSucceed();
        var before = File.ReadAllBytes(image);
        int port = FreeBase();
        using var serve = new BackgroundTool(["serve", export, "--nbd", "--port", port.ToString(), "--board", "a", "--board", "b"]);
        serve.WaitFor("test:", 60);
        Assert.Contains($"board a: cmdline: root=/dev/nbd0 nbdroot=127.0.0.1:{port}/a ip=dhcp rw", serve.Output);
        Assert.Contains($"board b: cmdline: root=/dev/nbd0 nbdroot=127.0.0.1:{port + 1}/b ip=dhcp rw", serve.Output);
        string a = $"nbd://127.0.0.1:{port}/a", b = $"nbd://127.0.0.1:{port + 1}/b";
        WaitServed(serve, a);
        WaitServed(serve, b);

        Assert.Contains($"export-size: {before.Length}", Run.Program("nbdinfo", a).ShouldSucceed().Stdout);
        Run.Program("nbdcopy", a, dir["back-a"]).ShouldSucceed();
        Assert.Equal(before, File.ReadAllBytes(dir["back-a"]));

        // a's writes stay in a's overlay: b and the image do not see them
        File.WriteAllBytes(dir["patch"], Enumerable.Repeat((byte)0xAB, 4096).ToArray());
        Run.Program("nbdcopy", dir["patch"], a).ShouldSucceed();
        Run.Program("nbdcopy", a, dir["back-a2"]).ShouldSucceed();
        Assert.Equal(0xAB, File.ReadAllBytes(dir["back-a2"])[100]);
        Run.Program("nbdcopy", b, dir["back-b"]).ShouldSucceed();
        Assert.Equal(before, File.ReadAllBytes(dir["back-b"]));
        Assert.Equal(before, File.ReadAllBytes(image)); // the image itself is never written

        // a rebuilt image renamed over the served one: boards keep reading the image serve started with
        Run.Tool("exec", export, "--", "chown", "7:7", Path.Combine(export, "etc/hostname")).ShouldSucceed();
        Run.Tool("image", export, "-o", image).ShouldSucceed();
        Assert.NotEqual(before, File.ReadAllBytes(image));
        var again = Run.Program("nbdcopy", b, dir["back-b2"]);
        Assert.True(again.ExitCode == 0, again.All + serve.Output);
        Assert.Equal(before, File.ReadAllBytes(dir["back-b2"]));

        // a board asking another board's port for its own name is refused
        Assert.NotEqual(0, Run.Program("nbdinfo", $"nbd://127.0.0.1:{port}/b").ExitCode);

        // --reset a: a's overlay is dropped on the running serve
        Assert.Contains("overlay dropped", Run.Tool("serve", export, "--nbd", "--reset", "a").ShouldSucceed().Stdout);
        serve.WaitFor("board a: nbdkit ended", 30);
        WaitServed(serve, a);
        Run.Program("nbdcopy", a, dir["back-a3"]).ShouldSucceed();
        Assert.Equal(before, File.ReadAllBytes(dir["back-a3"]));

        Assert.Equal(0, serve.Stop());
        Assert.Contains("stopped: every nbdkit ended", serve.Output);
        Assert.NotEqual(0, Run.Program("nbdinfo", "--size", a).ExitCode); // nothing serves any more
        Assert.Empty(Directory.GetFiles(dir.Path, ".rootfs.ext4.served-*")); // serve's own link to the image it served is gone
    }

    [Fact]
    public void Read_only_serves_one_export_to_every_board_and_refuses_writes()
    {
        using var dir = new ScratchDir();
        var export = fixture.NewExport(dir);
        var image = dir["rootfs.ext4"];
        Run.Tool("image", export, "-o", image).ShouldSucceed();
        int port = FreeBase();
        using var serve = new BackgroundTool(["serve", export, "--nbd", "--port", port.ToString(), "--read-only"]);
        serve.WaitFor("test:", 60);
        var uri = $"nbd://127.0.0.1:{port}/default";
        WaitServed(serve, uri);
        Assert.Contains("is_read_only: true", Run.Program("nbdinfo", uri).ShouldSucceed().Stdout);
        File.WriteAllBytes(dir["patch"], new byte[4096]);
        Assert.NotEqual(0, Run.Program("nbdcopy", dir["patch"], uri).ExitCode);
        Assert.Equal(0, serve.Stop());
    }

    [Fact]
    public void Without_an_image_serve_says_how_to_build_one()
    {
        using var dir = new ScratchDir();
        var export = fixture.NewExport(dir);
        var r = Run.Tool("serve", export, "--nbd");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("rootfs-export image", r.Stderr);
    }

    private static void WaitServed(BackgroundTool serve, string uri)
    {
        for (int i = 0; i < 300; i++)
        {
            if (Run.Program("nbdinfo", "--size", uri).ExitCode == 0) return;
            Thread.Sleep(100);
        }
        var last = Run.Program("nbdinfo", "--size", uri);
        Assert.True(last.ExitCode == 0, $"{uri} not served within 30 s: {last.All}\n{serve.Output}");
    }
}
