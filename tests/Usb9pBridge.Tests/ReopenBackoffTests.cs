using Xunit;

namespace RootfsExport.Usb9pBridge.Tests;

/// <summary>
/// serve --usb and a board whose endpoints answer nothing (Linux ≥ 6.12.118 after umount, docs/USB9PFS.md): the
/// gadget is opened again after a pause that doubles up to a bound, and only the first two empty sessions are
/// logged; a re-enumerated board (new address) or a session that served requests is opened at once.
/// </summary>
public sealed class ReopenBackoffTests
{
    private static Usb9pfsGadget Gadget(int address, string path = "1-1") =>
        new(path, 1, address, 0x1d6b, 0x0109, "high", "m", "p", "s", 0, 0x81, 0x01, 512, 512);

    [Fact]
    public void Empty_sessions_at_one_address_wait_longer_each_time_up_to_the_bound_and_go_quiet()
    {
        var b = new ReopenBackoff { First = TimeSpan.FromSeconds(1), Max = TimeSpan.FromSeconds(8) };
        var g = Gadget(5);
        Assert.True(b.MayOpen(g, 0) && b.Loud(g) && !b.FirstEmpty(g));
        long now = 0;
        var pauses = new List<long>();
        var loud = new List<bool>();
        for (int i = 0; i < 6; i++)
        {
            b.Ended(g, requests: 0, now);
            Assert.False(b.MayOpen(g, now));
            long at = now;
            while (!b.MayOpen(g, at)) at += 100;
            Assert.True(b.AnyDue(at));
            pauses.Add(at - now);
            loud.Add(b.Loud(g));
            b.Opened(g);
            Assert.False(b.AnyDue(at)); // open again: no scan is due for it while its session runs
            now = at;
        }
        Assert.Equal([1000, 2000, 4000, 8000, 8000, 8000], pauses);
        Assert.Equal([true, false, false, false, false, false], loud); // the second session is the last one logged
    }

    [Fact]
    public void A_new_address_or_a_session_that_served_requests_starts_over()
    {
        var b = new ReopenBackoff();
        var g = Gadget(5);
        b.Ended(g, 0, 0);
        b.Ended(g, 0, 0);
        Assert.False(b.MayOpen(g, 10));
        Assert.True(b.FirstEmpty(g) is false && b.Loud(g) is false);
        var reenumerated = Gadget(6);
        Assert.True(b.MayOpen(reenumerated, 10) && b.Loud(reenumerated)); // the board re-enumerated: it can mount again
        b.Ended(g, requests: 42, 20);
        Assert.True(b.MayOpen(g, 20) && b.Loud(g));
        Assert.False(b.AnyDue(20));
        b.Ended(g, 0, 30);
        Assert.True(b.FirstEmpty(g));
        b.Forget(["1-1"]);
        Assert.True(b.MayOpen(g, 30) && !b.FirstEmpty(g));
        Assert.True(b.MayOpen(Gadget(5, "1-2"), 30)); // another port is another gadget
    }
}
