namespace RootfsExport.TestSupport;

/// <summary>
/// A board for the 9P tests: Debian's 6.12 kernel (<see cref="GuestKernel"/>) under qemu-system-x86_64 (TCG, one
/// vCPU) with a busybox initramfs whose /init the test writes. The guest reaches servers on this machine's
/// loopback through slirp guestfwd (restrict=on): 10.0.2.100 is the first port given, 10.0.2.101 the second, …
/// </summary>
public static class TcpGuest
{
    /// <summary>
    /// The kernel command line of every guest in the suite. no_timer_check: on a loaded host TCG runs the
    /// kernel's IO-APIC timer check too slowly and the boot panics ("IO-APIC + timer doesn't work!") before init.
    /// </summary>
    public const string KernelArgs = "console=ttyS0 quiet panic=-1 no_timer_check";

    /// <summary>The first lines of an /init: file systems, the 9P and network modules, eth0 on slirp's network.</summary>
    public static string Prelude => $$"""
        #!/bin/sh
        mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
        for m in {{string.Join(' ', GuestKernel.Modules)}}; do insmod /modules/$m.ko || echo "@@FAIL insmod $m"; done
        ip link set lo up; ip link set eth0 up
        ip addr add 10.0.2.15/24 dev eth0; ip route add default via 10.0.2.2
        """;

    /// <summary>The guest address that reaches the index-th forwarded port.</summary>
    public static string Address(int index) => $"10.0.2.{100 + index}";

    /// <summary>Packs busybox, the modules, <paramref name="files"/> and <paramref name="init"/> into work/initrd.gz; returns its path.</summary>
    public static string Pack(string work, string init, IEnumerable<string>? files = null)
    {
        foreach (var p in new[] { "cpio", "gzip" }) Run.RequirePeer(p);
        var busybox = File.Exists("/bin/busybox") ? "/bin/busybox" : Run.RequirePeer("busybox");
        var kernel = GuestKernel.Directory;
        var copies = string.Join("\n", (files ?? []).Select(f => $"cp '{f}' root/"));
        Run.Shell($$"""
            set -euo pipefail
            cd '{{work}}'
            rm -rf root && mkdir -p root/bin root/sbin root/proc root/sys root/dev root/modules root/mnt root/etc
            cp '{{busybox}}' root/bin/busybox
            for a in $(root/bin/busybox --list); do [ -e root/bin/$a ] || ln -s busybox root/bin/$a; done
            cp '{{kernel}}'/modules/*.ko root/modules/
            {{copies}}
            cat > root/init <<'INIT'
            {{init}}
            INIT
            chmod +x root/init
            (cd root && find . | cpio -o -H newc --quiet | gzip -1) > initrd.gz
            """, timeout: TimeSpan.FromMinutes(2)).ShouldSucceed();
        return Path.Combine(work, "initrd.gz");
    }

    /// <summary>
    /// Packs busybox, the modules, <paramref name="files"/> (copied to the initramfs root) and <paramref name="init"/>
    /// into work/initrd.gz, boots it with one guestfwd per port, and returns the console (no CRs).
    /// </summary>
    public static string Boot(string work, string init, IReadOnlyList<int> ports, IEnumerable<string>? files = null, int seconds = 180)
    {
        foreach (var p in new[] { "qemu-system-x86_64", "socat", "timeout" }) Run.RequirePeer(p);
        var kernel = GuestKernel.Directory;
        Pack(work, init, files);
        var forwards = string.Join(",", ports.Select((port, i) => $"guestfwd=tcp:{Address(i)}:{port}-cmd:socat STDIO TCP:127.0.0.1:{port}"));
        var qemu = Run.Program("timeout", [
            seconds.ToString(), "qemu-system-x86_64", "-accel", "tcg", "-cpu", "max", "-m", "512", "-smp", "1", "-nographic", "-no-reboot",
            "-kernel", Path.Combine(kernel, "vmlinux"), "-initrd", Path.Combine(work, "initrd.gz"),
            "-append", KernelArgs,
            "-netdev", $"user,id=n0,restrict=on,{forwards}",
            "-device", "virtio-net-pci,netdev=n0",
        ], timeout: TimeSpan.FromSeconds(seconds + 60));
        return qemu.Stdout.Replace("\r", "") + qemu.Stderr;
    }
}
