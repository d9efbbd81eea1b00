using System.Buffers.Binary;
using RootfsExport.NineP.Protocol;
using RootfsExport.ExportServing;
using RootfsExport.NineP.Server;
using RootfsExport.NineP.Transport;
using Xunit;
using Xunit.Abstractions;

namespace RootfsExport.NineP.Tests;

/// <summary>
/// A million random and mutated frames against a live server over an in-memory transport: no crash, no
/// unexpected exception, still answering, nothing created outside the export, open fds back where they were.
/// </summary>
[Collection(FdCountingCollection.Name)]
public class FuzzTests(ITestOutputHelper output)
{
    private static readonly int Frames = int.TryParse(Environment.GetEnvironmentVariable("NINEP_FUZZ_FRAMES"), out var n) ? n : 1_000_000;

    private sealed class FuzzTransport(Func<byte[]?> next) : INinePTransport
    {
        public long Replies;
        public long Errors;
        public int MaxMessageSize => 1 << 20;
        public string Description => "fuzz";

        public ValueTask<int> ReadFrameAsync(Memory<byte> buffer, CancellationToken ct)
        {
            var f = next();
            while (f is { Length: 0 }) f = next(); // an empty read means end of stream to the server
            if (f is null) return ValueTask.FromResult(0);
            if (f.Length > buffer.Length) f = f[..buffer.Length];
            f.CopyTo(buffer);
            return ValueTask.FromResult(f.Length);
        }

        public ValueTask WriteFrameAsync(ReadOnlyMemory<byte> frame, CancellationToken ct)
        {
            if (Codec.TryDecode(frame, out _, out var m) != DecodeError.None) throw new InvalidDataException("server sent a bad frame");
            Interlocked.Increment(ref Replies);
            if (m is Rlerror) Interlocked.Increment(ref Errors);
            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }

    private static readonly string[] Names = ["etc", "hostname", "dev", "null", "srv", "shared", "bin", "tool", "sh", "escape", "etc-link",
        "..", ".", "", "a", "b", "c/d", "../..", "x\0y", new string('n', 300), "big.bin", "fifo"];

    [Fact]
    public async Task A_million_frames_leave_the_server_standing_and_confined()
    {
        using var fx = new ExportFixture();
        var before = fx.OutsideListing();
        using var server = ExportServer.Open(fx.Export);
        // the server's own fds point into the export; other test classes' (a pooled SQLite connection) do not
        string[] ExportFds() => Directory.GetFiles("/proc/self/fd")
            .Where(f => new FileInfo(f).LinkTarget is { } t && t.StartsWith(fx.Scratch.Path, StringComparison.Ordinal) && !t.Contains(".pseudo_state")).ToArray();
        int fdsBefore = ExportFds().Length;
        var rng = new Random(20240605);
        var samples = CodecTests.Samples.Where(s => s.Type.ToString()[0] == 'T').ToArray();
        int produced = 0;

        Message RandomMessage()
        {
            uint Fid() => (uint)rng.Next(0, 12);
            string Name() => Names[rng.Next(Names.Length)];
            ulong Off() => rng.Next(4) == 0 ? (ulong)rng.NextInt64() << 1 : (ulong)rng.Next(0, 1 << 16);
            return rng.Next(24) switch
            {
                0 => new Tattach(Fid(), P9.NoFid, "root", rng.Next(3) == 0 ? "/etc" : fx.Export, P9.NoUname),
                1 or 2 => new Twalk(Fid(), Fid(), Enumerable.Range(0, rng.Next(0, 4)).Select(_ => Name()).ToArray()),
                3 => new Tlopen(Fid(), (uint)rng.Next()),
                4 => new Tread(Fid(), Off(), (uint)rng.Next(0, 70000)),
                5 => new Twrite(Fid(), Off(), new byte[rng.Next(0, 64)]),
                6 => new Tclunk(Fid()),
                7 => new Tgetattr(Fid(), AttrMask.All),
                8 => new Tsetattr(Fid(), (SetAttrMask)rng.Next(0, 0x200), (uint)rng.Next(), (uint)rng.Next(), (uint)rng.Next(), Off(), Off(), (ulong)rng.Next(), Off(), (ulong)rng.Next()),
                9 => new Tlcreate(Fid(), Name(), (uint)rng.Next(), (uint)rng.Next(), (uint)rng.Next()),
                10 => new Tmkdir(Fid(), Name(), (uint)rng.Next(), 0),
                11 => new Tsymlink(Fid(), Name(), rng.Next(2) == 0 ? "/etc/passwd" : "../..", 0),
                12 => new Tmknod(Fid(), Name(), (uint)rng.Next(), 1, 3, 0),
                13 => new Trenameat(Fid(), Name(), Fid(), Name()),
                14 => new Tunlinkat(Fid(), Name(), rng.Next(2) == 0 ? 0u : 0x200u),
                15 => new Treaddir(Fid(), (ulong)rng.Next(0, 40), (uint)rng.Next(0, 9000)),
                16 => new Txattrwalk(Fid(), Fid(), rng.Next(2) == 0 ? "" : "security.capability"),
                17 => new Txattrcreate(Fid(), "user.f", (ulong)rng.Next(0, 100), (uint)rng.Next(0, 4)),
                18 => new Tlink(Fid(), Fid(), Name()),
                19 => new Trename(Fid(), Fid(), Name()),
                20 => new Treadlink(Fid()),
                21 => new Tremove(Fid()),
                22 => new Tflush((ushort)rng.Next(0, 64)),
                _ => samples[rng.Next(samples.Length)],
            };
        }

        byte[]? Next()
        {
            int n = produced++;
            if (n == 0) return Codec.Encode(P9.NoTag, new Tversion(65536, "9P2000.L"));
            if (n >= Frames) return null;
            if (n % 5000 == 1) return Codec.Encode(1, new Tattach((uint)rng.Next(0, 12), P9.NoFid, "root", fx.Export, P9.NoUname));
            var frame = Codec.Encode((ushort)rng.Next(0, 64), RandomMessage());
            switch (rng.Next(6))
            {
                case 0: // bit flips
                    for (int i = rng.Next(1, 4); i > 0; i--) frame[rng.Next(frame.Length)] ^= (byte)(1 << rng.Next(8));
                    break;
                case 1: // truncate, size field fixed or not
                    frame = frame[..rng.Next(0, frame.Length)];
                    if (frame.Length >= 4 && rng.Next(2) == 0) BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)frame.Length);
                    break;
                case 2: // random garbage
                    frame = new byte[rng.Next(0, 40)];
                    rng.NextBytes(frame);
                    if (frame.Length >= 4 && rng.Next(2) == 0) BinaryPrimitives.WriteUInt32LittleEndian(frame, (uint)frame.Length);
                    break;
            }
            return frame;
        }

