using System.Text.RegularExpressions;
using RootfsExport.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace RootfsExport.Usb9pBridge.Tests;

/// <summary>
/// Issue 24 on the usb9pfs rig (docs/TEST-RIGS.md, docs/DEVLOOP.md): `rootfs-export dev --usb` runs on the guest's
/// USB host side as uid 65534 on a small image with an ipk feed; the board mounts over trans_usbg with the line
/// `dev` printed. Packages land in the feed as bitbake lands them (written beside it, renamed in) and `dev`'s
/// watch applies them while serving: with the export mounted, no remount, the board runs the rebuilt binary, a
/// process started from the previous one keeps running, a new package's file appears and a removed one's goes.
/// The build lives on a tmpfs in the guest, so the watch's inotify sees the landing (a virtio-9p share shows a
/// guest no changes made elsewhere). Here the tool itself runs under TCG, so the times are recorded, not bounded.
/// </summary>
public sealed class UsbDevLoopTests(ITestOutputHelper output)
{
    private const string Arch = "core2-64";

    [Fact]
    [Trait("Category", "EndToEnd")]
    public void Dev_over_usbg_applies_rebuilt_and_new_packages_and_the_mounted_board_sees_them_without_remount()
    {
        using var build = new OeFeedBuild("mkdir -p var/lib/opkg/info && : > var/lib/opkg/status", [$"hello {Arch} 1.0-r0", $"gone {Arch} 1.0-r0"]);
        var hello = new[] { "OLD", "NEW", "NEWER" }.ToDictionary(v => v, v => HelloProgram.Compile(build.Work, $"hello {v}"));
        build.Ipk("hello", "1.0-r0", Arch, [new("/usr/bin/hello", null, 0x1ed, Bytes: hello["OLD"])]);
        build.Ipk("gone", "1.0-r0", Arch, [new("/usr/share/gone/data", "from gone\n")]);
        // the packages the "build" lands later, made now; the guest copies them into the feed
        var pkgs = build.Dir["pkgs"];
        string Control(string name) => $"Package: {name}\nVersion: 1.0-r0\nArchitecture: {Arch}\nMaintainer: t\nDescription: test package {name}\n";
        TestIpk.Write(Path.Combine(pkgs, "hello-new.ipk"), Control("hello"), [new("/usr/bin/hello", null, 0x1ed, Bytes: hello["NEW"])]);
        TestIpk.Write(Path.Combine(pkgs, "hello-newer.ipk"), Control("hello"), [new("/usr/bin/hello", null, 0x1ed, Bytes: hello["NEWER"])]);
        TestIpk.Write(Path.Combine(pkgs, "extra.ipk"), Control("extra"), [new("/usr/share/extra/data", "from extra\n")]);
        File.WriteAllText(Path.Combine(pkgs, "manifest"), $"hello {Arch} 1.0-r0\nextra {Arch} 1.0-r0\n");
        build.Own();
        Run.Program("chown", "-R", $"{Run.NobodyId}:{Run.NobodyId}", build.Dir.Path).ShouldSucceed();

        var console = UsbgRig.Boot(build.Dir.Path, Script(), TimeSpan.FromMinutes(15));
        output.WriteLine(console);
        UsbgRig.ShouldHaveRun(console);
        Assert.Contains("@@BEFORE hello OLD | from gone", console);
        var rebuilt = Regex.Match(console, @"@@REBUILT hello NEW after (\d+) ms");
        Assert.True(rebuilt.Success, "the board did not run the rebuilt hello");
        Assert.Matches(@"@@RUNNING hello NEWER after \d+ ms \| sleeper alive, printed [1-9]\d* more, last 'hello NEW'", console);
        Assert.Contains("@@AFTER-EXIT hello NEWER", console);
        var packages = Regex.Match(console, @"@@PACKAGES from extra \| gone absent after (\d+) ms");
        Assert.True(packages.Success, "the board did not see the new package's file appear and the removed one's go");
        Assert.Contains("hello 1.0-r0 → 1.0-r0", console);
        Assert.Contains("@@STOPPED", console);
        output.WriteLine($"usbg rig (the tool under TCG too): landed -> the board ran the rebuilt hello {rebuilt.Groups[1].Value} ms; " +
                         $"-> the board saw the package changes {packages.Groups[1].Value} ms");
    }

