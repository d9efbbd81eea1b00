using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using RootfsExport.NineP.Protocol;

namespace RootfsExport.NineLoad;

/// <summary>
/// The floor a serial client sees: what a 9P server costs that does no work at all. <c>record</c> sits between
/// one client connection and a real server and saves every T-message with the R-message that answered it;
/// <c>replay</c> then answers the same client's same run from that recording, one blocking receive and one send
/// per request, nothing else. A client whose wall time against the replay is W0 cannot run faster than W0
/// against any server on this machine, so (time against diod) / W0 bounds what any server can show.
/// Only for deterministic serial clients (diodls, diodcat): every request must match the recorded one byte for
/// byte apart from its tag, or the replay stops and says which request differed.
/// </summary>
public static class Replay
{
    private const int MaxFrame = 8 * 1024 * 1024;

    /// <summary>Proxies exactly one client connection to the server, strictly one request at a time, and saves the pairs.</summary>
    public static int Record(IPEndPoint listen, IPEndPoint server, string file, TimeSpan limit)
    {
        using var listener = Listen(listen);
        using var client = AcceptWithin(listener, limit);
        using var upstream = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        upstream.Connect(server);
        using var output = new FileStream(file + ".tmp", FileMode.Create, FileAccess.Write);
        var t = new byte[MaxFrame];
        var r = new byte[MaxFrame];
        int pairs = 0;
        while (true)
        {
            int tn = ReadFrame(client, t, "the client");
            if (tn == 0) break;
            upstream.Send(t.AsSpan(0, tn));
            int rn = ReadFrame(upstream, r, "the server");
            if (rn == 0) throw new IOException($"the server closed the connection instead of answering request {pairs}");
            if (Tag(r) != Tag(t)) throw new InvalidDataException($"request {pairs}: reply tag {Tag(r)} for request tag {Tag(t)}");
            client.Send(r.AsSpan(0, rn));
            output.Write(t, 0, tn);
            output.Write(r, 0, rn);
            pairs++;
        }
        output.Close();
        File.Move(file + ".tmp", file, overwrite: true);
        Console.WriteLine($"recorded {pairs} request/reply pairs in {file}");
        return 0;
    }

    /// <summary>Answers `connections` client connections in turn, each from the whole recording.</summary>
    public static int Serve(IPEndPoint listen, string file, int connections, TimeSpan limit)
    {
        var pairs = Load(file);
        using var listener = Listen(listen);
        Console.WriteLine($"replaying {pairs.Count} pairs from {file} on {listener.LocalEndPoint}");
        var t = new byte[MaxFrame];
        for (int c = 0; c < connections; c++)
        {
            var recording = new Recording(pairs);
            using var client = AcceptWithin(listener, limit);
            while (recording.Left > 0)
            {
                int tn = ReadFrame(client, t, "the client");
                if (tn == 0) throw new IOException($"connection {c}: the client left with {recording.Left} of {pairs.Count} recorded requests not sent");
                client.Send(recording.Answer(t.AsSpan(0, tn)) ?? throw new InvalidDataException($"connection {c}: {recording.Unrecorded}"));
            }
            if (ReadFrame(client, t, "the client") != 0) throw new InvalidDataException($"connection {c}: more requests than recorded");
        }
        return 0;
    }

    public static List<(byte[] T, byte[] R)> Load(string file)
    {
        var data = File.ReadAllBytes(file);
        var pairs = new List<(byte[], byte[])>();
        int at = 0;
        byte[] Next()
        {
            if (data.Length - at < 7) throw new InvalidDataException($"{file}: truncated at byte {at}");
            int n = (int)BinaryPrimitives.ReadUInt32LittleEndian(data.AsSpan(at));
            if (n < 7 || n > data.Length - at) throw new InvalidDataException($"{file}: frame size {n} at byte {at} is out of range");
            var frame = data.AsSpan(at, n).ToArray();
            at += n;
            return frame;
        }
        while (at < data.Length) pairs.Add((Next(), Next()));
        if (pairs.Count == 0) throw new InvalidDataException($"{file}: no recorded requests");
        return pairs;
    }

