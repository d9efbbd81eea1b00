using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Payload.Tests;

/// <summary>Modules cpio and FIT image, validated by Debian's cpio, dumpimage, fdtdump and dtc.</summary>
public sealed class PayloadTests
{
    private const string Release = "6.6.23-test";

    /// <summary>A modules_install staging dir as make leaves it: -rw------- modules, split debug, build/source links.</summary>
    private static string Staging(ScratchDir dir)
    {
        var root = dir["staging"];
        Run.Shell($"""
            set -e
            m={root}/lib/modules/{Release}
            mkdir -p $m/kernel/drivers/net $m/kernel/fs/.debug
            echo mod > $m/kernel/drivers/net/dummy.ko; echo dbg > $m/kernel/drivers/net/dummy.dwo
            echo dbg > $m/kernel/fs/.debug/x.ko.debug
            echo 'kernel/drivers/net/dummy.ko:' > $m/modules.dep
            chmod 600 $m/kernel/drivers/net/dummy.ko $m/modules.dep
            ln -s /home/dev/linux $m/build; ln -s /home/dev/linux $m/source
            chmod -R a+rX {root} || true
            """).ShouldSucceed();
        Run.Program("chmod", "-R", "a+r", root).ShouldSucceed();
        return root;
    }

    [Fact]
    public void Modules_cpio_is_root_owned_readable_without_debug_and_reproducible()
    {
        using var dir = new ScratchDir();
        var staging = Staging(dir);
        Run.Tool("payload", "modules", staging, "-o", dir["m1.cpio"]).ShouldSucceed();
        Run.Tool("payload", "modules", staging, "-o", dir["m2.cpio"]).ShouldSucceed();
        Assert.Equal(File.ReadAllBytes(dir["m1.cpio"]), File.ReadAllBytes(dir["m2.cpio"]));
        var list = Run.Shell($"cpio -itv --numeric-uid-gid < {dir["m1.cpio"]}").ShouldSucceed().Stdout;
        Assert.Matches($@"-rw-r--r--\s+1\s+0\s+0\s+4\s.*lib/modules/{Release}/kernel/drivers/net/dummy.ko", list);
        Assert.Matches($@"drwxr-xr-x\s+2\s+0\s+0\s.*lib/modules/{Release}/kernel", list);
        Assert.Contains($"lib/modules/{Release}/modules.dep", list);
        Assert.DoesNotContain(".dwo", list);
        Assert.DoesNotContain(".debug", list);
        Assert.DoesNotContain($"{Release}/build", list);
    }

    [Fact]
    public void Gzipped_modules_appended_to_an_initramfs_unpack_like_the_kernel_does()
    {
        using var dir = new ScratchDir();
        var staging = Staging(dir);
        Run.Shell($"mkdir -p {dir["init"]}/bin && echo init > {dir["init"]}/init && cd {dir["init"]} && find . | cpio -o -H newc 2>/dev/null | gzip -9 > {dir["initramfs.cpio.gz"]} && chmod a+r {dir["initramfs.cpio.gz"]}").ShouldSucceed();
        Run.Tool("payload", "modules", staging, "--append", dir["initramfs.cpio.gz"], "-o", dir["both.cpio.gz"]).ShouldSucceed();
        // gzip -dc reads concatenated members, as the kernel's initramfs unpacker does; cpio -i stops at the
        // first trailer, so unpack twice: the second time skipping the first archive
        Run.Shell($"mkdir {dir["out"]} && cd {dir["out"]} && gzip -dc {dir["both.cpio.gz"]} > all.cpio && cpio -idm < all.cpio 2>/dev/null && " +
                  $"size=$(gzip -dc {dir["initramfs.cpio.gz"]} | wc -c) && tail -c +$((size+1)) all.cpio | cpio -idm 2>/dev/null").ShouldSucceed();
        Assert.True(File.Exists(Path.Combine(dir["out"], "init")));
        Assert.True(File.Exists(Path.Combine(dir["out"], $"lib/modules/{Release}/kernel/drivers/net/dummy.ko")));
    }

