using System.Text.RegularExpressions;
using RootfsExport.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace RootfsExport.NineP.Tests;

/// <summary>
/// The dev loop as the board sees it (docs/DEVLOOP.md): mounted with the options we print, a Linux 6.12 guest
/// sees a file the host replaced by rename (as `update` replaces package files), a new file and a removed one,
/// within 2 s and without a remount, while a process that holds the old file keeps running.
/// </summary>
public class LiveUpdateGuestTests(ITestOutputHelper output)
{
    [Fact]
    [Trait("Category", "EndToEnd")]
    public async Task Guest_sees_replaced_new_and_removed_files_within_two_seconds_without_remount()
    {
        using var fx = new ExportFixture();
        var work = fx.Scratch["guest"];
        Directory.CreateDirectory(work);
        var opt = Path.Combine(fx.Export, "opt");
        Directory.CreateDirectory(opt);
        File.WriteAllText(Path.Combine(opt, "hello"), "#!/bin/sh\necho OLD\n");
        File.WriteAllText(Path.Combine(opt, "gone"), "old package\n");

        string console;
        await using (var srv = new RunningServer(fx.Export))
        {
            var opts = new RootfsExport.BootSpec.NinePTcpEndpoint(System.Net.IPAddress.Parse(TcpGuest.Address(0)), fx.Export, srv.Port).MountOptions;
            // the guest polls every 0.1 s (100 rounds at most) and times, in 1/100 s from its "ready", when it sees each change
            var init = TcpGuest.Prelude + $$"""

                mkdir -p /mnt
                mount -t 9p -o {{opts}} {{TcpGuest.Address(0)}} /mnt || echo "@@FAIL mount"
                echo "@@BEFORE $(sh /mnt/opt/hello) $(cat /mnt/opt/gone) $(cat /mnt/opt/new 2>/dev/null || echo absent)"
                ( exec 3</mnt/opt/hello; sleep 60 ) & HOLD=$!
                now() { read u _ < /proc/uptime; echo $(( ${u%.*} * 100 + 1${u#*.} - 100 )); }
                echo ready > /mnt/ready; t0=$(now)
                i=0; s=""; n=""; r=""
                while [ $i -lt 100 ]; do
                  [ -z "$s" ] && [ "$(sh /mnt/opt/hello)" = NEW ] && s=$(( $(now) - t0 ))
                  [ -z "$n" ] && [ -e /mnt/opt/new ] && n=$(( $(now) - t0 ))
                  [ -z "$r" ] && [ ! -e /mnt/opt/gone ] && r=$(( $(now) - t0 ))
                  [ -n "$s" ] && [ -n "$n" ] && [ -n "$r" ] && break
                  sleep 0.1; i=$((i+1))
                done
                echo "@@AFTER replaced=$s new=$n removed=$r holder=$(kill -0 $HOLD && echo alive)"
                kill $HOLD; umount /mnt
                echo "@@DONE"
                poweroff -f
                """;
            var guest = Task.Run(() => TcpGuest.Boot(work, init, [srv.Port]));
            var ready = Path.Combine(fx.Export, "ready");
            for (int i = 0; i < 1800 && !File.Exists(ready) && !guest.IsCompleted; i++) await Task.Delay(100);
            if (File.Exists(ready))
            {
                // what update does to a package's files: the new content lands by rename, new files appear, old ones go
                File.WriteAllText(Path.Combine(opt, ".hello.new"), "#!/bin/sh\necho NEW\n");
                File.Move(Path.Combine(opt, ".hello.new"), Path.Combine(opt, "hello"), overwrite: true);
                File.WriteAllText(Path.Combine(opt, "new"), "new package\n");
                File.Delete(Path.Combine(opt, "gone"));
            }
            console = await guest;
        }
        output.WriteLine(console);

        Assert.Contains("@@DONE", console);
        Assert.DoesNotContain("@@FAIL", console);
        Assert.Contains("@@BEFORE OLD old package absent", console);
        var after = Regex.Match(console, @"@@AFTER replaced=(\d*) new=(\d*) removed=(\d*) holder=(\w*)");
        Assert.True(after.Success, "no @@AFTER line");
        foreach (var (what, group) in new[] { ("the replaced file", 1), ("the new file", 2), ("the removal", 3) })
        {
            var hundredths = after.Groups[group].Value;
            Assert.True(hundredths.Length > 0 && int.Parse(hundredths) <= 200, $"the guest did not see {what} within 2 s ('{hundredths}' hundredths)");
        }
        Assert.Equal("alive", after.Groups[4].Value);
    }
}
