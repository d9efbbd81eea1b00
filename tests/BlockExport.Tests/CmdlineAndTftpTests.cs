using System.Text.RegularExpressions;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.BlockExport.Tests;

/// <summary>cmdline/bootspec --transport nbd and the Raspberry Pi TFTP layout.</summary>
public sealed class CmdlineAndTftpTests(BlockFixture fixture) : IClassFixture<BlockFixture>
{
    [Fact]
    public void Cmdline_nbd_uses_the_debian_initramfs_syntax_and_carries_the_verity_root_hash()
    {
        using var dir = new ScratchDir();
        var export = fixture.NewExport(dir);
        var plain = Run.Tool("cmdline", export, "--transport", "nbd", "--server", "192.168.7.1", "--name", "board1", "--console", "none").ShouldSucceed().Stdout.Trim();
        Assert.Equal("root=/dev/nbd0 nbdroot=192.168.7.1:10809/board1 ip=dhcp rw", plain);

        var image = dir["v.ext4"];
        Run.Tool("image", export, "-o", image, "--verity").ShouldSucceed();
        var v = ImageRecord.Read(image)!.Verity!;
        var line = Run.Tool("cmdline", export, "--transport", "nbd", "--server", "192.168.7.1", "--port", "10900", "--name", "b", "--image", image, "--console", "none")
            .ShouldSucceed().Stdout.Trim();
        Assert.Equal($"nbddev=/dev/nbd0 nbdroot=192.168.7.1:10900/b root=/dev/mapper/root roothash={v.RootHash} systemd.verity_root_data=/dev/nbd0 " +
                     $"systemd.verity_root_hash=/dev/nbd0 systemd.verity_root_options=hash-offset={v.HashOffset} ip=dhcp ro", line);

        var bad = Run.Tool("cmdline", export, "--transport", "nbd", "--server", "192.168.7.1", "--name", "a b");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("not an NBD export name", bad.Stderr);
        var other = Run.Tool("cmdline", export, "--transport", "nfs", "--server", "192.168.7.1", "--name", "b");
        Assert.Equal(1, other.ExitCode);
        Assert.Contains("--name does not apply to --transport nfs", other.Stderr);
    }

    [Fact]
    public void Bootspec_nbd_writes_the_entry_with_the_nbd_root_and_the_verity_root_hash()
    {
        using var dir = new ScratchDir();
        var export = fixture.NewExport(dir);
        var image = dir["v.ext4"];
        Run.Tool("image", export, "-o", image, "--verity").ShouldSucceed();
        var r = Run.Tool("bootspec", export, "--transport", "nbd", "--server", "192.168.7.1", "--name", "b", "--image", image, "--console", "none").ShouldSucceed().Stdout;
        var entry = Directory.GetFiles(Path.Combine(export, "loader/entries")).Single();
        var hash = ImageRecord.Read(image)!.Verity!.RootHash;
        Assert.Contains($"options    nbddev=/dev/nbd0 nbdroot=192.168.7.1:10809/b root=/dev/mapper/root roothash={hash} ", File.ReadAllText(entry));
        Assert.Contains("linux      /boot/Image-6.6.1", File.ReadAllText(entry));
        Assert.Contains("cmdline: nbddev=/dev/nbd0", r);
    }

    [Fact]
    public void Tftp_links_the_firmware_writes_a_cmdline_per_pi_and_switches_in_one_command()
    {
        using var dir = new ScratchDir();
        var one = fixture.NewExport(dir, "one");
        var two = fixture.NewExport(dir, "two");
        var tftp = dir["tftp"];
        Run.Program("mkdir", [tftp], asUnprivileged: true).ShouldSucceed();
        // the board made boot/firmware/evil a symlink to the host: it is not linked
        File.CreateSymbolicLink(Path.Combine(one, "boot/firmware/evil"), "/etc/passwd");

        var r = Run.Tool("tftp", one, "--serial", "1234abcd", "--tftp-root", tftp, "--server", "192.168.7.1").ShouldSucceed().Stdout;
        var pi = Path.Combine(tftp, "1234abcd");
        Assert.Equal(Path.Combine(one, "boot/firmware/start4.elf"), new FileInfo(Path.Combine(pi, "start4.elf")).LinkTarget);
        Assert.Equal("start4\n", File.ReadAllText(Path.Combine(pi, "start4.elf")));
        Assert.True(Directory.Exists(Path.Combine(pi, "overlays")));
        Assert.False(File.Exists(Path.Combine(pi, "evil")) || Directory.Exists(Path.Combine(pi, "evil")));
        Assert.Equal("console=serial0,115200 root=/dev/nbd0 nbdroot=192.168.7.1:10809/1234abcd ip=dhcp rw rootwait\n", File.ReadAllText(Path.Combine(pi, "cmdline.txt")));
        Assert.Contains("pxe-service=0,\"Raspberry Pi Boot\"", r);

        // the printed lines are a configuration dnsmasq accepts
        var conf = dir["dnsmasq.conf"];
        File.WriteAllLines(conf, Regex.Matches(r, @"^  (.+)$", RegexOptions.Multiline).Select(m => m.Groups[1].Value));
        var test = Run.Program("dnsmasq", "--test", "-C", conf);
        Assert.True(test.ExitCode == 0, test.All);

        // one command moves the Pi to the other export, over NFS
        Run.Tool("tftp", two, "--serial", "1234abcd", "--tftp-root", tftp, "--server", "192.168.7.1", "--transport", "nfs").ShouldSucceed();
        Assert.Equal(Path.Combine(two, "boot/firmware/config.txt"), new FileInfo(Path.Combine(pi, "config.txt")).LinkTarget);
        Assert.StartsWith($"console=serial0,115200 root=/dev/nfs nfsroot=192.168.7.1:{two},v3,tcp", File.ReadAllText(Path.Combine(pi, "cmdline.txt")));
        Assert.Single(Directory.GetFileSystemEntries(tftp));

        var bad = Run.Tool("tftp", one, "--serial", "../x", "--tftp-root", tftp, "--server", "192.168.7.1");
        Assert.Equal(1, bad.ExitCode);
        Assert.Contains("--serial", bad.Stderr);
    }
}
