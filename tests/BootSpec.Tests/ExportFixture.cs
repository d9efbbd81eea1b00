using System.Runtime.CompilerServices;
using System.Text;
using RootfsExport.TestSupport;

namespace RootfsExport.BootSpec.Tests;

/// <summary>Builds small export trees the way OE images lay out /boot, /lib/modules and os-release.</summary>
public static class ExportFixture
{
    /// <summary>
    /// An OE-like arm64 export: two kernels (Image -> Image-6.6.1, and Image-6.1.80), an initramfs for 6.6.1,
    /// one devicetree, os-release via a relative symlink, hostname = machine, a serial getty on ttyAMA0.
    /// </summary>
    public static void Populate(string root)
    {
        File(root, "boot/Image-6.6.1", "kernel 6.6.1");
        Link(root, "boot/Image", "Image-6.6.1");
        File(root, "boot/Image-6.1.80", "kernel 6.1.80");
        File(root, "boot/initramfs-6.6.1.cpio.gz", "cpio");
        File(root, "boot/myboard.dtb", "dtb");
        Directory.CreateDirectory(Path.Combine(root, "lib/modules/6.6.1"));
        Directory.CreateDirectory(Path.Combine(root, "lib/modules/6.1.80"));
        File(root, "usr/lib/os-release", "ID=poky\nNAME=\"Poky (Yocto Project Reference Distro)\"\nVERSION=\"5.0\"\nPRETTY_NAME=\"Poky (Yocto Project Reference Distro) 5.0\"\n");
        Link(root, "etc/os-release", "../usr/lib/os-release");
        File(root, "etc/hostname", "qemuarm64\n");
        Link(root, "etc/systemd/system/getty.target.wants/serial-getty@ttyAMA0.service", "/lib/systemd/system/serial-getty@.service");
    }

    public static void File(string root, string rel, string text) => File(root, rel, Encoding.UTF8.GetBytes(text));

    public static void File(string root, string rel, byte[] data)
    {
        var p = Path.Combine(root, rel);
        Directory.CreateDirectory(Path.GetDirectoryName(p)!);
        System.IO.File.WriteAllBytes(p, data);
    }

    public static void Link(string root, string rel, string target)
    {
        var p = Path.Combine(root, rel);
        Directory.CreateDirectory(Path.GetDirectoryName(p)!);
        System.IO.File.CreateSymbolicLink(p, target);
    }

    /// <summary>Lets the unprivileged CLI write into a tree the (root) test process populated.</summary>
    public static void HandToTool(string root)
    {
        if (Run.IsRoot) Run.Program("chown", "-R", $"{Run.NobodyId}:{Run.NobodyId}", root).ShouldSucceed();
    }
}

/// <summary>Golden files under tests/BootSpec.Tests/golden; the export path is written as @EXPORT@.</summary>
public static class Golden
{
    public static string Directory([CallerFilePath] string here = "") => Path.Combine(Path.GetDirectoryName(here)!, "golden");

    /// <summary>Compares exactly (after @EXPORT@ substitution); REGENERATE_GOLDEN=1 rewrites the file instead.</summary>
    public static void Assert(string name, string actual, string exportPath)
    {
        var path = Path.Combine(Directory(), name);
        var normalised = actual.Replace(exportPath, "@EXPORT@");
        if (Environment.GetEnvironmentVariable("REGENERATE_GOLDEN") == "1")
        {
            System.IO.Directory.CreateDirectory(Path.GetDirectoryName(path)!);
            System.IO.File.WriteAllText(path, normalised);
        }
        Xunit.Assert.True(System.IO.File.Exists(path), $"golden file {path} is missing (run with REGENERATE_GOLDEN=1 once and review it)");
        Xunit.Assert.Equal(System.IO.File.ReadAllText(path), normalised);
    }
}
