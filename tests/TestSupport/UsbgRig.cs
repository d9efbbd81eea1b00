namespace RootfsExport.TestSupport;

/// <summary>
/// The usb9pfs guest rig (test-rigs.md §7–8): GuestKernel's Debian kernel plus, built at test time by
/// tests/rigs/usbg-modules.sh from Debian's linux-source and headers of the same version, trans_usbg as
/// 9pnet_usbg.ko and dummy_hcd.ko with its FIFO shortcut switchable off. Cached in GuestKernel.CacheRoot;
/// nothing of it goes into the repository. <see cref="Boot"/> runs a script in a guest that is the board
/// (gadget, trans=usbg mounts) and the USB host at once, with this machine's userland reachable by chroot.
/// </summary>
public static class UsbgRig
{
    private static readonly Lazy<string> _dir = new(Prepare);

    /// <summary>vmlinux, modules/*.ko + modules/order, p9_fwd.py.</summary>
    public static string Directory => _dir.Value;

    public static string RigScript(string name) => Path.Combine(Repository.Root, "tests", "rigs", name);

    private static string Prepare()
    {
        foreach (var p in new[] { "apt-get", "dpkg-deb", "make", "gcc", "python3", "xz", "zstd", "flock" }) Run.RequirePeer(p);
        var deb = GuestKernel.Deb;
        var dir = Path.Combine(GuestKernel.CacheRoot, "usbg-" + Path.GetFileNameWithoutExtension(deb));
        if (File.Exists(Path.Combine(dir, "ready"))) return dir;
        Run.Shell($"exec 9>'{GuestKernel.CacheRoot}/.lock'; flock 9; [ -f '{dir}/ready' ] || '{RigScript("usbg-modules.sh")}' '{deb}' '{dir}'",
            timeout: TimeSpan.FromMinutes(20)).ShouldSucceed();
        return dir;
    }

    /// <summary>Boots the rig with workDir shared writable at the same path and runs script (sh) in it; returns the console.</summary>
    public static string Boot(string workDir, string script, TimeSpan limit)
    {
        foreach (var p in new[] { "qemu-system-x86_64", "cpio", "gzip", "timeout" }) Run.RequirePeer(p);
        var file = Path.Combine(workDir, "guest-script.sh");
        File.WriteAllText(file, script);
        var r = Run.Program(RigScript("usbg-guest.sh"), [Directory, workDir, file, ((int)limit.TotalSeconds).ToString()],
            timeout: limit + TimeSpan.FromMinutes(1));
        return r.Stdout.Replace("\r", "") + r.Stderr;
    }
}
