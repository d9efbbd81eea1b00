using RootfsExport.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace RootfsExport.Integration.Tests;

/// <summary>
/// The labgrid package (labgrid/, docs/LABGRID.md) and its pytest tests, run against Debian's labgrid with Debian's
/// python (/usr/bin/python3; a python on PATH from elsewhere does not see python3-labgrid). The driver runs this
/// build's rootfs-export as uid 65534.
/// </summary>
public sealed class LabgridTests(ITestOutputHelper output)
{
    internal static string PackageDir => Path.Combine(Repository.Root, "labgrid");

    internal static RunResult Pytest(string selection, IDictionary<string, string>? extra = null, TimeSpan? timeout = null, bool showPrints = false)
    {
        var env = new Dictionary<string, string>
        {
            ["ROOTFS_EXPORT_COMMAND"] = $"dotnet {ToolCopy.Dll}",
            ["PYTHONDONTWRITEBYTECODE"] = "1",
            ["HOME"] = "/tmp",
        };
        if (extra != null) foreach (var (k, v) in extra) env[k] = v;
        string[] args = ["-m", "pytest", "-q", "-rs", .. showPrints ? new[] { "-s" } : [], "-m", selection, "tests"];
        return Run.Program("/usr/bin/python3", args, env: env, cwd: PackageDir,
            timeout: timeout ?? TimeSpan.FromMinutes(10));
    }

    [Fact]
    public void The_package_tests_pass_against_Debians_labgrid()
    {
        Run.RequirePeer("diodcat");
        Assert.True(File.Exists("/usr/bin/python3"), "Debian's python3 is missing; ./run-tests installs it (tests/labgrid/apt-packages)");
        var r = Pytest("not e2e");
        output.WriteLine(r.All);
        r.ShouldSucceed();
        Assert.Matches(@"\d+ passed", r.Stdout);
    }

    /// <summary>
    /// Issue 23's labgrid test, the whole dev loop driven by labgrid (labgrid/tests/test_devloop_e2e.py): labgrid's
    /// QEMUDriver boots Debian's 6.12 kernel (TCG, one vCPU) whose initramfs mounts the root our driver serves over
    /// 9P, with the command line the driver got from `cmdline`; the guest runs /usr/bin/hello from it; the package
    /// is rebuilt into the feed, the strategy's refresh() applies it through the running server, and the guest runs
    /// the new binary without remount. Here: the OE-shaped build with both builds of hello, the kernel, the
    /// initramfs; pytest does the rest.
    /// </summary>
    [Fact]
    [Trait("Category", "EndToEnd")]
    public void The_dev_loop_runs_under_labgrid_with_QEMUDriver_booting_over_our_9P_server()
    {
        foreach (var p in new[] { "qemu-system-x86_64", "socat", "diodcat" }) Run.RequirePeer(p);
        const string arch = "core2-64";
        using var build = new OeFeedBuild("mkdir -p var/lib/opkg/info && : > var/lib/opkg/status", [$"hello {arch} 1.0-r0"]);
        build.Ipk("hello", "1.0-r0", arch, [new("/usr/bin/hello", null, 0x1ed, Bytes: HelloProgram.Compile(build.Work, "hello OLD"))]);
        // the rebuild (same version, new content) is written now; the test lands it by rename, as bitbake does
        var staged = Path.Combine(build.Work, "hello-rebuilt.ipk");
        TestIpk.Write(staged, $"Package: hello\nVersion: 1.0-r0\nArchitecture: {arch}\nMaintainer: t\nDescription: test package hello\n",
            [new("/usr/bin/hello", null, 0x1ed, Bytes: HelloProgram.Compile(build.Work, "hello NEW"))]);
        Run.Program("chmod", "a+r", staged).ShouldSucceed();
        var guest = Path.Combine(build.Work, "guest");
        Directory.CreateDirectory(guest);
        var fixture = Path.Combine(build.Work, "fixture.json");
        File.WriteAllText(fixture, System.Text.Json.JsonSerializer.Serialize(new Dictionary<string, string>
        {
            ["build_dir"] = build.Root,
            ["image"] = OeFeedBuild.Image,
            ["staged"] = staged,
            ["landed"] = Path.Combine(build.FeedDir("ipk", arch), $"hello_1.0-r0_{arch}.ipk"),
            ["kernel"] = Path.Combine(GuestKernel.Directory, "vmlinux"),
            ["initrd"] = TcpGuest.Pack(guest, GuestInit),
            ["kernel_args"] = TcpGuest.KernelArgs,
        }));
        var r = Pytest("e2e", new Dictionary<string, string> { ["RFE_LABGRID_E2E"] = fixture }, TimeSpan.FromMinutes(30), showPrints: true);
        output.WriteLine(r.All);
        r.ShouldSucceed();
        Assert.Matches(@"\b1 passed", r.Stdout);
        Console.WriteLine("LabgridTests: " + System.Text.RegularExpressions.Regex.Match(r.Stdout, @"labgrid dev loop: [^\n]*").Value);
    }

