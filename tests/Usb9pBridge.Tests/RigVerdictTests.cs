using RootfsExport.TestSupport;
using Xunit;
using Xunit.Sdk;

namespace RootfsExport.Usb9pBridge.Tests;

/// <summary>What the usbg rig's failure message says, from consoles shaped like the ones the rig gave.</summary>
public sealed class RigVerdictTests
{
    private const string Release = "6.12.118+deb12-amd64";

    [Fact]
    public void A_complete_run_without_failures_passes() =>
        UsbgRig.ShouldHaveRun("@@KERNEL 6.12.118+deb12-amd64\n@@TWO ok\n@@DONE\n", Release);

    [Fact]
    public void Endpoints_left_disabled_after_umount_are_named_as_the_board_kernels_behaviour()
    {
        var console = """
            mount: mounting rootfs on /mnt failed: Input/output error
            @@FAIL two boards
            @@SERVE-LOG
            detached 1-1 (gone) after 16 requests, 325 bytes in, 670 bytes out; waiting for it to come back
            detached 1-1 (gone) after 0 requests, 0 bytes in, 0 bytes out; waiting for it to come back
            detached 1-1 (gone) after 0 requests, 0 bytes in, 0 bytes out; waiting for it to come back
            @@DONE
            """;
        var e = Assert.Throws<XunitException>(() => UsbgRig.ShouldHaveRun(console, Release));
        Assert.StartsWith("board-side kernel behaviour of Linux 6.12.118+deb12-amd64", e.Message);
        Assert.Contains("@@FAIL two boards", e.Message);
    }

    [Fact]
    public void An_oops_in_the_guest_is_a_board_side_kernel_defect_even_without_DONE()
    {
        var console = "@@KERNEL 6.12.118+deb12-amd64\n[  99.1] BUG: kernel NULL pointer dereference, address: 0000000000000008\n[  99.2] RIP: 0010:p9_usbg_request+0x1c/0x90 [9pnet_usbg]\n";
        var e = Assert.Throws<XunitException>(() => UsbgRig.ShouldHaveRun(console, Release));
        Assert.StartsWith("board-side kernel defect: the guest's kernel, Linux 6.12.118+deb12-amd64", e.Message);
        Assert.Contains("BUG: kernel NULL pointer dereference", e.Message);
        Assert.Contains("never reached @@DONE", e.Message);
    }

    [Fact]
    public void Any_other_failure_names_the_board_kernel_without_blaming_it()
    {
        var e = Assert.Throws<XunitException>(() => UsbgRig.ShouldHaveRun("@@FAIL mount\n@@DONE\n", Release));
        Assert.StartsWith("usbg rig, board kernel Linux 6.12.118+deb12-amd64: @@FAIL mount", e.Message);
        Assert.DoesNotContain("board-side", e.Message);
    }
}
