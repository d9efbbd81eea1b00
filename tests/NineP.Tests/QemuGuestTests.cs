using System.Text.RegularExpressions;
using RootfsExport.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace RootfsExport.NineP.Tests;

/// <summary>
/// The real client: Debian's Linux 6.12 under qemu-system-x86_64 (TCG, one vCPU) mounts the export from our
/// server through a slirp guestfwd (restrict=on, loopback only) with the usbg root flags over trans=tcp.
/// </summary>
public class QemuGuestTests(ITestOutputHelper output)
{
    [Fact]
    [Trait("Category", "EndToEnd")]
    public async Task Linux_guest_sees_database_owners_and_its_changes_land_in_files_db()
    {
        Run.RequirePeer("pseudo");
        using var fx = new ExportFixture();
        var work = fx.Scratch["guest"];
        Directory.CreateDirectory(work);

        string guestLog;
        await using (var srv = new RunningServer(fx.Export))
        {
            // the options a board boots with (rootflags=), from the boot issue's generator: one source of truth
            var opts = new RootfsExport.BootSpec.NinePTcpEndpoint(System.Net.IPAddress.Parse("10.0.2.100"), fx.Export, srv.Port).MountOptions;
            var init = TcpGuest.Prelude + $$"""

                mkdir -p /mnt
                if mount -t 9p -o {{opts}} 10.0.2.100 /mnt; then
                  echo "@@LS-BEGIN"; ls -ln /mnt/etc/hostname /mnt/dev/null /mnt/bin/tool; ls -lnd /mnt/srv/shared; echo "@@LS-END"
                  echo "@@CAT $(cat /mnt/etc/hostname)"
                  echo "from the guest" > /mnt/etc/newfile && chown 1234:5678 /mnt/etc/newfile && chmod 4750 /mnt/etc/newfile
                  mv /mnt/etc/newfile /mnt/etc/renamed
                  echo "@@RENAMED $(ls -ln /mnt/etc/renamed)"
                  mkdir /mnt/srv/shared/made && echo "@@MADE $(ls -lnd /mnt/srv/shared/made)"
                  mknod /mnt/dev/console c 5 1 && echo "@@NODE $(ls -ln /mnt/dev/console)"
                  rm /mnt/bin/sh && echo "@@RM ok"
                  echo "@@UP $(cd /mnt/etc/../.. && ls | tr '\n' ' ')"
                  echo "@@UPSRV $(ls /mnt/srv/../../ | tr '\n' ' ')"
                  echo "@@ESCAPE $(cat /mnt/escape/secret 2>&1 | head -1)"
                  echo "@@DF $(df /mnt | tail -1)"
                  sync; umount /mnt && echo "@@UMOUNT ok"
                else
                  echo "@@FAIL mount"
                fi
                echo "@@DONE"
                poweroff -f
                """;
            guestLog = TcpGuest.Boot(work, init, [srv.Port]);
            output.WriteLine(guestLog);
        }

        Assert.Contains("@@DONE", guestLog);
        Assert.DoesNotContain("@@FAIL", guestLog);
        var ls = Between(guestLog, "@@LS-BEGIN", "@@LS-END");
        Assert.Matches(@"-rw-r--r--\s+1 0\s+0\s+17 .*/mnt/etc/hostname", ls);
        Assert.Matches(@"crw-rw-rw-\s+1 0\s+0\s+1,\s+3 .*/mnt/dev/null", ls);
        Assert.Matches(@"-rwsr-xr-x\s+1 0\s+0\s+.*/mnt/bin/tool", ls);
        Assert.Matches(@"drwxr-sr-x\s+2 0\s+42\s+.*/mnt/srv/shared", ls);
        Assert.Contains("@@CAT board-under-test", guestLog);
        Assert.Matches(@"@@RENAMED -rwsr-x---\s+1 1234\s+5678\s+15 ", guestLog);
        Assert.Matches(@"@@MADE drwxr-sr-x\s+2 0\s+42 ", guestLog);
        Assert.Matches(@"@@NODE crw-r--r--\s+1 0\s+0\s+5,\s+1 ", guestLog);
        Assert.Contains("@@RM ok", guestLog);
        Assert.Contains("@@UMOUNT ok", guestLog);
        // '..' from inside the mount ends at the guest's own root (the initramfs), never on the server's host
        Assert.Matches(@"@@UP .*\binit\b", guestLog);
        Assert.DoesNotContain("outside the export", guestLog);

        // the database the server kept, read back with pseudo itself
        var renamed = fx.Row("etc/renamed")!;
        Assert.Equal((1234u, 5678u, 0x89e8u), (renamed.Uid, renamed.Gid, renamed.Mode));
        Assert.Null(fx.Row("etc/newfile"));
        Assert.Null(fx.Row("bin/sh"));
        Assert.Equal((0x2000u | 0x1a4u, RootfsExport.Posix.Native.Libc.MakeDev(5, 1)), (fx.Row("dev/console")!.Mode, fx.Row("dev/console")!.Rdev));
        Run.Program("chown", "-R", $"{Run.NobodyId}:{Run.NobodyId}", fx.Scratch.Path).ShouldSucceed();
        var env = new Dictionary<string, string> { ["PSEUDO_PREFIX"] = "/usr", ["PSEUDO_LOCALSTATEDIR"] = fx.State.Directory };
        try
        {
            var pls = Run.Program("pseudo", ["ls", "-ln", Path.Combine(fx.Export, "etc"), Path.Combine(fx.Export, "dev")], asUnprivileged: true, env: env,
                timeout: TimeSpan.FromMinutes(1)).ShouldSucceed().Stdout;
            output.WriteLine(pls);
            Assert.Matches(@"-rwsr-x---\s+1 1234\s+5678\s+15 .*renamed", pls);
            Assert.Matches(@"crw-r--r--\s+1 0\s+0\s+5,\s+1 .*console", pls);
            Assert.Matches(@"crw-rw-rw-\s+1 0\s+0\s+1,\s+3 .*null", pls);
        }
        finally
        {
            Run.Program("pseudo", ["-S"], asUnprivileged: true, env: env, timeout: TimeSpan.FromMinutes(1));
        }
    }

    private static string Between(string text, string start, string end)
    {
        int a = text.IndexOf(start, StringComparison.Ordinal), b = text.IndexOf(end, StringComparison.Ordinal);
        return a >= 0 && b > a ? text[a..b] : "";
    }
}
