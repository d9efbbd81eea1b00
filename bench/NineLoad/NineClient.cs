using System.Buffers;
using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using RootfsExport.NineP.Protocol;

namespace RootfsExport.NineLoad;

/// <summary>A 9P reply that was an Rlerror: carries the errno.</summary>
public sealed class NineError(uint errno, string what) : Exception($"{what}: errno {errno}")
{
    public uint Errno { get; } = errno;
}

/// <summary>
/// One 9P2000.L connection that pipelines: up to <c>depth</c> requests in flight, each with its own tag,
/// matched to replies by one reader loop. Replies arrive in pooled buffers; the caller decodes what it needs
/// (metadata replies through the codec, Rread only by its count so 1 MiB reads are not copied).
/// A watchdog aborts the connection when requests are pending and nothing came back for <c>replyTimeout</c>.
/// </summary>
public sealed class NineClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly BufferedStream _in;
    private readonly TaskCompletionSource<Reply>?[] _pending;
    private readonly ConcurrentStack<ushort> _freeTags = new();
    private readonly SemaphoreSlim _window;
    private readonly SemaphoreSlim _writeGate = new(1, 1);
    private readonly Task _reader;
    private readonly Timer _watchdog;
    private readonly TimeSpan _replyTimeout;
    private long _lastReplyTicks = Environment.TickCount64;
    private int _inFlight;
    private int _nextFid;
    private volatile Exception? _failure;

    /// <summary>Requests sent so far (every T-message counts one).</summary>
    public long Requests;

    public uint Msize { get; private set; }

    private NineClient(Socket socket, int depth, TimeSpan replyTimeout)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _in = new BufferedStream(_stream, 256 * 1024);
        _pending = new TaskCompletionSource<Reply>?[depth];
        for (int t = depth - 1; t >= 0; t--) _freeTags.Push((ushort)t);
        _window = new SemaphoreSlim(depth, depth);
        _replyTimeout = replyTimeout;
        _reader = Task.Run(ReadLoop);
        _watchdog = new Timer(_ => CheckStalled(), null, 1000, 1000);
    }

    public static async Task<NineClient> ConnectAsync(IPEndPoint server, int depth, TimeSpan replyTimeout, CancellationToken ct)
    {
        if (depth is < 1 or > 0xfffe) throw new ArgumentOutOfRangeException(nameof(depth));
        var s = new Socket(server.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        connectTimeout.CancelAfter(replyTimeout);
        try { await s.ConnectAsync(server, connectTimeout.Token); }
        catch { s.Dispose(); throw; }
        return new NineClient(s, depth, replyTimeout);
    }

    /// <summary>A fresh fid number for this connection.</summary>
    public uint NewFid() => (uint)Interlocked.Increment(ref _nextFid);

    private void CheckStalled()
    {
        if (Volatile.Read(ref _inFlight) == 0 || _failure != null) return;
        if (Environment.TickCount64 - Interlocked.Read(ref _lastReplyTicks) < _replyTimeout.TotalMilliseconds) return;
        Fail(new TimeoutException($"no reply for {_replyTimeout.TotalSeconds:0} s with {_inFlight} requests in flight"));
        _socket.Dispose();
    }

    private void Fail(Exception e)
    {
        _failure ??= e;
        foreach (var p in _pending) p?.TrySetException(_failure);
    }

    private async Task ReadLoop()
    {
        var header = new byte[4];
        try
        {
            while (true)
            {
                await _in.ReadExactlyAsync(header);
                int size = (int)BinaryPrimitives.ReadUInt32LittleEndian(header);
                if (size < P9.HeaderSize || (Msize != 0 && size > Msize)) throw new InvalidDataException($"reply frame size {size}");
                var buffer = ArrayPool<byte>.Shared.Rent(size);
                header.CopyTo(buffer, 0);
                await _in.ReadExactlyAsync(buffer.AsMemory(4, size - 4));
                Interlocked.Exchange(ref _lastReplyTicks, Environment.TickCount64);
                ushort tag = BinaryPrimitives.ReadUInt16LittleEndian(buffer.AsSpan(5));
                int slot = tag == P9.NoTag ? 0 : tag;
                var tcs = slot < _pending.Length ? Interlocked.Exchange(ref _pending[slot], null) : null;
                if (tcs is null) { ArrayPool<byte>.Shared.Return(buffer); throw new InvalidDataException($"reply for unknown tag {tag}"); }
                tcs.SetResult(new Reply(buffer, size));
            }
        }
        catch (Exception e)
        {
            Fail(e is EndOfStreamException ? new IOException("server closed the connection", e) : e);
        }
    }

    /// <summary>Sends one request and waits for its reply (the caller disposes the reply).</summary>
    public async Task<Reply> RpcAsync(Message request)
    {
        await _window.WaitAsync();
        ushort tag = 0;
        bool haveTag = false;
        try
        {
            if (_failure != null) throw new IOException("connection failed", _failure);
            if (request is Tversion) tag = P9.NoTag;
            else { _freeTags.TryPop(out tag); haveTag = true; }
            var tcs = new TaskCompletionSource<Reply>(TaskCreationOptions.RunContinuationsAsynchronously);
            _pending[tag == P9.NoTag ? 0 : tag] = tcs;
            int len = Codec.Measure(request);
            var frame = ArrayPool<byte>.Shared.Rent(len);
            try
            {
                Codec.Encode(frame, tag, request);
                Interlocked.Increment(ref _inFlight);
                Interlocked.Increment(ref Requests);
                if (Volatile.Read(ref _inFlight) == 1) Interlocked.Exchange(ref _lastReplyTicks, Environment.TickCount64);
                await _writeGate.WaitAsync();
                try { await _stream.WriteAsync(frame.AsMemory(0, len)); }
                finally { _writeGate.Release(); }
            }
            finally { ArrayPool<byte>.Shared.Return(frame); }
            if (_failure != null) tcs.TrySetException(_failure);
            try { return await tcs.Task; }
            finally { Interlocked.Decrement(ref _inFlight); }
        }
        finally
        {
            if (haveTag) _freeTags.Push(tag);
            _window.Release();
        }
    }

    /// <summary>Sends a request and decodes a reply of type T; Rlerror becomes <see cref="NineError"/>.</summary>
    public async Task<T> CallAsync<T>(Message request) where T : Message
    {
        using var reply = await RpcAsync(request);
        return reply.As<T>(request);
    }

    /// <summary>Sends a request that must succeed; an Rlerror becomes <see cref="NineError"/>.</summary>
    public async Task CheckAsync(Message request)
    {
        using var reply = await RpcAsync(request);
        reply.ThrowIfError(request);
    }

    /// <summary>Tread whose data is not copied out: returns the byte count.</summary>
    public async Task<int> ReadAsync(uint fid, ulong offset, uint count)
    {
        var request = new Tread(fid, offset, count);
        using var reply = await RpcAsync(request);
        reply.ThrowIfError(request);
        if (reply.Type != MessageType.Rread || reply.Length < P9.ReadReplyHeaderSize) throw new InvalidDataException($"expected Rread, got {reply.Type}");
        int n = (int)BinaryPrimitives.ReadUInt32LittleEndian(reply.Frame.AsSpan(7));
        if (n > reply.Length - P9.ReadReplyHeaderSize || n > count) throw new InvalidDataException($"Rread count {n}");
        return n;
    }

    /// <summary>All entries of an opened directory fid (Treaddir from cookie to cookie until an empty reply).</summary>
    public async Task<List<DirEntry>> ReadDirAsync(uint fid)
    {
        var all = new List<DirEntry>();
        ulong offset = 0;
        while (true)
        {
            var request = new Treaddir(fid, offset, Msize - P9.IoHeaderSize);
            using var reply = await RpcAsync(request);
            reply.ThrowIfError(request);
            int n = (int)BinaryPrimitives.ReadUInt32LittleEndian(reply.Frame.AsSpan(7));
            if (n > reply.Length - P9.ReadReplyHeaderSize) throw new InvalidDataException($"Rreaddir count {n}");
            var entries = DirEntryWriter.Parse(reply.Frame.AsSpan(P9.ReadReplyHeaderSize, n)) ?? throw new InvalidDataException("bad readdir payload");
            if (entries.Count == 0) return all;
            all.AddRange(entries);
            offset = entries[^1].Offset;
        }
    }

    /// <summary>
    /// Tversion, then Tauth (a server that needs no authentication answers Rlerror, as diod does), then
    /// Tattach by number (n_uname = uid) with aname = the export path: what diod's own clients send.
    /// </summary>
    public async Task<Qid> MountAsync(string aname, uint uid, uint msize, uint rootFid)
    {
        var v = await CallAsync<Rversion>(new Tversion(msize, P9.Version));
        if (v.Version != P9.Version) throw new InvalidDataException($"server speaks {v.Version}, not {P9.Version}");
        Msize = v.Msize;
        using (var auth = await RpcAsync(new Tauth(NewFid(), "", aname, uid)))
            if (auth.Type != MessageType.Rlerror) throw new InvalidDataException("the server wants authentication; this client has none");
        return (await CallAsync<Rattach>(new Tattach(rootFid, P9.NoFid, "", aname, uid))).Qid;
    }

    public async ValueTask DisposeAsync()
    {
        await _watchdog.DisposeAsync();
        try { _socket.Shutdown(SocketShutdown.Both); } catch (Exception e) when (e is SocketException or ObjectDisposedException) { }
        await _stream.DisposeAsync();
        try { await _reader; } catch { }
    }
}

/// <summary>A reply frame in a pooled buffer; dispose returns the buffer.</summary>
public readonly struct Reply(byte[] frame, int length) : IDisposable
{
    public byte[] Frame => frame;
    public int Length => length;
    public MessageType Type => (MessageType)frame[4];

    /// <summary>The errno of an Rlerror, null for any other reply.</summary>
    public uint? Errno => Type == MessageType.Rlerror ? BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(7)) : null;

    public void ThrowIfError(Message request)
    {
        if (Type == MessageType.Rlerror) throw new NineError(BinaryPrimitives.ReadUInt32LittleEndian(frame.AsSpan(7)), request.Type.ToString());
        if ((byte)Type != (byte)request.Type + 1) throw new InvalidDataException($"{request.Type} answered with {Type}");
    }

    public T As<T>(Message request) where T : Message
    {
        ThrowIfError(request);
        var err = Codec.TryDecode(frame.AsMemory(0, length), out _, out var m);
        if (err != DecodeError.None) throw new InvalidDataException($"undecodable reply to {request.Type}: {err}");
        return m as T ?? throw new InvalidDataException($"expected {typeof(T).Name}, got {m!.Type}");
    }

    public void Dispose() => ArrayPool<byte>.Shared.Return(frame);
}
