using RootfsExport.BootSpec;
using RootfsExport.ExportServing;
using RootfsExport.PseudoDb;
using RootfsExport.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace RootfsExport.Usb9pBridge.Tests;

/// <summary>
/// serve --usb --board on the usbg rig (Linux's trans_usbg on dummy_hcd in a QEMU guest, docs/TEST-RIGS.md): the
/// board mounts the plain export with trans=usbg, the host maps its gadget's USB port to board rock3a, and what the
/// board writes and deletes lands in rock3a's layer, never in the shared export; `board diff` lists it with owners.
/// </summary>
public sealed class UsbBoardRigTests(ITestOutputHelper output) : IDisposable
{
    private readonly ScratchDir _work = new("rfe-usbgb");
    private string Export => _work["export"];

    public void Dispose() => _work.Dispose();

    [Fact]
    [Trait("Category", "EndToEnd")]
    public void A_gadget_mapped_by_its_port_writes_only_its_boards_layer()
    {
        var src = _work["src"];
        foreach (var d in new[] { "etc", "bin" }) Directory.CreateDirectory(Path.Combine(src, d));
        File.WriteAllText(Path.Combine(src, "etc/hostname"), "shared\n");
        File.WriteAllText(Path.Combine(src, "bin/tool"), "#!/bin/sh\n");
        Run.Shell($"tar --numeric-owner --owner=0 --group=0 -C {src} -cf {_work["rootfs.tar"]} . && chmod a+r {_work["rootfs.tar"]}").ShouldSucceed();
        Run.Tool("unpack", _work["rootfs.tar"], Export).ShouldSucceed();
        var export = ExportPaths.Canonical(Export);
        var opts = new UsbgEndpoint("rootfs", export).MountOptions; // the board's own line names no board
        var script = $$"""
            SERVE=$WORK/serve.log
            make_gadget rootfs
            ( i=0; while [ $i -lt 2400 ]; do chmod a+rw /dev/bus/usb/*/* 2>/dev/null; sleep 0.25; i=$((i+1)); done ) &
            UDEV=$!
            spawn_user $SERVE dotnet '{{ToolCopy.Dll}}' serve '{{export}}' --usb --udc rootfs --board "$(gadget_port rootfs)=rock3a"
            SRV=$!
            wait_attached $SERVE rootfs 60
            if mount -t 9p -o {{opts}} rootfs /mnt; then
              echo "@@HOST $(cat /mnt/etc/hostname)"
              echo "from rock3a" > /mnt/etc/motd && chown 1234:5678 /mnt/etc/motd
              rm /mnt/bin/tool
              sync; umount /mnt && echo "@@UMOUNT ok"
            else
              echo "@@FAIL mount"
            fi
            kill $SRV $UDEV; wait_log $SERVE "database is consistent" 60 && echo "@@STOPPED"
            echo "@@SERVE-LOG"; cat $SERVE
            """;
        var console = UsbgRig.Boot(_work.Path, script, TimeSpan.FromMinutes(8));
        output.WriteLine(console);
        UsbgRig.ShouldHaveRun(console);
        Assert.Contains("@@HOST shared", console);
        Assert.Contains("@@UMOUNT ok", console);
        Assert.Contains("@@STOPPED", console);
        Assert.Contains(": board rock3a (its own layer over the export)", console);

        var layer = BoardPaths.For(Export, "rock3a");
        Assert.Equal("from rock3a\n", File.ReadAllText(Path.Combine(layer.Upper, "etc/motd")));
        Assert.False(File.Exists(Path.Combine(Export, "etc/motd")));
        Assert.True(File.Exists(Path.Combine(Export, "bin/tool")));
        var diff = Run.Tool("board", "diff", Export, "rock3a").ShouldSucceed().Stdout;
        Assert.Equal(["deleted   -rw-r--r-- 0:0 /bin/tool", "added     -rw-r--r-- 1234:5678 /etc/motd"],
            diff.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}
