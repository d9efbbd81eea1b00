using System.Text;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.BootSpec.Tests;

public class DiscoveryTests
{
    [Fact]
    public void Finds_kernels_dtb_initramfs_identity_and_console()
    {
        using var s = new ScratchDir();
        ExportFixture.Populate(s.Path);
        var f = ExportScanner.Scan(new ExportRoot(s.Path));
        Assert.Equal(["/boot/Image-6.1.80", "/boot/Image-6.6.1"], f.Kernels.Select(k => k.Path));
        Assert.Equal(["6.1.80", "6.6.1"], f.Kernels.Select(k => k.Release));
        Assert.Equal(["Image", "Image-6.6.1"], f.Kernels[1].Names);
        Assert.Equal(["/boot/myboard.dtb"], f.Devicetrees);
        Assert.Equal("/boot/initramfs-6.6.1.cpio.gz", f.InitramfsFor("6.6.1"));
        Assert.Null(f.InitramfsFor("6.1.80"));
        Assert.Equal("Poky (Yocto Project Reference Distro) 5.0", f.OsRelease.PrettyName);
        Assert.Equal("poky", f.OsRelease.SortKey);
        Assert.Equal("qemuarm64", f.Machine);
        Assert.Equal("ttyAMA0,115200", f.Console);
        Assert.Empty(f.Warnings);
    }

    [Fact]
    public void Symlinks_resolve_inside_the_export_only()
    {
        using var s = new ScratchDir();
        var root = s.Path;
        ExportFixture.File(root, "boot/vmlinuz-6.1.0-18-amd64", "k");
        ExportFixture.Link(root, "boot/bzImage", "/boot/vmlinuz-6.1.0-18-amd64");     // absolute: the export's /boot
        ExportFixture.Link(root, "boot/zImage", "../../../../../../../etc/hostname"); // climbs out: clamps at the export root
        ExportFixture.Link(root, "boot/Image", "/etc/passwd");                        // the host has it, the export does not
        ExportFixture.Link(root, "boot/fitImage", "fitImage");                        // loop
        var er = new ExportRoot(root);
        Assert.Equal("/boot/vmlinuz-6.1.0-18-amd64", er.Resolve("/boot/bzImage"));
        Assert.Null(er.Resolve("/boot/zImage"));
        Assert.Null(er.Resolve("/boot/Image"));
        Assert.Null(er.Resolve("/boot/fitImage"));
        Assert.Null(er.Resolve("/../../etc/passwd"));
        var f = ExportScanner.Scan(er);
        var k = Assert.Single(f.Kernels);
        Assert.Equal("6.1.0-18-amd64", k.Release);
        Assert.Equal(["bzImage", "vmlinuz-6.1.0-18-amd64"], k.Names);
        Assert.Equal(3, f.Warnings.Count(w => w.Contains("dangling")));
        // an os-release that points outside falls back to usr/lib/os-release
        ExportFixture.Link(root, "etc/os-release", "/../../../../etc/os-release");
        ExportFixture.File(root, "usr/lib/os-release", "ID=inner\n");
        Assert.Equal("inner", ExportScanner.Scan(er).OsRelease.Id);
    }

    [Fact]
    public void Release_comes_from_the_image_or_lib_modules_when_the_name_has_none()
    {
        using var s = new ScratchDir();
        var root = s.Path;
        // x86 setup header: "HdrS" at 0x202, kernel_version offset at 0x20E (relative to 0x200)
        var bz = new byte[0x1000];
        Encoding.ASCII.GetBytes("HdrS").CopyTo(bz, 0x202);
        bz[0x20E] = 0x00; bz[0x20F] = 0x08;                    // 0x800 + 0x200 = 0xA00
        Encoding.ASCII.GetBytes("6.1.0-18-amd64 (debian-kernel@lists.debian.org) #1 SMP\0").CopyTo(bz, 0xA00);
        ExportFixture.File(root, "boot/bzImage", bz);
        // arm64 uncompressed Image: the banner somewhere in its data, across a 1 MiB read boundary
        var img = new byte[(1 << 20) + 4096];
        Encoding.ASCII.GetBytes("Linux version 6.6.23-yocto-standard (oe-user@oe-host) #1 SMP PREEMPT\0").CopyTo(img, (1 << 20) - 20);
        ExportFixture.File(root, "boot/Image", img);
        ExportFixture.File(root, "boot/zImage", "compressed, no banner");
        Directory.CreateDirectory(Path.Combine(root, "usr/lib/modules/5.15.0"));
        ExportFixture.Link(root, "lib", "usr/lib");
        var f = ExportScanner.Scan(new ExportRoot(root));
        Assert.Equal(["6.6.23-yocto-standard", "6.1.0-18-amd64", "5.15.0"], f.Kernels.Select(k => k.Release));
        Assert.Equal(["5.15.0"], f.ModuleReleases);
    }

