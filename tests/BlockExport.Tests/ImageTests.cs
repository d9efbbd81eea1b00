using System.Text.RegularExpressions;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.BlockExport.Tests;

/// <summary>`image`: an ext4 image of the export, checked with e2fsprogs' own debugfs and e2fsck.</summary>
public sealed class ImageTests(BlockFixture fixture) : IClassFixture<BlockFixture>
{
    private static (string Mode, string Uid, string Gid) Owner(string stat)
    {
        var mode = Regex.Match(stat, @"Mode:\s+(\d+)").Groups[1].Value;
        var ids = Regex.Match(stat, @"User:\s+(\d+)\s+Group:\s+(\d+)");
        return (mode, ids.Groups[1].Value, ids.Groups[2].Value);
    }

    [Fact]
    public void The_image_holds_every_owner_mode_device_and_capability_of_files_db()
    {
        using var dir = new ScratchDir();
        var export = fixture.NewExport(dir);
        var image = dir["rootfs.ext4"];
        Run.Tool("image", export, "-o", image).ShouldSucceed();

        var fsck = Run.Program("e2fsck", "-fn", image);
        Assert.True(fsck.ExitCode == 0, fsck.All);
        Assert.Equal(("0640", "0", "42"), Owner(Debugfs.Stat(image, "/etc/shadow")));
        Assert.Equal(("04755", "0", "0"), Owner(Debugfs.Stat(image, "/bin/su")));
        Assert.Equal(("0700", "1000", "1000"), Owner(Debugfs.Stat(image, "/home/user")));
        var null_ = Debugfs.Stat(image, "/dev/null");
        Assert.Contains("Type: character special", null_);
        Assert.Contains("Device major/minor number: 01:03", null_);
        var sda = Debugfs.Stat(image, "/dev/sda");
        Assert.Contains("Type: block special", sda);
        Assert.Equal(("0660", "0", "6"), Owner(sda));
        Assert.Contains("Type: FIFO", Debugfs.Stat(image, "/dev/initctl"));
        Assert.Contains("Type: symlink", Debugfs.Stat(image, "/bin/sx"));
        Assert.Contains("Links: 2", Debugfs.Stat(image, "/etc/hostname.hard"));
        // cap_net_raw+ep, VFS_CAP_REVISION_2, as setcap wrote it
        Assert.Contains("security.capability (20) = 01 00 00 02 00 20 00 00", Debugfs.Xattrs(image, "/usr/bin/ping"));
        Assert.Equal("secret\n", Debugfs.Cat(image, "/etc/shadow"));
        var blob = Run.Program("debugfs", "-R", "dump /usr/bin/blob " + dir["blob"], image).ShouldSucceed();
        Assert.Equal(File.ReadAllBytes(Path.Combine(export, "usr/bin/blob")), File.ReadAllBytes(dir["blob"]));
        // sparse: far fewer blocks on disk than the file system's size
        var du = long.Parse(Run.Program("du", "-k", image).ShouldSucceed().Stdout.Split('\t')[0]);
        Assert.True(du * 1024 < new FileInfo(image).Length / 4, $"{du} KiB allocated of {new FileInfo(image).Length}");
    }

    [Fact]
    public void Two_builds_are_byte_identical_and_times_are_clamped_to_SOURCE_DATE_EPOCH()
    {
        using var dir = new ScratchDir();
        var export = fixture.NewExport(dir);
        var env = new Dictionary<string, string> { ["SOURCE_DATE_EPOCH"] = "1710000000" };
        Run.Tool(["image", export, "-o", dir["a.ext4"]], env).ShouldSucceed();
        Thread.Sleep(1100); // a second later: nothing of the clock may reach the image
        Run.Program("cat", Path.Combine(export, "etc/hostname")).ShouldSucceed(); // a read moves the host's atime
        Run.Tool(["image", export, "-o", dir["b.ext4"]], env).ShouldSucceed();
        Assert.Equal(0, Run.Program("cmp", dir["a.ext4"], dir["b.ext4"]).ExitCode);

        var stat = Debugfs.Stat(dir["a.ext4"], "/etc/hostname");
        foreach (var field in new[] { "ctime", "atime", "mtime", "crtime" })
            Assert.Matches($@"{field}: 0x65ec8780:", stat); // 1710000000: the file is newer, its mtime is clamped
        Assert.Matches(@"mtime: 0x65937d25:", Debugfs.Stat(dir["a.ext4"], "/usr/bin/blob")); // 2024-01-02 03:04:05 UTC, older: kept

        // without SOURCE_DATE_EPOCH the newest mtime of the export is the epoch: still identical
        Run.Tool("image", export, "-o", dir["c.ext4"]).ShouldSucceed();
        Run.Tool("image", export, "-o", dir["d.ext4"]).ShouldSucceed();
        Assert.Equal(0, Run.Program("cmp", dir["c.ext4"], dir["d.ext4"]).ExitCode);
    }

    [Fact]
    public void Verity_verify_passes_and_fails_after_one_flipped_byte()
    {
        using var dir = new ScratchDir();
        var export = fixture.NewExport(dir);
        var image = dir["verity.ext4"];
        var output = Run.Tool("image", export, "-o", image, "--verity").ShouldSucceed().Stdout;
        var check = Regex.Match(output, @"check:\s+veritysetup verify (--hash-offset=\d+) \S+ \S+ ([0-9a-f]{64})");
        Assert.True(check.Success, output);
        var record = ImageRecord.Read(image)!;
        Assert.Equal(check.Groups[2].Value, record.Verity!.RootHash);
        var verify = () => Run.Program("veritysetup", "verify", check.Groups[1].Value, image, image, check.Groups[2].Value);
        Assert.Equal(0, verify().ExitCode);
        Assert.Equal(0, Run.Program("e2fsck", "-fn", image).ExitCode); // the tree after the file system does not disturb it

        using (var f = File.Open(image, FileMode.Open, FileAccess.ReadWrite))
        {
            f.Position = 1024 + 100; // inside the ext4 superblock
            int b = f.ReadByte();
            f.Position--;
            f.WriteByte((byte)(b ^ 0x01));
        }
        var failed = verify();
        Assert.NotEqual(0, failed.ExitCode);
        Assert.Contains("Verification", failed.All);
    }

    [Fact]
    public void Bad_input_gets_one_clear_line()
    {
        using var dir = new ScratchDir();
        var export = fixture.NewExport(dir);
        var inside = Run.Tool("image", export, "-o", Path.Combine(export, "x.ext4"));
        Assert.Equal(1, inside.ExitCode);
        Assert.Contains("must not be inside the export", inside.Stderr);
        var small = Run.Tool("image", export, "-o", dir["s.ext4"], "--size", "1M");
        Assert.Equal(1, small.ExitCode);
        Assert.Contains("--size 1M: the export needs at least", small.Stderr);
        var bad = Run.Tool("image", export, "-o", dir["s.ext4"], "--size", "lots");
        Assert.Contains("is not auto or a size", bad.Stderr);
        Assert.False(File.Exists(dir["s.ext4"]));
    }
}