    private static Socket Listen(IPEndPoint at)
    {
        var s = new Socket(at.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        s.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        s.Bind(at);
        s.Listen(4);
        return s;
    }

    private static Socket AcceptWithin(Socket listener, TimeSpan limit)
    {
        if (!listener.Poll(limit, SelectMode.SelectRead)) throw new TimeoutException($"no client connected within {limit.TotalSeconds:0} s");
        var s = listener.Accept();
        s.NoDelay = true;
        return s;
    }

    /// <summary>One whole frame into buffer with blocking receives; 0 when the peer closed between frames.</summary>
    private static int ReadFrame(Socket s, byte[] buffer, string who)
    {
        if (!ReadExactly(s, buffer.AsSpan(0, 4), who, atStart: true)) return 0;
        int n = (int)BinaryPrimitives.ReadUInt32LittleEndian(buffer);
        if (n < 7 || n > buffer.Length) throw new InvalidDataException($"{who} sent a frame of {n} bytes");
        ReadExactly(s, buffer.AsSpan(4, n - 4), who, atStart: false);
        return n;
    }

    private static bool ReadExactly(Socket s, Span<byte> into, string who, bool atStart)
    {
        int got = 0;
        while (got < into.Length)
        {
            int k;
            try { k = s.Receive(into[got..]); }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset && atStart && got == 0)
            {
                return false; // a guest that powers off resets its connection: an end like a close
            }
            if (k == 0)
            {
                if (atStart && got == 0) return false;
                throw new IOException($"{who} closed the connection in the middle of a frame");
            }
            got += k;
        }
        return true;
    }

    private static ushort Tag(ReadOnlySpan<byte> frame) => BinaryPrimitives.ReadUInt16LittleEndian(frame[5..]);
}

/// <summary>
/// The replies of a recorded run, found by their request: the same bytes apart from the tag get the recorded
/// replies to them in their recorded order. Matching by content rather than position lets a client reorder
/// requests whose order depends on timing (readahead) and still be answered exactly as ours answered it.
/// </summary>
public sealed class Recording
{
    private readonly Dictionary<byte[], Queue<byte[]>> _replies = new(FrameComparer.Instance);
    private readonly Dictionary<byte[], Queue<byte[]>>.AlternateLookup<ReadOnlySpan<byte>> _lookup;

    public Recording(IEnumerable<(byte[] T, byte[] R)> pairs)
    {
        foreach (var (t, r) in pairs)
        {
            var key = (byte[])t.Clone();
            key[5] = key[6] = 0;
            if (!_replies.TryGetValue(key, out var q)) _replies[key] = q = new Queue<byte[]>();
            q.Enqueue((byte[])r.Clone());
            Left++;
        }
        _lookup = _replies.GetAlternateLookup<ReadOnlySpan<byte>>();
    }

    /// <summary>Recorded requests not asked for yet.</summary>
    public int Left { get; private set; }

    /// <summary>What the last request that had no recorded reply was.</summary>
    public string Unrecorded { get; private set; } = "";

    /// <summary>The recorded reply to request (whose tag bytes this zeroes), carrying its tag; null when it was never recorded.</summary>
    public byte[]? Answer(Span<byte> request)
    {
        byte lo = request[5], hi = request[6];
        request[5] = request[6] = 0;
        if (!_lookup.TryGetValue(request, out var q) || q.Count == 0)
        {
            Unrecorded = $"a {(MessageType)request[4]} of {request.Length} bytes that the recording has no (more) reply for: the client is not deterministic";
            return null;
        }
        var reply = q.Dequeue();
        Left--;
        reply[5] = lo;
        reply[6] = hi;
        return reply;
    }

    private sealed class FrameComparer : IEqualityComparer<byte[]>, IAlternateEqualityComparer<ReadOnlySpan<byte>, byte[]>
    {
        public static readonly FrameComparer Instance = new();
        public bool Equals(byte[]? a, byte[]? b) => a.AsSpan().SequenceEqual(b);
        public int GetHashCode(byte[] frame) => GetHashCode((ReadOnlySpan<byte>)frame);
        public bool Equals(ReadOnlySpan<byte> span, byte[] frame) => span.SequenceEqual(frame);
        public int GetHashCode(ReadOnlySpan<byte> span)
        {
            var h = new HashCode();
            h.AddBytes(span);
            return h.ToHashCode();
        }
        public byte[] Create(ReadOnlySpan<byte> span) => span.ToArray();
    }
}