    [Theory]
    [InlineData("initramfs-6.6.1.cpio.gz", "6.6.1", true)]
    [InlineData("initrd.img-6.1.0-18-amd64", "6.1.0-18-amd64", true)]
    [InlineData("initramfs-6.6.10.img", "6.6.1", false)]
    [InlineData("initramfs-6.6.1.5.img", "6.6.1", false)]
    [InlineData("initramfs-16.6.1.img", "6.6.1", false)]
    public void Initramfs_names_match_whole_releases(string name, string release, bool expected) =>
        Assert.Equal(expected, ExportBootFiles.NamesRelease(name, release));

    [Fact]
    public void Console_from_inittab()
    {
        using var s = new ScratchDir();
        ExportFixture.File(s.Path, "etc/inittab", "# comment\nid:5:initdefault:\n1:12345:respawn:/sbin/getty 38400 tty1\nS0:12345:respawn:/bin/start_getty 115200 ttyS0 vt102\n");
        Assert.Equal("ttyS0,115200", ExportScanner.DetectConsole(new ExportRoot(s.Path)));
        ExportFixture.File(s.Path, "etc/inittab", "ttymxc1::respawn:/sbin/getty -L 921600 ttymxc1 vt100\n");
        Assert.Equal("ttymxc1,921600", ExportScanner.DetectConsole(new ExportRoot(s.Path)));
    }
}

public class WriterTests
{
    private static BootSpecRequest Tcp => new() { Transport = "tcp", Server = "10.0.2.100" };

    [Fact]
    public void Writes_atomically_marks_srel_and_leaves_foreign_entries_alone()
    {
        using var s = new ScratchDir();
        ExportFixture.Populate(s.Path);
        var entries = Path.Combine(s.Path, "loader/entries");
        Directory.CreateDirectory(entries);
        File.WriteAllText(Path.Combine(entries, "other-os-1.0.conf"), "title Other\nlinux /other\n");
        var r = BootEntries.Write(s.Path, Tcp);
        Assert.Equal(["rootfs-export-qemuarm64-6.6.1.conf", "rootfs-export-qemuarm64-6.1.80.conf"], r.Written);
        Assert.Equal("title Other\nlinux /other\n", File.ReadAllText(Path.Combine(entries, "other-os-1.0.conf")));
        Assert.False(File.Exists(Path.Combine(s.Path, "loader/entries.srel")));   // the directory existed already
        Assert.Empty(Directory.GetFiles(entries, ".*"));                            // no temp files left
        var all = BlsEntryFormat.Sorted(BlsEntryFormat.ReadDirectory(entries));
        Assert.Equal(["rootfs-export-qemuarm64-6.6.1.conf", "rootfs-export-qemuarm64-6.1.80.conf", "other-os-1.0.conf"], all.Select(e => e.FileName));
        Assert.Equal("/boot/initramfs-6.6.1.cpio.gz", Assert.Single(all[0].Initrd));
        Assert.Empty(all[1].Initrd);

        // same request again: nothing rewritten
        var again = BootEntries.Write(s.Path, Tcp);
        Assert.Empty(again.Written);
        Assert.Equal(2, again.Unchanged.Count);
    }

    [Fact]
    public void Fresh_entries_directory_gets_the_type1_marker()
    {
        using var s = new ScratchDir();
        ExportFixture.Populate(s.Path);
        BootEntries.Write(s.Path, Tcp);
        Assert.Equal("type1\n", File.ReadAllText(Path.Combine(s.Path, "loader/entries.srel")));
    }

