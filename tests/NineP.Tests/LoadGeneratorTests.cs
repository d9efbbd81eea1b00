using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using RootfsExport.NineLoad;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.NineP.Tests;

/// <summary>
/// bench/NineLoad's client logic, briefly, so the benchmark's load generator cannot rot: every workload
/// against our in-process server with two pipelining connections, and the walk against diod (Tauth answered
/// with an error, attach by n_uname with the export path as aname).
/// </summary>
public class LoadGeneratorTests
{
    private static LoadOptions Options(int port, string export) => new()
    {
        Server = new IPEndPoint(IPAddress.Loopback, port),
        Aname = export,
        Connections = 2,
        Depth = 8,
        Msize = 8192 + 24, // small, so one file takes many reads in flight
        ReplyTimeout = TimeSpan.FromSeconds(10),
    };

    /// <summary>Everything a walk must see: the export root and every entry below it, symlinks not followed.</summary>
    private static int EntriesOnHost(string export) =>
        Run.Program("find", export).ShouldSucceed().Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;

    [Fact]
    public async Task Walk_read_and_write_loads_run_against_our_server_and_clean_up()
    {
        using var fx = new ExportFixture(bigFileBytes: 300_000);
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        int entries = EntriesOnHost(fx.Export);
        await using (var srv = new RunningServer(fx.Export))
        {
        var o = Options(srv.Port, fx.Export);
        var walk = await Workloads.WalkAsync(o, limit.Token);
        Assert.Equal(2 * entries, walk.Items);
        Assert.True(walk.Requests > 3 * walk.Items, walk.ToString()); // walk + getattr + clunk per entry, plus readdirs

        var read = await Workloads.ReadAsync(o, "/srv/big.bin", passes: 2, limit.Token);
        Assert.Equal(2L * 2 * 300_000, read.Bytes);
        Assert.Equal(8192u + 24, read.Msize);

        var write = await Workloads.WriteAsync(o, "/srv", files: 40, size: 100, keep: false, limit.Token);
        Assert.Equal((80L, 8000L), (write.Items, write.Bytes));
        Assert.Contains("items=80 ", write.ToString());
        // removed afterwards over 9P: neither the host nor files.db keeps anything of the run
        Assert.Empty(Directory.GetDirectories(Path.Combine(fx.Export, "srv"), "nineload-*"));
        Assert.Equal(entries, EntriesOnHost(fx.Export));
        }
        using var db = PseudoDb.FilesDb.OpenFile(fx.State.FilesDbPath, create: false);
        Assert.DoesNotContain(db.All(), r => r.Path.Contains("/nineload-"));
    }

    [Fact]
    public async Task Written_files_are_kept_on_request_with_their_owner_in_files_db()
    {
        using var fx = new ExportFixture();
        await using (var srv = new RunningServer(fx.Export))
        {
            var o = Options(srv.Port, fx.Export) with { Connections = 1, Uid = 1234, Gid = 5678 };
            var write = await Workloads.WriteAsync(o, "/", files: 5, size: 10, keep: true, CancellationToken.None);
            Assert.Equal(5, write.Items);
        }
        var dir = Assert.Single(Directory.GetDirectories(fx.Export, "nineload-*"));
        Assert.Equal(5, Directory.GetFiles(dir).Length);
        var row = fx.Row(Path.GetFileName(dir) + "/f00003")!;
        Assert.Equal((1234u, 5678u, 0x81a4u), (row.Uid, row.Gid, row.Mode));
    }

    [Fact]
    public async Task Walk_runs_against_diod()
    {
        var diod = Run.RequirePeer("diod");
        using var fx = new ExportFixture();
        int port = FreePort();
        // diod serves as whoever runs it; attach as that uid (what diodls does)
        var psi = new ProcessStartInfo(diod) { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-f", "-n", "-l", $"127.0.0.1:{port}", "-e", fx.Export }) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        try
        {
            var o = Options(port, fx.Export) with { Msize = 1024 * 1024 + 24 }; // Uid: ours by default
            LoadResult? walk = null;
            for (int i = 0; walk is null; i++)
            {
                try { walk = await Workloads.WalkAsync(o, CancellationToken.None); }
                catch (SocketException) when (i < 50 && !p.HasExited) { await Task.Delay(100); }
            }
            Assert.Equal(2 * EntriesOnHost(fx.Export), walk.Items);
            Assert.Equal(65536u, walk.Msize); // diod 1.0.24 caps msize
        }
        finally
        {
            p.Kill();
            p.WaitForExit();
        }
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
