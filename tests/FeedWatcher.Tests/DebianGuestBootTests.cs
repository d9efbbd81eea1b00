using System.Net;
using RootfsExport.ExportServing;
using RootfsExport.NineP.Server;
using RootfsExport.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace RootfsExport.FeedWatcher.Tests;

/// <summary>
/// The updated Debian export is a root file system a board runs: the minbase image updated by `update` with the
/// packages of <see cref="DpkgDifferentialTests"/> (merged /usr, libc's trigger, new busybox, iputils-ping,
/// libcap2-bin) is served by our 9P server to a Linux 6.12 guest, which mounts it, changes root into it and runs
/// Debian's /bin/sh and busybox from it. Then the board's own step for iputils-ping: `dpkg --configure` runs its
/// postinst, whose setcap gives /bin/ping cap_net_raw+ep through the 9P xattr; an ordinary user in the guest pings
/// with that capability (no setuid bit), and files.db on the host holds the capability the board set.
/// </summary>
public sealed class DebianGuestBootTests(ITestOutputHelper output)
{
    [Fact]
    [Trait("Category", "EndToEnd")]
    public async Task The_updated_debian_export_runs_sh_busybox_and_ping_with_its_capability_over_9p()
    {
        Run.RequirePeer("sqlite3");
        var image = DebianImage.MinbaseTarball();
        var debs = DpkgDifferentialTests.Newer(image, DebianImage.Debs([.. DpkgDifferentialTests.Upgrades, .. DpkgDifferentialTests.NewPackages]));
        using var b = new OeFeedBuild(image);
        foreach (var deb in debs) File.Copy(deb, Path.Combine(b.FeedDir("deb", "core2-64"), Path.GetFileName(deb)));
        b.Own();
        var inImage = DpkgDifferentialTests.ImageVersions(image);
        var fresh = debs.Select(d => Run.Program("dpkg-deb", "-f", d, "Package").ShouldSucceed().Stdout.Trim()).Where(n => !inImage.ContainsKey(n)).ToList();
        Assert.Contains(" 0 problem(s)", b.Update(["--install", .. fresh]).ShouldSucceed().Stdout);

        var work = Path.Combine(b.Work, "guest");
        Directory.CreateDirectory(work);
        string console;
        using (var server = ExportServer.Open(b.Export))
        using (var listener = ExportServer.Bind(new NineP.Transport.ListenAddress("tcp", "127.0.0.1", 0, null)))
        {
            using var stop = new CancellationTokenSource();
            var loop = server.Server.ListenAsync(listener, stop.Token);
            int port = ((IPEndPoint)listener.LocalEndPoint!).Port;
            var opts = new BootSpec.NinePTcpEndpoint(IPAddress.Parse(TcpGuest.Address(0)), b.Export, port).MountOptions;
            const string inRoot = "chroot /mnt /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C";
            var init = TcpGuest.Prelude + $$"""

                mkdir -p /tmp; mount -t 9p -o {{opts}} {{TcpGuest.Address(0)}} /mnt || echo "@@FAIL mount"
                mount -t proc proc /mnt/proc; mount -t sysfs sys /mnt/sys; mount -t devtmpfs dev /mnt/dev
                echo "@@SH $({{inRoot}} /bin/sh -c 'echo "dash says $((6 * 7))"' 2>&1)"
                echo "@@BUSYBOX $({{inRoot}} /bin/busybox echo busybox runs 2>&1)"
                {{inRoot}} dpkg --configure libcap2-bin iputils-ping </dev/null > /tmp/configure.log 2>&1 && echo "@@CONFIGURED" || { echo "@@FAIL configure"; cat /tmp/configure.log; }
                echo "@@GETCAP $({{inRoot}} getcap /bin/ping 2>&1)"
                echo "@@MODE $({{inRoot}} stat -c %A /usr/bin/ping)"
                # ICMP datagram sockets off (the kernel default): only cap_net_raw lets an ordinary user ping; a copy
                # of ping without the xattr is the control
                echo "1 0" > /proc/sys/net/ipv4/ping_group_range
                {{inRoot}} cp /usr/bin/ping /tmp/ping-nocap
                {{inRoot}} setpriv --reuid=65534 --regid=65534 --clear-groups /tmp/ping-nocap -c 1 -W 5 127.0.0.1 >/dev/null 2>&1 && echo "@@NOCAP pinged" || echo "@@NOCAP refused"
                {{inRoot}} rm /tmp/ping-nocap
                {{inRoot}} setpriv --reuid=65534 --regid=65534 --clear-groups ping -c 1 -W 5 127.0.0.1 > /tmp/ping.log 2>&1 && echo "@@PING ok" || { echo "@@FAIL ping"; cat /tmp/ping.log; }
                umount /mnt/dev /mnt/sys /mnt/proc; umount /mnt
                echo "@@DONE"
                poweroff -f
                """;
            console = await Task.Run(() => TcpGuest.Boot(work, init, [port], seconds: 900));
            stop.Cancel();
            await loop.WaitAsync(TimeSpan.FromSeconds(30));
        }
        output.WriteLine(console);

        Assert.Contains("@@DONE", console);
        Assert.DoesNotContain("@@FAIL", console);
        Assert.Contains("@@SH dash says 42", console);
        Assert.Contains("@@BUSYBOX busybox runs", console);
        Assert.Contains("@@CONFIGURED", console);
        Assert.Contains("@@GETCAP /bin/ping cap_net_raw=ep", console);
        Assert.Contains("@@MODE -rwxr-xr-x", console); // no setuid: the capability is what lets nobody ping
        Assert.Contains("@@NOCAP refused", console);
        Assert.Contains("@@PING ok", console);
        // the board's setcap went through our server into files.db
        var cap = Run.Program("sqlite3", b.Export + ".pseudo_state/files.db",
            $"SELECT hex(x.value) FROM xattrs x JOIN files f ON f.dev = x.dev AND f.ino = x.ino WHERE f.path = '{b.Export}/usr/bin/ping' AND x.name = 'security.capability'").ShouldSucceed().Stdout.Trim();
        Assert.StartsWith("0100000200200000", cap); // revision 2 with the effective flag, cap_net_raw permitted
    }
}