    [Fact]
    public void A_foreign_file_with_our_name_stops_before_anything_is_written()
    {
        using var s = new ScratchDir();
        ExportFixture.Populate(s.Path);
        var entries = Path.Combine(s.Path, "loader/entries");
        Directory.CreateDirectory(entries);
        File.WriteAllText(Path.Combine(entries, "rootfs-export-qemuarm64-6.1.80.conf"), "title mine, hand-made\n");
        var e = Assert.Throws<BootSpecException>(() => BootEntries.Write(s.Path, Tcp));
        Assert.Contains("not written by rootfs-export", e.Message);
        Assert.Equal(["rootfs-export-qemuarm64-6.1.80.conf"], Directory.GetFiles(entries).Select(Path.GetFileName));
        Assert.Equal("title mine, hand-made\n", File.ReadAllText(Path.Combine(entries, "rootfs-export-qemuarm64-6.1.80.conf")));
    }

    [Fact]
    public void Refresh_follows_kernel_changes_with_the_stored_options()
    {
        using var s = new ScratchDir();
        ExportFixture.Populate(s.Path);
        Assert.Null(BootEntries.Refresh(s.Path));
        BootEntries.Write(s.Path, Tcp with { Port = 6000, Console = "ttyS1,9600" });
        // the update replaced 6.1.80 by 6.7.2
        File.Delete(Path.Combine(s.Path, "boot/Image-6.1.80"));
        ExportFixture.File(s.Path, "boot/Image-6.7.2", "kernel 6.7.2");
        var r = BootEntries.Refresh(s.Path)!;
        Assert.Equal(["rootfs-export-qemuarm64-6.7.2.conf"], r.Written);
        Assert.Equal(["rootfs-export-qemuarm64-6.1.80.conf"], r.Removed);
        var e = BlsEntryFormat.Parse(File.ReadAllText(Path.Combine(s.Path, "loader/entries/rootfs-export-qemuarm64-6.7.2.conf")), "x");
        Assert.StartsWith("console=ttyS1,9600 root=10.0.2.100 rootfstype=9p rootflags=trans=tcp,port=6000,", e.Options);
        // every kernel gone: our entries go too
        foreach (var k in Directory.GetFiles(Path.Combine(s.Path, "boot"), "Image*")) File.Delete(k);
        var gone = BootEntries.Refresh(s.Path)!;
        Assert.Empty(gone.Plan.Entries);
        Assert.Equal(2, gone.Removed.Count);
        Assert.Empty(Directory.GetFiles(Path.Combine(s.Path, "loader/entries")));
    }

    [Fact]
    public void Refuses_a_symlinked_loader_directory()
    {
        using var s = new ScratchDir();
        using var outside = new ScratchDir();
        ExportFixture.Populate(s.Path);
        Directory.CreateSymbolicLink(Path.Combine(s.Path, "loader"), outside.Path);
        Assert.Equal("entries", Assert.Throws<BootSpecException>(() => BootEntries.Write(s.Path, Tcp)).Field);
        Assert.Empty(Directory.GetFileSystemEntries(outside.Path));
    }

    [Fact]
    public void Devicetree_choice()
    {
        using var s = new ScratchDir();
        ExportFixture.Populate(s.Path);
        ExportFixture.File(s.Path, "boot/other.dtb", "dtb2");
        var plan = BootEntries.Plan(s.Path, Tcp);
        Assert.All(plan.Entries, e => Assert.Null(e.Devicetree));
        Assert.Contains(plan.Warnings, w => w.Contains("--dtb"));
        Assert.All(BootEntries.Plan(s.Path, Tcp with { Dtb = "other" }).Entries, e => Assert.Equal("/boot/other.dtb", e.Devicetree));
        Assert.All(BootEntries.Plan(s.Path, Tcp with { Dtb = "boot/myboard.dtb" }).Entries, e => Assert.Equal("/boot/myboard.dtb", e.Devicetree));
        var err = Assert.Throws<BootSpecException>(() => BootEntries.Plan(s.Path, Tcp with { Dtb = "nope" }));
        Assert.Equal("dtb", err.Field);
        Assert.Contains("myboard.dtb", err.Message);
    }

    [Fact]
    public void No_kernel_is_a_clear_error()
    {
        using var s = new ScratchDir();
        var e = Assert.Throws<BootSpecException>(() => BootEntries.Write(s.Path, Tcp));
        Assert.Contains("no kernel found", e.Message);
    }
}
