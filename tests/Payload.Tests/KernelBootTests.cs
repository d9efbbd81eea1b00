using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Payload.Tests;

/// <summary>
/// Acceptance: Debian's kernel boots under QEMU (TCG) with a busybox initramfs followed by OUR modules cpio,
/// concatenated the way a bootloader appends it, and modprobes a module that only our cpio carries.
/// </summary>
public sealed class KernelBootTests
{
    [Fact]
    [Trait("Category", "EndToEnd")]
    public void Kernel_boots_with_our_modules_cpio_appended_and_modprobes_from_it()
    {
        foreach (var p in new[] { "qemu-system-x86_64", "depmod", "cpio", "gzip", "timeout", "xz" }) Run.RequirePeer(p);
        var busybox = File.Exists("/bin/busybox") ? "/bin/busybox" : Run.RequirePeer("busybox");
        var kernel = GuestKernel.Directory;
        using var dir = new ScratchDir();
        // a modules_install-like staging dir: one module from Debian's package, decompressed, with modules.dep by depmod
        Run.Shell($"""
            set -euo pipefail
            cd {dir.Path}
            dpkg -x {GuestKernel.Deb} deb
            rel=$(ls deb/lib/modules | head -1)
            m=staging/lib/modules/$rel/kernel/drivers/net
            mkdir -p $m
            xz -dc deb/lib/modules/$rel/kernel/drivers/net/dummy.ko.xz > $m/dummy.ko
            cp deb/lib/modules/$rel/modules.order deb/lib/modules/$rel/modules.builtin* staging/lib/modules/$rel/ 2>/dev/null || true
            depmod -b staging $rel
            chmod 600 $m/dummy.ko
            rm -rf deb
            echo $rel > release
            chmod -R a+rX staging
            """, timeout: TimeSpan.FromMinutes(3)).ShouldSucceed();
        var release = File.ReadAllText(dir["release"]).Trim();

        // the initramfs: busybox and an /init that modprobes from what the appended cpio brought
        Run.Shell($$"""
            set -euo pipefail
            cd {{dir.Path}}
            mkdir -p root/bin root/proc root/sys root/dev
            cp {{busybox}} root/bin/busybox
            for a in $(root/bin/busybox --list); do [ -e root/bin/$a ] || ln -s busybox root/bin/$a; done
            cat > root/init <<'INIT'
            #!/bin/sh
            mount -t proc proc /proc; mount -t sysfs sys /sys
            if modprobe dummy && grep -q '^dummy ' /proc/modules; then echo "@@MODPROBE-OK $(uname -r)"; else echo "@@MODPROBE-FAIL"; ls -lR /lib/modules; fi
            poweroff -f
            INIT
            chmod +x root/init
            (cd root && find . | cpio -o -H newc --quiet | gzip -1) > initramfs.cpio.gz
            chmod a+r initramfs.cpio.gz
            """).ShouldSucceed();
        Run.Tool("payload", "modules", dir["staging"], "--append", dir["initramfs.cpio.gz"], "-o", dir["initrd.cpio.gz"]).ShouldSucceed();

        var qemu = Run.Program("timeout", [
            "180", "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", "512", "-smp", "1", "-nographic", "-no-reboot",
            "-kernel", Path.Combine(kernel, "vmlinux"), "-initrd", dir["initrd.cpio.gz"],
            "-append", TcpGuest.KernelArgs, "-nic", "none",
        ], timeout: TimeSpan.FromMinutes(4));
        var log = qemu.Stdout.Replace("\r", "");
        Assert.Contains($"@@MODPROBE-OK {release}", log);
    }
}