    /// <summary>The guest: board (trans_usbg mount) and host side (dev --usb, the build on a tmpfs) at once.</summary>
    private static string Script() => $$"""
        make_gadget rootfs
        ( i=0; while [ $i -lt 3600 ]; do chmod a+rw /dev/bus/usb/*/* 2>/dev/null; sleep 0.25; i=$((i+1)); done ) & UDEV=$!
        mkdir -p /host$WORK/mem && mount -t tmpfs -o size=256m,mode=0755 mem /host$WORK/mem || echo "@@FAIL tmpfs"
        cp -a $WORK/build /host$WORK/mem/build && chown -R 65534:65534 /host$WORK/mem
        B=$WORK/mem/build; FEED=/host$B/tmp/deploy/ipk/{{Arch}}; IMAGES=/host$B/tmp/deploy/images/qemux86-64
        DEV=$WORK/dev.log
        spawn_user $DEV /usr/bin/env BUILDDIR=$B dotnet '{{ToolCopy.Dll}}' dev {{OeFeedBuild.Image}} --usb --udc rootfs
        DEVPID=$!
        wait_attached $DEV rootfs 600
        wait_log $DEV "listening on" 120
        OPTS=$(sed -n 's|^board: *mount -t 9p -o \([^ ]*\) rootfs /mnt .*|\1|p' $DEV | head -1)
        [ -n "$OPTS" ] || echo "@@FAIL dev printed no board mount line"
        poll() { i=0; until eval "$1" || [ $i -ge 2400 ]; do sleep 0.05; i=$((i+1)); done; }
        land() { cp $WORK/pkgs/$1 $FEED/.$2.ipk.tmp && mv $FEED/.$2.ipk.tmp $FEED/$2_1.0-r0_{{Arch}}.ipk; }
        if mount -t 9p -o $OPTS rootfs /mnt; then
          echo "@@BEFORE $(/mnt/usr/bin/hello) | $(cat /mnt/usr/share/gone/data)"
          t0=$(now_ms); land hello-new.ipk hello
          poll '[ "$(/mnt/usr/bin/hello)" = "hello NEW" ]'
          echo "@@REBUILT $(/mnt/usr/bin/hello) after $(( $(now_ms) - t0 )) ms"
          /mnt/usr/bin/hello sleep > /sleeper.log & SLEEPER=$!
          sleep 2
          t0=$(now_ms); land hello-newer.ipk hello
          poll 'grep -q "hello NEWER" /mnt/usr/bin/hello'
          t1=$(now_ms); before=$(wc -l < /sleeper.log); sync; echo 3 > /proc/sys/vm/drop_caches; sleep 3
          echo "@@RUNNING hello NEWER after $((t1 - t0)) ms | sleeper $(kill -0 $SLEEPER && echo alive), printed $(( $(wc -l < /sleeper.log) - before )) more, last '$(tail -n 1 /sleeper.log)'"
          kill $SLEEPER; wait $SLEEPER
          echo "@@AFTER-EXIT $(/mnt/usr/bin/hello)"
          t0=$(now_ms); land extra.ipk extra
          cp $WORK/pkgs/manifest $IMAGES/.manifest.tmp && mv $IMAGES/.manifest.tmp $IMAGES/{{OeFeedBuild.Image}}-qemux86-64.rootfs.manifest
          poll '[ -e /mnt/usr/share/extra/data ] && [ ! -e /mnt/usr/share/gone/data ]'
          echo "@@PACKAGES $(cat /mnt/usr/share/extra/data 2>/dev/null) | gone $([ -e /mnt/usr/share/gone/data ] && echo present || echo absent) after $(( $(now_ms) - t0 )) ms"
          umount /mnt || echo "@@FAIL umount"
        else
          echo "@@FAIL mount"
        fi
        kill -TERM $DEVPID; wait_log $DEV "database is consistent" 120 && echo "@@STOPPED"
        kill $UDEV
        echo "@@DEV-LOG"; cat $DEV
        """;
}
