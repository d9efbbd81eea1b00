using System.Diagnostics;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.FeedWatcher.Tests;

/// <summary>kill -9 while an upgrade is being applied: the next run rolls it forward from the journal.</summary>
public sealed class KillTests
{
    [Theory]
    [InlineData(0)]
    [InlineData(150)]
    [InlineData(400)]
    public void Killed_upgrade_converges_on_the_next_run(int delayAfterJournalMs)
    {
        using var b = new FeedUpdateTests.Build();
        b.Update().ShouldSucceed();
        var files = string.Join(";", Enumerable.Range(0, 3000).Select(i => $"/usr/share/big/d{i % 30}/f{i}=content {i}"));
        b.Ipk("big", "1.0-r0", "core2-64", files + ";/usr/share/big/gone=old");
        b.Update("--install", "big").ShouldSucceed();
        File.Delete(Path.Combine(b.Feed, "big_1.0-r0_core2-64.ipk"));
        b.Ipk("big", "2.0-r0", "core2-64", files.Replace("content", "new content"));

        var journal = Path.Combine(b.Export + ".pseudo_state", "rootfs-export-feed.journal");
        using (var update = new BackgroundTool(["update", "reference-base-image"], new Dictionary<string, string> { ["BUILDDIR"] = b.Root }, b.Dir.Path))
        {
            var clock = Stopwatch.StartNew();
            while (!File.Exists(journal) && !update.HasExited && clock.Elapsed < TimeSpan.FromSeconds(60)) Thread.Sleep(2);
            Thread.Sleep(delayAfterJournalMs);
            bool killed = !update.HasExited;
            if (killed) update.Kill();
            Assert.True(update.WaitForExit(30_000));
            if (!killed)
            {
                Assert.NotEqual(0, delayAfterJournalMs); // killed right after the journal appeared must land mid-package
                return; // the machine was faster than the delay: nothing to recover (the other cases cover it)
            }
        }

        var rerun = b.Update().ShouldSucceed().Stdout;
        if (delayAfterJournalMs == 0) Assert.Contains("Finishing big, interrupted in a previous run", rerun);
        Assert.Contains("big 1.0-r0 → 2.0-r0", rerun);
        Assert.False(File.Exists(journal));
        Assert.Contains("Package: big\nVersion: 2.0-r0\nStatus: install ok installed", b.Status);
        Assert.Equal("new content 2999", File.ReadAllText(Path.Combine(b.Export, "usr/share/big/d29/f2999")));
        Assert.False(File.Exists(Path.Combine(b.Export, "usr/share/big/gone")));
        Assert.DoesNotContain("/usr/share/big/gone", File.ReadAllText(Path.Combine(b.Export, "var/lib/opkg/info/big.list")));
        Assert.Empty(Directory.EnumerateFiles(b.Export, "*.rfe-*", SearchOption.AllDirectories));
        Assert.Contains("clean:", Run.Tool("check", b.Export).ShouldSucceed().Stdout);
        Assert.Contains("up to date", b.Update().ShouldSucceed().Stdout.Split("Update from package feeds")[1]);
    }
}
