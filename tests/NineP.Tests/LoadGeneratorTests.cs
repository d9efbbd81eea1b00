using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using RootfsExport.NineLoad;
using RootfsExport.NineP.Protocol;
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
            // uid 1234 creates only where the modes let it: a 0777 directory with no row (the host's mode)
            var pub = Directory.CreateDirectory(Path.Combine(fx.Export, "pub"));
            pub.UnixFileMode = (UnixFileMode)0x1ff;
            var o = Options(srv.Port, fx.Export) with { Connections = 1, Uid = 1234, Gid = 5678 };
            var write = await Workloads.WriteAsync(o, "/pub", files: 5, size: 10, keep: true, CancellationToken.None);
            Assert.Equal(5, write.Items);
        }
        var dir = Assert.Single(Directory.GetDirectories(Path.Combine(fx.Export, "pub"), "nineload-*"));
        Assert.Equal(5, Directory.GetFiles(dir).Length);
        var row = fx.Row("pub/" + Path.GetFileName(dir) + "/f00003")!;
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

    [Fact]
    public async Task A_recorded_diodls_run_is_answered_again_from_the_recording_alone()
    {
        var diodls = Run.RequirePeer("diodls");
        using var fx = new ExportFixture();
        var file = Path.Combine(fx.Scratch.Path, "diodls.rec");
        string[] Ls(int port) => ["-l", "-s", $"127.0.0.1:{port}", "-a", fx.Export, "/"];
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        string live;
        int recordPort = FreePort();
        await using (var srv = new RunningServer(fx.Export))
        {
            var record = Task.Run(() => Replay.Record(new IPEndPoint(IPAddress.Loopback, recordPort),
                new IPEndPoint(IPAddress.Loopback, srv.Port), file, TimeSpan.FromSeconds(20)));
            live = await RunWhenListening(diodls, Ls(recordPort));
            Assert.Equal(0, await record.WaitAsync(limit.Token));
        }
        Assert.Contains(" root root ", live); // the DB's owners came through the recorder

        // the server is gone: the same run answered by the replay gives the same listing, twice
        int replayPort = FreePort();
        var replay = Task.Run(() => Replay.Serve(new IPEndPoint(IPAddress.Loopback, replayPort), file, connections: 2, TimeSpan.FromSeconds(20)));
        Assert.Equal(live, await RunWhenListening(diodls, Ls(replayPort)));
        Assert.Equal(live, await RunWhenListening(diodls, Ls(replayPort)));
        Assert.Equal(0, await replay.WaitAsync(limit.Token));
    }

    [Fact]
    public void A_recording_answers_by_request_content_in_recorded_order_and_refuses_what_it_never_saw()
    {
        byte[] T(ushort tag, byte fidByte) => [11, 0, 0, 0, (byte)MessageType.Tclunk, (byte)tag, (byte)(tag >> 8), fidByte, 0, 0, 0];
        byte[] R(ushort tag, byte marker) => [8, 0, 0, 0, (byte)MessageType.Rclunk, (byte)tag, (byte)(tag >> 8), marker];
        var rec = new Recording([(T(1, 5), R(1, 0xa1)), (T(2, 6), R(2, 0xb1)), (T(3, 5), R(3, 0xa2))]);
        byte[] Ask(byte[] t) => rec.TryAnswer(t, out var r) ? r.ToArray() : throw new Xunit.Sdk.XunitException(rec.Unrecorded);
        // fid 6 asked first (reordered), then fid 5 twice: each gets its own replies in their recorded order
        Assert.Equal(R(9, 0xb1), Ask(T(9, 6)));
        Assert.Equal(R(7, 0xa1), Ask(T(7, 5)));
        Assert.Equal(R(8, 0xa2), Ask(T(8, 5)));
        Assert.Equal(0, rec.Left);
        Assert.False(rec.TryAnswer(T(1, 5), out _));
        Assert.Contains("Tclunk", rec.Unrecorded);
    }

    [Fact]
    public void A_recording_answers_any_read_of_a_file_it_saw_read_from_that_files_recorded_bytes()
    {
        byte[] F(ushort tag, Message m) => Codec.Encode(tag, m);
        var qid = new Qid(QidType.File, 0, 7);
        // recorded: attach, walk to data/big, reads of 4 + 2 bytes (the file's end), a failed walk, clunk
        var rec = new Recording([
            (F(1, new Tattach(1, P9.NoFid, "root", "/export", 0)), F(1, new Rattach(qid))),
            (F(2, new Twalk(1, 2, ["data", "big"])), F(2, new Rwalk([qid, qid]))),
            (F(3, new Tread(2, 0, 4)), F(3, new Rread("abcd"u8.ToArray()))),
            (F(4, new Tread(2, 4, 4)), F(4, new Rread("ef"u8.ToArray()))),
            (F(5, new Twalk(1, 3, ["data", "gone"])), F(5, new Rwalk([qid]))),
            (F(6, new Tclunk(2)), F(6, new Rclunk())),
        ]);
        Assert.Equal(4, rec.Left); // the Treads are not waited for
        string Read(ushort tag, uint fid, ulong offset, uint count)
        {
            Assert.True(rec.TryAnswer(F(tag, new Tread(fid, offset, count)), out var reply), rec.Unrecorded);
            Assert.Equal(DecodeError.None, Codec.TryDecode(reply.ToArray(), out var t, out var m));
            Assert.Equal(tag, t);
            return System.Text.Encoding.ASCII.GetString(Assert.IsType<Rread>(m).Data.Span);
        }
        Assert.True(rec.TryAnswer(F(11, new Tattach(1, P9.NoFid, "root", "/export", 0)), out _));
        Assert.True(rec.TryAnswer(F(12, new Twalk(1, 2, ["data", "big"])), out _));
        // other offsets and counts than recorded (readahead): served from the file's image
        Assert.Equal("cde", Read(13, 2, 2, 3));
        Assert.Equal("bcdef", Read(14, 2, 1, 100));
        Assert.Equal("", Read(15, 2, 6, 10));
        Assert.True(rec.TryAnswer(F(16, new Twalk(1, 3, ["data", "gone"])), out _));
        Assert.False(rec.TryAnswer(F(17, new Tread(3, 0, 1)), out _)); // the walk stopped short: fid 3 names nothing
        Assert.Contains("fid 3", rec.Unrecorded);
        Assert.True(rec.TryAnswer(F(18, new Tclunk(2)), out _));
        Assert.False(rec.TryAnswer(F(19, new Tread(2, 0, 1)), out _)); // clunked
        Assert.Equal(0, rec.Left);
    }

    [Fact]
    public async Task A_recorded_diodcat_run_is_answered_again_with_the_same_bytes()
    {
        var diodcat = Run.RequirePeer("diodcat");
        using var fx = new ExportFixture(bigFileBytes: 300_000);
        var file = Path.Combine(fx.Scratch.Path, "diodcat.rec");
        var copy = Path.Combine(fx.Scratch.Path, "copy");
        // through a file: the bytes are random, stdout text would not keep them
        string[] Cat(int port) => ["-c", $"exec {diodcat} -m 8192 -s 127.0.0.1:{port} -a {fx.Export} /srv/big.bin > {copy}"];
        using var limit = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        int recordPort = FreePort();
        await using (var srv = new RunningServer(fx.Export))
        {
            var record = Task.Run(() => Replay.Record(new IPEndPoint(IPAddress.Loopback, recordPort),
                new IPEndPoint(IPAddress.Loopback, srv.Port), file, TimeSpan.FromSeconds(20)));
            await RunWhenListening("/bin/sh", Cat(recordPort));
            Assert.Equal(0, await record.WaitAsync(limit.Token));
        }
        int replayPort = FreePort();
        var replay = Task.Run(() => Replay.Serve(new IPEndPoint(IPAddress.Loopback, replayPort), file, connections: 1, TimeSpan.FromSeconds(20)));
        File.Delete(copy);
        await RunWhenListening("/bin/sh", Cat(replayPort));
        Assert.Equal(0, await replay.WaitAsync(limit.Token));
        Assert.Equal(File.ReadAllBytes(Path.Combine(fx.Export, "srv/big.bin")), File.ReadAllBytes(copy));
    }

    /// <summary>Runs a client once the listener it is pointed at is up (bounded retries on refused connections).</summary>
    private static async Task<string> RunWhenListening(string program, string[] args)
    {
        for (int i = 0; ; i++)
        {
            var r = await Task.Run(() => Run.Program(program, args));
            if (r.ExitCode == 0 || i >= 50) return r.ShouldSucceed().Stdout;
            await Task.Delay(100);
        }
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}