    [Fact]
    public void Missing_modules_and_several_releases_are_clear_errors()
    {
        using var dir = new ScratchDir();
        Directory.CreateDirectory(dir["empty"]);
        var r = Run.Tool("payload", "modules", dir["empty"], "-o", dir["x.cpio"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("no modules in", r.Stderr);
        var staging = Staging(dir);
        Directory.CreateDirectory(Path.Combine(staging, "lib/modules/6.1.0-other"));
        r = Run.Tool("payload", "modules", staging, "-o", dir["x.cpio"]);
        Assert.Contains("several kernel releases", r.Stderr);
        Run.Tool("payload", "modules", staging, "--release", Release, "-o", dir["x.cpio"]).ShouldSucceed();
    }

    private static void Dtb(ScratchDir dir, string name, string compatible, string model)
    {
        Directory.CreateDirectory(dir["dtbs"]);
        File.WriteAllText(dir[$"{name}.dts"], $$"""
            /dts-v1/;
            / {
                model = "{{model}}";
                compatible = {{compatible}};
                #address-cells = <1>;
                #size-cells = <1>;
                memory@40000000 { device_type = "memory"; reg = <0x40000000 0x20000000>; };
            };
            """);
        Run.Program("dtc", "-I", "dts", "-O", "dtb", "-o", dir[$"dtbs/{name}.dtb"], dir[$"{name}.dts"]).ShouldSucceed();
        Run.Program("chmod", "-R", "a+rX", dir["dtbs"]).ShouldSucceed();
    }

    /// <summary>An arm64 Image: the "ARM\x64" magic at 0x38 and a version banner.</summary>
    private static string Arm64Image(ScratchDir dir)
    {
        var image = new byte[4096];
        image[0x38] = (byte)'A'; image[0x39] = (byte)'R'; image[0x3a] = (byte)'M'; image[0x3b] = 0x64;
        System.Text.Encoding.ASCII.GetBytes($"Linux version {Release} (dev@host) #1 SMP\0").CopyTo(image, 0x400);
        File.WriteAllBytes(dir["Image"], image);
        Run.Program("chmod", "a+r", dir["Image"]).ShouldSucceed();
        return dir["Image"];
    }

    [Fact]
    public void Fit_image_is_accepted_by_dumpimage_and_fdtdump_with_every_configuration()
    {
        using var dir = new ScratchDir();
        Dtb(dir, "board-a", "\"vendor,board-a\", \"vendor,soc\"", "Vendor Board A");
        Dtb(dir, "board-b", "\"vendor,board-b\", \"vendor,soc\"", "Vendor Board B");
        var staging = Staging(dir);
        Run.Tool("payload", "modules", staging, "-o", dir["modules.cpio.gz"]).ShouldSucceed();
        Run.Tool("payload", "fit", "--kernel", Arm64Image(dir), "--dtb-dir", dir["dtbs"], "--ramdisk", dir["modules.cpio.gz"],
            "--modules", staging, "-o", dir["image.fit"]).ShouldSucceed();

        var dump = Run.Program("dumpimage", "-l", dir["image.fit"]).ShouldSucceed().Stdout;
        Assert.Contains("FIT description: Linux 6.6.23-test netboot payload", dump);
        Assert.Contains("Type:         Kernel Image (no loading done)", dump);
        Assert.Contains("Architecture: AArch64", dump);
        Assert.Contains("Configuration 0 (conf-1)", dump);
        Assert.Contains("Configuration 1 (conf-2)", dump);
        Assert.Contains("Description:  Vendor Board B", dump);
        Assert.Contains("Init Ramdisk: ramdisk", dump);
        Assert.Contains("FDT:          fdt-2", dump);
        Assert.Contains("Hash algo:    sha256", dump);

        var fdtdump = Run.Program("fdtdump", dir["image.fit"]).ShouldSucceed().Stdout;
        Assert.Contains("default = \"conf-1\";", fdtdump);
        // this dumpimage does not print a configuration's compatible; the blob has it per configuration
        Assert.Matches(@"conf-1 \{\s+description = ""Vendor Board A"";\s+compatible = ""vendor,board-a"", ""vendor,soc"";", fdtdump);
        Assert.Matches(@"conf-2 \{\s+description = ""Vendor Board B"";\s+compatible = ""vendor,board-b"", ""vendor,soc"";", fdtdump);

        var inspect = Run.Tool("payload", "inspect", dir["image.fit"]).ShouldSucceed().Stdout;
        Assert.Contains("conf-2: Vendor Board B; compatible vendor,board-b, vendor,soc; kernel kernel; fdt fdt-2; ramdisk ramdisk", inspect);
    }

    [Fact]
    public void Our_fdt_writer_round_trips_a_dtc_blob()
    {
        using var dir = new ScratchDir();
        Dtb(dir, "board", "\"vendor,board\"", "Round Trip");
        var original = File.ReadAllBytes(dir["dtbs/board.dtb"]);
        File.WriteAllBytes(dir["copy.dtb"], Fdt.Write(Fdt.Read(original)));
        var a = Run.Program("dtc", "-I", "dtb", "-O", "dts", dir["dtbs/board.dtb"]).ShouldSucceed().Stdout;
        var b = Run.Program("dtc", "-I", "dtb", "-O", "dts", dir["copy.dtb"]).ShouldSucceed().Stdout;
        Assert.Equal(a, b);
    }

    [Fact]
    public void Bad_inputs_are_named()
    {
        using var dir = new ScratchDir();
        Directory.CreateDirectory(dir["dtbs"]);
        File.WriteAllText(dir["dtbs/broken.dtb"], "not a devicetree");
        Run.Program("chmod", "-R", "a+rX", dir["dtbs"]).ShouldSucceed();
        var r = Run.Tool("payload", "fit", "--kernel", Arm64Image(dir), "--dtb-dir", dir["dtbs"], "-o", dir["x.fit"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("broken.dtb: not a flattened devicetree", r.Stderr);

        File.Delete(dir["dtbs/broken.dtb"]);
        Dtb(dir, "ok", "\"vendor,ok\"", "OK");
        var staging = Staging(dir);
        Directory.Move(Path.Combine(staging, $"lib/modules/{Release}"), Path.Combine(staging, "lib/modules/6.1.0-old"));
        r = Run.Tool("payload", "fit", "--kernel", dir["Image"], "--dtb-dir", dir["dtbs"], "--modules", staging, "-o", dir["x.fit"]);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains($"release mismatch: the kernel is {Release}, the modules are 6.1.0-old", r.Stderr);
    }
}
