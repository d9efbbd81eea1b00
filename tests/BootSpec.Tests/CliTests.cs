using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.BootSpec.Tests;

/// <summary>The commands as users run them (unprivileged), including their errors.</summary>
public class CliTests
{
    [Theory]
    [InlineData("server", "--transport", "nfs", "--server", "192.168.7.300")]
    [InlineData("server", "--transport", "tcp")]
    [InlineData("port", "--transport", "nfs", "--server", "192.168.7.1", "--port", "0")]
    [InlineData("port", "--transport", "tcp", "--server", "192.168.7.1", "--port", "70000")]
    [InlineData("tag", "--transport", "virtio", "--tag", "my tag")]
    [InlineData("udc", "--transport", "usbg")]
    [InlineData("msize", "--transport", "usbg", "--udc", "ci_hdrc.0", "--msize", "65536")]
    [InlineData("console", "--transport", "virtio", "--console", "tty S0")]
    [InlineData("ip", "--transport", "nfs", "--server", "192.168.7.1", "--ip", "192.168.7.2:x")]
    [InlineData("transport", "--transport", "iscsi")]
    public void Cmdline_errors_name_the_field(string field, params string[] options)
    {
        using var s = new ScratchDir();
        var r = Run.Tool(["cmdline", s.Path, .. options], null);
        Assert.Equal(1, r.ExitCode);
        Assert.StartsWith($"rootfs-export: error: {field}: ", r.Stderr);
        Assert.Equal("", r.Stdout);
    }

    [Fact]
    public void Relative_export_is_made_absolute_and_a_missing_one_is_an_error()
    {
        using var s = new ScratchDir();
        Directory.CreateDirectory(s["export"]);
        ExportFixture.HandToTool(s.Path);
        var r = Run.Tool(["cmdline", "export", "--transport", "nfs", "--server", "192.168.7.1"], null, cwd: s.Path).ShouldSucceed();
        Assert.Equal($"root=/dev/nfs nfsroot=192.168.7.1:{s["export"]},v3,tcp,port=3049,mountport=3049,nolock ip=dhcp rw\n", r.Stdout);
        var bad = Run.Tool(["cmdline", s["missing"], "--transport", "virtio"], null);
        Assert.Equal(1, bad.ExitCode);
        Assert.StartsWith("rootfs-export: error: export: ", bad.Stderr);
    }

    [Fact]
    public void Barebox_line_only_for_nfs()
    {
        using var s = new ScratchDir();
        var r = Run.Tool(["cmdline", s.Path, "--transport", "tcp", "--server", "10.0.2.100", "--barebox"], null);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("--barebox", r.Stderr);
    }

    [Fact]
    public void Bootspec_leaves_foreign_entries_alone_and_refuses_to_overwrite_them()
    {
        using var s = new ScratchDir();
        ExportFixture.Populate(s.Path);
        ExportFixture.File(s.Path, "loader/entries/vendor.conf", "title vendor\nlinux /vendor\n");
        ExportFixture.HandToTool(s.Path);
        var r = Run.Tool(["bootspec", s.Path, "--transport", "nfs", "--server", "192.168.7.1", "--machine", "board"], null).ShouldSucceed();
        Assert.Contains($"wrote {s.Path}/loader/entries/rootfs-export-board-6.6.1.conf", r.Stdout);
        Assert.Contains("cmdline: console=ttyAMA0,115200 root=/dev/nfs", r.Stdout);
        Assert.Contains($"barebox: boot nfs://192.168.7.1:3049/{s.Path}", r.Stdout);
        Assert.Equal("title vendor\nlinux /vendor\n", File.ReadAllText(s["loader/entries/vendor.conf"]));

        // switching the machine name replaces our entries, never the vendor's
        r = Run.Tool(["bootspec", s.Path, "--transport", "nfs", "--server", "192.168.7.1", "--machine", "other"], null).ShouldSucceed();
        Assert.Contains($"removed {s.Path}/loader/entries/rootfs-export-board-6.6.1.conf", r.Stdout);
        Assert.Equal(["rootfs-export-other-6.1.80.conf", "rootfs-export-other-6.6.1.conf", "vendor.conf"],
            Directory.GetFiles(s["loader/entries"]).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        // a hand-made file under one of our names stops the run with a clear message
        File.WriteAllText(s["loader/entries/rootfs-export-x-6.6.1.conf"], "title hand-made\n");
        var bad = Run.Tool(["bootspec", s.Path, "--transport", "nfs", "--server", "192.168.7.1", "--machine", "x"], null);
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("not written by rootfs-export", bad.Stderr);
        Assert.Equal("title hand-made\n", File.ReadAllText(s["loader/entries/rootfs-export-x-6.6.1.conf"]));
    }

    [Fact]
    public void Bootspec_without_kernel_fails_clearly()
    {
        using var s = new ScratchDir();
        var r = Run.Tool(["bootspec", s.Path, "--transport", "virtio"], null);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("no kernel found", r.Stderr);
        Assert.False(Directory.Exists(s["loader"]));
    }
}
