using System.Text.RegularExpressions;

namespace RootfsExport.TestSupport;

/// <summary>
/// The usb9pfs guest rig (docs/TEST-RIGS.md): GuestKernel's Debian kernel plus, built at test time by
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

    /// <summary>The guest kernel's release (uname -r), e.g. 6.12.118+deb12-amd64: the board's kernel in every verdict.</summary>
    public static string KernelRelease => File.ReadAllText(Path.Combine(Directory, "kernel-release")).Trim();

    /// <summary>
    /// Fails unless the guest ran the script to its end without an @@FAIL line. The message names the board's
    /// kernel, and says when what the console shows is the board's kernel going wrong rather than the host side:
    /// an oops, BUG or hang it logged, or (6.12.118's trans_usbg) a gadget whose endpoints stay disabled while it
    /// stays enumerated, so the server's transfers fail at once and the board's mounts fail with EIO.
    /// </summary>
    public static void ShouldHaveRun(string console) => ShouldHaveRun(console, KernelRelease);

    /// <summary><see cref="ShouldHaveRun(string)"/> for a guest that ran the given kernel release.</summary>
    public static void ShouldHaveRun(string console, string release)
    {
        var fails = console.Split('\n').Where(l => l.Contains("@@FAIL", StringComparison.Ordinal)).Select(l => l.Trim()).ToList();
        bool done = console.Contains("@@DONE", StringComparison.Ordinal);
        if (done && fails.Count == 0) return;
        var tail = string.Join(" | ", console.Split('\n').Select(l => l.Trim()).Where(l => l.Length > 0).TakeLast(3));
        var what = (fails.Count > 0 ? string.Join("; ", fails) : "no @@FAIL line")
            + (done ? "" : $"; the guest never reached @@DONE (it hung, hit the time limit or did not start; the console ends: {tail})");
        var oops = Regex.Match(console,
            @"^.*(BUG:|Oops|general protection fault|blocked for more than \d+ seconds|WARNING:).*$", RegexOptions.Multiline);
        // the server re-opening a gadget whose transfers fail before any request: the same device, still enumerated
        bool endpointsDisabled = Regex.Matches(console, @"^detached (\S+) \(gone\) after 0 requests",
            RegexOptions.Multiline).Count >= 2;
        if (oops.Success)
            throw new Xunit.Sdk.XunitException(
                $"board-side kernel defect: the guest's kernel, Linux {release} (trans_usbg and dummy_hcd built from its linux-source), " +
                $"logged \"{oops.Value.Trim()}\" (the console has the rest). Failed: {what}");
        if (fails.Count > 0 && console.Contains("Input/output error", StringComparison.Ordinal) && endpointsDisabled)
            throw new Xunit.Sdk.XunitException(
                $"board-side kernel behaviour of Linux {release}: its trans_usbg left a gadget's endpoints disabled while the device stayed " +
                $"enumerated (the server's transfers end at once: 'detached … (gone) after 0 requests', again and again), so the board's " +
                $"mount failed with EIO; with 6.12.118 only a new enumeration re-enables them (rearm_gadget in tests/rigs/usbg-guest.sh, " +
                $"docs/USB9PFS.md). Failed: {what}");
        throw new Xunit.Sdk.XunitException($"usbg rig, board kernel Linux {release}: {what} (the test output has the console)");
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
