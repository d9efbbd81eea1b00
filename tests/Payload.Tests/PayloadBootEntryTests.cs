using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Payload.Tests;

/// <summary>A BLS entry that boots a new kernel with the payload's modules bound over the rootfs's (rsinit).</summary>
public sealed class PayloadBootEntryTests
{
    [Fact]
    public void Bootspec_points_at_the_payload_kernel_and_the_concatenated_initrd_with_bind_modules()
    {
        using var dir = new ScratchDir();
        var export = dir["export"];
        const string rel = "6.6.23-new";
        // the export as unpacked (an older kernel in /boot), and a freshly built kernel + modules staging dir
        Run.Shell($"""
            set -e
            mkdir -p {export}/boot {export}/etc {export}/lib/modules/6.1.0-old
            echo 'PRETTY_NAME="Sample Linux"' > {export}/etc/os-release
            echo board > {export}/etc/hostname
            mkdir -p {dir["staging"]}/lib/modules/{rel}/kernel && echo m > {dir["staging"]}/lib/modules/{rel}/kernel/x.ko
            echo rsinit > {dir["rsinit.cpio"]}
            chmod -R a+rwX {dir.Path}
            """).ShouldSucceed();
        // the payload goes into the export's /boot: the new kernel by release, one initrd = rsinit + our modules
        File.WriteAllBytes(Path.Combine(export, $"boot/Image-{rel}"), new byte[4096]);
        Run.Tool("payload", "modules", dir["staging"], "--append", dir["rsinit.cpio"], "-o", Path.Combine(export, $"boot/initrd-{rel}.cpio.gz")).ShouldSucceed();
        Run.Tool("bootspec", export, "--transport", "nfs", "--server", "192.168.7.1", "--console", "none",
            "--initrd", $"/boot/initrd-{rel}.cpio.gz", "--append", "rsinit.bind_modules").ShouldSucceed();
        var entries = Directory.GetFiles(Path.Combine(export, "loader/entries"), "*.conf");
        var entry = File.ReadAllText(Assert.Single(entries, e => e.Contains(rel)));
        Assert.Matches($@"\nlinux\s+/boot/Image-{rel}\n", entry);
        Assert.Matches($@"\ninitrd\s+/boot/initrd-{rel}\.cpio\.gz\n", entry);
        Assert.Single(entry.Split('\n'), l => l.StartsWith("initrd"));
        Assert.Matches(@"\noptions\s+root=/dev/nfs .*rsinit\.bind_modules", entry);
    }
}
