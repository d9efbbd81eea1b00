using RootfsExport.NineP.Protocol;
using Xunit;

namespace RootfsExport.NineP.Tests;

/// <summary>
/// A lookup is Twalk then Tgetattr of the new fid; the server may answer that Tgetattr from the walk's own
/// stat (docs/NINEP.md, "Walk then getattr"), but never once anything changed the object in between: through
/// another connection, or on the host more than a millisecond after the walk.
/// </summary>
public class WalkThenGetattrTests
{
    private static async Task<ulong> SizeOf(TestClient c, uint fid) =>
        (await c.Call<Rgetattr>(new Tgetattr(fid, AttrMask.Basic))).Attr.Size;

    [Fact]
    public async Task A_write_through_another_connection_between_walk_and_getattr_is_seen()
    {
        using var fx = new ExportFixture();
        File.WriteAllText(Path.Combine(fx.Export, "etc/hostname"), "a\n");
        await using var srv = new RunningServer(fx.Export);
        await using var reader = await TestClient.ConnectAsync(srv.Port);
        await using var writer = await TestClient.ConnectAsync(srv.Port);
        await reader.Mount(fx.Export);
        await writer.Mount(fx.Export);

        await writer.Call<Rwalk>(new Twalk(0, 1, ["etc", "hostname"]));
        await writer.Call<Rlopen>(new Tlopen(1, 1));
        // warmed up, so the write lands well inside the millisecond after the walk
        for (int i = 0; i < 3; i++)
        {
            await reader.Call<Rwalk>(new Twalk(0, 1, ["etc", "hostname"]));
            await reader.Call<Rclunk>(new Tclunk(1));
        }
        await reader.Call<Rwalk>(new Twalk(0, 1, ["etc", "hostname"]));
        await writer.Call<Rwrite>(new Twrite(1, 0, "board-0042\n"u8.ToArray()));

        Assert.Equal(11ul, await SizeOf(reader, 1));
    }

    [Fact]
    public async Task A_host_change_after_the_walk_is_seen_once_a_millisecond_passed()
    {
        using var fx = new ExportFixture();
        var hostname = Path.Combine(fx.Export, "etc/hostname");
        File.WriteAllText(hostname, "a\n");
        await using var srv = new RunningServer(fx.Export);
        await using var c = await TestClient.ConnectAsync(srv.Port);
        await c.Mount(fx.Export);

        await c.Call<Rwalk>(new Twalk(0, 1, ["etc", "hostname"]));
        await Task.Delay(20);
        File.WriteAllText(hostname, "board-0042\n");

        Assert.Equal(11ul, await SizeOf(c, 1));
        Assert.Equal(11ul, await SizeOf(c, 1));
    }
}