/// <summary>bench/overlay.sh's loads: every file read whole through a board, and touch copying files up into the board's layer only.</summary>
public class OverlayLoadTests
{
    [Fact]
    public async Task Readall_reads_every_file_and_touch_copies_up_on_a_board_only()
    {
        using var fx = new ExportFixture(bigFileBytes: 300_000);
        var before = BoardOverlayTests.Fingerprint(fx);
        var regular = RegularFiles(fx.Export).Where(f => f != "dev/null").ToArray(); // a char device in files.db
        var files = regular.Select(f => new FileInfo(Path.Combine(fx.Export, f))).ToList();
        await using (var srv = new RunningServer(fx.Export))
        {
            var o = new LoadOptions { Server = new IPEndPoint(IPAddress.Loopback, srv.Port), Aname = fx.Export + "@bench", Uid = 0, Gid = 0, Msize = 8192 + 24 };
            var read = await Workloads.ReadAllAsync(o, CancellationToken.None);
            Assert.Equal(files.Sum(f => f.Length), read.Bytes);
            var touch = await Workloads.TouchAsync(o, every: 1, CancellationToken.None);
            Assert.Equal(files.Count, touch.Bytes);
        }
        Assert.Equal(before, BoardOverlayTests.Fingerprint(fx));
        var layer = ExportServing.BoardPaths.For(fx.Export, "bench").Upper;
        Assert.Equal(regular, RegularFiles(layer));
        Assert.Equal(1_700_000_000, new DateTimeOffset(File.GetLastWriteTimeUtc(Path.Combine(layer, "etc/hostname"))).ToUnixTimeSeconds());
    }

    /// <summary>The regular files under dir (relative, sorted), symlinks not followed.</summary>
    private static string[] RegularFiles(string dir) =>
        Run.Program("find", dir, "-type", "f", "-printf", "%P\n").ShouldSucceed().Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order(StringComparer.Ordinal).ToArray();
}