        var transport = new FuzzTransport(Next);
        var sw = System.Diagnostics.Stopwatch.StartNew();
        await server.Server.ServeAsync(transport, CancellationToken.None).WaitAsync(TimeSpan.FromMinutes(5));
        output.WriteLine($"{Frames} frames in {sw.Elapsed.TotalSeconds:F1} s; {transport.Replies} replies, {transport.Errors} Rlerror");

        Assert.Equal(0, server.Server.UnexpectedErrors);
        Assert.True(transport.Replies > Frames / 2);

        // still serving: a fresh connection gets Tversion and attach answered
        var replies = new List<Message>();
        var script = new Queue<byte[]>([Codec.Encode(P9.NoTag, new Tversion(8192, "9P2000.L")), Codec.Encode(1, new Tattach(0, P9.NoFid, "root", fx.Export, P9.NoUname))]);
        var probe = new ProbeTransport(script, replies);
        await server.Server.ServeAsync(probe, CancellationToken.None).WaitAsync(TimeSpan.FromSeconds(30));
        Assert.IsType<Rversion>(replies[0]);
        Assert.IsType<Rattach>(replies[1]);

        var fdsAfter = ExportFds();
        foreach (var f in fdsAfter) output.WriteLine($"still open: {f} -> {new FileInfo(f).LinkTarget}");
        Assert.InRange(fdsAfter.Length, 0, fdsBefore);
        Assert.Equal(before, fx.OutsideListing());
        Assert.Equal("outside the export\n", File.ReadAllText(System.IO.Path.Combine(fx.Outside, "secret")));
    }

    private sealed class ProbeTransport(Queue<byte[]> frames, List<Message> replies) : INinePTransport
    {
        private readonly SemaphoreSlim _replied = new(0);
        private bool _first = true;
        public int MaxMessageSize => int.MaxValue;
        public string Description => "probe";

        public async ValueTask<int> ReadFrameAsync(Memory<byte> buffer, CancellationToken ct)
        {
            // one request at a time, like usb9pfs
            if (!_first) await _replied.WaitAsync(ct);
            _first = false;
            if (frames.Count == 0) return 0;
            var f = frames.Dequeue();
            f.CopyTo(buffer);
            return f.Length;
        }

        public ValueTask WriteFrameAsync(ReadOnlyMemory<byte> frame, CancellationToken ct)
        {
            Codec.TryDecode(frame.ToArray(), out _, out var m);
            lock (replies) replies.Add(m!);
            _replied.Release();
            return ValueTask.CompletedTask;
        }

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
