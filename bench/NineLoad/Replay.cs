using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using RootfsExport.NineP.Protocol;
using RootfsExport.NineP.Transport;

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
        var fromClient = Frames(client, "the client");
        var fromServer = Frames(upstream, "the server");
        using var output = new FileStream(file + ".tmp", FileMode.Create, FileAccess.Write);
        var t = new byte[MaxFrame];
        var r = new byte[MaxFrame];
        int pairs = 0;
        while (true)
        {
            int tn = ReadFrame(fromClient, t);
            if (tn == 0) break;
            upstream.Send(t.AsSpan(0, tn));
            int rn = ReadFrame(fromServer, r);
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
        // built before listening: a client that connects must not wait for (or be timed with) the file images
        var run = new Recording(pairs);
        using var listener = Listen(listen);
        Console.WriteLine($"replaying {pairs.Count} pairs from {file} on {listener.LocalEndPoint}");
        var t = new byte[MaxFrame];
        for (int c = 0; c < connections; c++)
        {
            var recording = c == 0 ? run : run.Again();
            using var client = AcceptWithin(listener, limit);
            var fromClient = Frames(client, "the client");
            while (recording.Left > 0)
            {
                int tn = ReadFrame(fromClient, t);
                if (tn == 0) throw new IOException($"connection {c}: the client left with {recording.Left} recorded requests not sent");
                if (!recording.TryAnswer(t.AsMemory(0, tn), out var reply)) throw new InvalidDataException($"connection {c}: {recording.Unrecorded}");
                client.Send(reply);
            }
            if (ReadFrame(fromClient, t) != 0) throw new InvalidDataException($"connection {c}: more requests than recorded");
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

    /// <summary>Frames from a socket through the server's own framing, with blocking reads (no read-ahead hop through the pool).</summary>
    private static StreamTransport Frames(Socket s, string who) => new(new NetworkStream(s, ownsSocket: false), who);

    /// <summary>One whole frame into buffer; 0 when the peer closed or reset the connection.</summary>
    private static int ReadFrame(StreamTransport from, byte[] buffer)
    {
        try { return from.ReadFrameAsync(buffer, CancellationToken.None).GetAwaiter().GetResult(); }
        catch (IOException e) when (e.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
        {
            // a guest that powers off resets its connection: an end like a close. Only whole frames were
            // forwarded and recorded, so a frame cut short by it is simply not part of the run.
            return 0;
        }
        catch (InvalidDataException e) { throw new InvalidDataException($"{from.Description}: {e.Message}", e); }
    }

    private static ushort Tag(ReadOnlySpan<byte> frame) => BinaryPrimitives.ReadUInt16LittleEndian(frame[5..]);
}

/// <summary>
/// The replies of a recorded run, found by their request: the same bytes apart from the tag get the recorded
/// replies to them in their recorded order. Matching by content rather than position lets a client reorder
/// requests whose order depends on timing and still be answered exactly as ours answered it.
/// Treads are the exception: a client's readahead asks for different offsets and counts from run to run, so
/// the recorded Rreads are put together into an image of each file that was read (named by the walk that
/// reached it), and any Tread is answered from that image by offset and count, as a server with the file in
/// its memory would. Treads do not count towards <see cref="Left"/>.
/// </summary>
public sealed class Recording
{
    private readonly Dictionary<byte[], Queue<byte[]>> _replies;
    private readonly Dictionary<byte[], Queue<byte[]>>.AlternateLookup<ReadOnlySpan<byte>> _lookup;
    private readonly Dictionary<string, FileImage> _images = new();
    private readonly FidNames _fids = new();
    private byte[] _readReply = [];

    private readonly List<(byte[] T, byte[] R)> _others = new();

    public Recording(IEnumerable<(byte[] T, byte[] R)> pairs)
    {
        var recordedFids = new FidNames();
        foreach (var (t, r) in pairs)
        {
            if (t[4] == (byte)MessageType.Tread)
            {
                if (Codec.TryDecode(t, out _, out var m) != DecodeError.None || m is not Tread read)
                    throw new InvalidDataException($"a recorded Tread of {t.Length} bytes does not decode");
                if (Codec.TryDecode(r, out _, out var reply) != DecodeError.None) throw new InvalidDataException("a recorded Rread does not decode");
                if (reply is not Rread data) continue; // an error: a replayed read of that range gets data or nothing
                var name = recordedFids.Of(read.Fid) ?? throw new InvalidDataException($"a recorded Tread on fid {read.Fid}, which no recorded walk bound");
                if (!_images.TryGetValue(name, out var image)) _images[name] = image = new FileImage();
                image.Put(read.Offset, data.Data.Span);
                continue;
            }
            recordedFids.Observe(t, r);
            _others.Add((t, r));
        }
        _lookup = Queue(out _replies);
    }

    // The same run for another connection: its own queues and fids, the file images (built once, never changed) shared.
    private Recording(Recording run)
    {
        _images = run._images;
        _others = run._others;
        _lookup = Queue(out _replies);
    }

    /// <summary>A fresh copy for the next connection, without building the file images again.</summary>
    public Recording Again() => new(this);

    private Dictionary<byte[], Queue<byte[]>>.AlternateLookup<ReadOnlySpan<byte>> Queue(out Dictionary<byte[], Queue<byte[]>> replies)
    {
        replies = new Dictionary<byte[], Queue<byte[]>>(FrameComparer.Instance);
        foreach (var (t, r) in _others)
        {
            var key = (byte[])t.Clone();
            key[5] = key[6] = 0;
            if (!replies.TryGetValue(key, out var q)) replies[key] = q = new Queue<byte[]>();
            q.Enqueue((byte[])r.Clone());
            Left++;
        }
        return replies.GetAlternateLookup<ReadOnlySpan<byte>>();
    }

    /// <summary>Recorded requests (Treads aside) not asked for yet.</summary>
    public int Left { get; private set; }

    /// <summary>What the last request that had no recorded reply was.</summary>
    public string Unrecorded { get; private set; } = "";

    /// <summary>
    /// The reply to request, carrying its tag: the recorded one, or for a Tread the bytes of the file's image.
    /// False when the recording has no (more) reply for it. Zeroes the request's tag bytes; the reply is valid
    /// until the next call.
    /// </summary>
    public bool TryAnswer(Memory<byte> request, out ReadOnlySpan<byte> reply)
    {
        var span = request.Span;
        byte lo = span[5], hi = span[6];
        if (span[4] == (byte)MessageType.Tread) return TryRead(request, out reply);
        span[5] = span[6] = 0;
        if (!_lookup.TryGetValue(span, out var q) || q.Count == 0)
        {
            Unrecorded = $"a {(MessageType)span[4]} of {span.Length} bytes that the recording has no (more) reply for: the client is not deterministic";
            reply = default;
            return false;
        }
        var recorded = q.Dequeue();
        Left--;
        _fids.Observe(request, recorded);
        recorded[5] = lo;
        recorded[6] = hi;
        reply = recorded;
        return true;
    }

    private bool TryRead(ReadOnlyMemory<byte> request, out ReadOnlySpan<byte> reply)
    {
        reply = default;
        if (Codec.TryDecode(request, out var tag, out var m) != DecodeError.None || m is not Tread read)
        {
            Unrecorded = $"a Tread of {request.Length} bytes that does not decode";
            return false;
        }
        if (_fids.Of(read.Fid) is not { } name || !_images.TryGetValue(name, out var image))
        {
            Unrecorded = $"a Tread on fid {read.Fid} ({_fids.Of(read.Fid) ?? "not bound"}), a file the recording never read";
            return false;
        }
        var rread = new Rread(image.Slice(read.Offset, read.Count));
        int size = Codec.Measure(rread);
        if (_readReply.Length < size) _readReply = new byte[Math.Max(size, 2 * _readReply.Length)];
        Codec.Encode(_readReply, tag, rread);
        reply = _readReply.AsSpan(0, size);
        return true;
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

/// <summary>
/// What each fid of a connection names, as a path of walked names from the attach: enough to tell which file a
/// Tread is on. Learnt from the requests that bind, move and drop fids and the replies that confirmed them.
/// </summary>
internal sealed class FidNames
{
    private readonly Dictionary<uint, string> _names = new();

    public string? Of(uint fid) => _names.GetValueOrDefault(fid);

    public void Observe(ReadOnlyMemory<byte> request, ReadOnlySpan<byte> reply)
    {
        var type = (MessageType)request.Span[4];
        if (type is not (MessageType.Tattach or MessageType.Twalk or MessageType.Txattrwalk or MessageType.Tlcreate
            or MessageType.Tclunk or MessageType.Tremove)) return;
        if (Codec.TryDecode(request, out _, out var m) != DecodeError.None) return;
        bool ok = reply.Length > 4 && reply[4] == (byte)type + 1;
        switch (m)
        {
            case Tattach a when ok: _names[a.Fid] = a.Aname; break;
            case Twalk w when ok && WalkedAll(reply, w.Names.Count):
                _names[w.NewFid] = w.Names.Aggregate(Of(w.Fid) ?? "?", (path, n) => path + "/" + n); break;
            case Txattrwalk x when ok: _names[x.NewFid] = (Of(x.Fid) ?? "?") + "@xattr:" + x.Name; break;
            case Tlcreate c when ok: _names[c.Fid] = (Of(c.Fid) ?? "?") + "/" + c.Name; break;
            case Tclunk c: _names.Remove(c.Fid); break;
            case Tremove r: _names.Remove(r.Fid); break;
        }
    }

    // An Rwalk with fewer qids than names walked part of the way and bound nothing.
    private static bool WalkedAll(ReadOnlySpan<byte> rwalk, int names) =>
        rwalk.Length >= P9.HeaderSize + 2 && BinaryPrimitives.ReadUInt16LittleEndian(rwalk[P9.HeaderSize..]) == names;
}

/// <summary>A file's bytes as far as recorded Rreads showed them.</summary>
internal sealed class FileImage
{
    private byte[] _bytes = [];
    private int _length;

    public void Put(ulong offset, ReadOnlySpan<byte> data)
    {
        if (offset + (ulong)data.Length > int.MaxValue) throw new InvalidDataException($"a recorded read ends beyond 2 GiB (offset {offset})");
        int end = (int)offset + data.Length;
        if (end > _bytes.Length) Array.Resize(ref _bytes, Math.Max(end, Math.Min(int.MaxValue, 2 * _bytes.Length)));
        data.CopyTo(_bytes.AsSpan((int)offset));
        _length = Math.Max(_length, end);
    }

    public ReadOnlyMemory<byte> Slice(ulong offset, uint count) =>
        offset >= (ulong)_length ? ReadOnlyMemory<byte>.Empty : _bytes.AsMemory((int)offset, (int)Math.Min(count, (ulong)_length - offset));
}