    /// <summary>
    /// The board's initramfs: modules and network as every 9P guest, then the root the kernel command line names
    /// (root=, rootfstype=, rootflags= as `rootfs-export cmdline` prints them) mounted at /mnt, then a shell on the
    /// console for labgrid's ShellDriver.
    /// </summary>
    private static string GuestInit => TcpGuest.Prelude + """

        arg() { for a in $(cat /proc/cmdline); do case "$a" in "$1"=*) echo "${a#*=}";; esac; done; }
        mount -t "$(arg rootfstype)" -o "$(arg rootflags)" "$(arg root)" /mnt && echo "@@MOUNTED $(arg root)" || echo "@@FAIL mount"
        export PATH=/bin:/sbin PS1='rfe-board# '
        while true; do setsid cttyhack sh; done
        """;

    /// <summary>
    /// The usb9pfs side on the usbg rig (tests/rigs/usbg-guest.sh, docs/TEST-RIGS.md): Linux's own usb9pfs gadget,
    /// seen by the guest's USB host with no udev daemon. labgrid's udev manager finds it as USB9PFSGadget (port,
    /// ids, serial from sysfs; a gadget matched at another port stays unavailable), and the driver serves the sample
    /// export to that port (`serve --usb --path`, as uid 65534) with the command line the board mounts it by.
    /// </summary>
    [Fact]
    [Trait("Category", "EndToEnd")]
    public void On_the_usbg_rig_the_gadget_resource_matches_and_the_driver_serves_the_board()
    {
        using var dir = new ScratchDir("rfe-lgrig");
        var script = Path.Combine(PackageDir, "tests", "rig_usb9pfs.py");
        var py = $"/usr/bin/env PYTHONPATH={PackageDir}:{Path.Combine(PackageDir, "tests")} PYTHONDONTWRITEBYTECODE=1 " +
                 $"ROOTFS_EXPORT_COMMAND='dotnet {ToolCopy.Dll}' /usr/bin/python3 {script}";
        var console = UsbgRig.Boot(dir.Path, $$"""
            make_gadget lgboard
            ( i=0; while [ $i -lt 3600 ]; do chmod a+rw /dev/bus/usb/*/* 2>/dev/null; sleep 0.25; i=$((i+1)); done ) & UDEV=$!
            mkdir -p /host$WORK/mem && mount -t tmpfs -o size=256m,mode=0755 mem /host$WORK/mem || echo "@@FAIL tmpfs"
            chown 65534:65534 /host$WORK/mem
            PORT=$(gadget_port lgboard)
            host {{py}} match $PORT || echo "@@FAIL match"
            spawn $WORK/lg.log {{py}} serve $PORT lgboard $WORK/mem $WORK/mem/stop
            wait_log $WORK/lg.log "@@MOUNT" 600
            set -- $(sed -n 's/^@@MOUNT //p' $WORK/lg.log)
            if mount -t 9p -o "$1" "$2" /mnt; then
              echo "@@READ $(cat /mnt/etc/hostname)"
              umount /mnt || echo "@@FAIL umount"
            else
              echo "@@FAIL mount -o $1 $2"
            fi
            touch /host$WORK/mem/stop
            wait_log $WORK/lg.log "@@STOPPED" 180
            kill $UDEV
            echo "@@LG-LOG"; cat $WORK/lg.log
            """, TimeSpan.FromMinutes(15));
        output.WriteLine(console);
        UsbgRig.ShouldHaveRun(console);
        var found = System.Text.RegularExpressions.Regex.Match(console, @"@@MATCH (\{.*\})");
        Assert.True(found.Success, "the rig printed no match");
        using var json = System.Text.Json.JsonDocument.Parse(found.Groups[1].Value);
        var m = json.RootElement;
        Assert.True(m.GetProperty("avail").GetBoolean());
        Assert.Equal("1-1", m.GetProperty("path").GetString());
        Assert.Equal(0x1d6b, m.GetProperty("vendor_id").GetInt32());
        Assert.Equal(0x0109, m.GetProperty("model_id").GetInt32());
        Assert.Equal("lgboard", m.GetProperty("serial").GetString());
        Assert.False(m.GetProperty("elsewhere").GetBoolean());
        Assert.Contains("@@READ qemux86-64", console);
        Assert.Contains("@@STOPPED 0", console);
    }
}
