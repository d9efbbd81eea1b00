using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using RootfsExport.NineP.Protocol;

namespace RootfsExport.NineP.Transport;

/// <summary>
/// Carries whole 9P frames between one client and the server: TCP and unix sockets here, the usb9pfs
/// bulk endpoints in the USB bridge. The server reads from one loop only and serializes its writes, so an
/// implementation needs neither concurrent reads nor concurrent writes.
/// </summary>
public interface INinePTransport : IAsyncDisposable
{
    /// <summary>
    /// Reads one whole T-message (size[4] included) into buffer and returns its length; 0 at end of stream.
    /// A frame larger than buffer is a protocol error: throw <see cref="InvalidDataException"/>.
    /// </summary>
    ValueTask<int> ReadFrameAsync(Memory<byte> buffer, CancellationToken cancellationToken);

    /// <summary>Writes one whole R-message as one unit (one USB transfer, one socket write).</summary>
    ValueTask WriteFrameAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken);

    /// <summary>The largest message this transport can carry (usb9pfs: the gadget's buflen); caps msize.</summary>
    int MaxMessageSize { get; }

    /// <summary>A name for logs, e.g. the peer address.</summary>
    string Description { get; }
}

/// <summary>
/// A transport with one request in flight at a time (usb9pfs: the gadget sends its next T-message only after
/// the reply), served by <see cref="Server.NinePServer.ServeSerialAsync"/> with blocking calls on one thread.
/// </summary>
public interface ISerialNinePTransport : INinePTransport
{
    /// <summary>Blocks until one whole T-message is in buffer; returns its length (0: the client is gone).</summary>
    int ReadFrame(Span<byte> buffer, CancellationToken cancellationToken);

    /// <summary>Writes one whole R-message.</summary>
    void WriteFrame(ReadOnlySpan<byte> frame);
}

/// <summary>
/// Byte-stream framing (TCP, unix sockets, pipes): the size prefix delimits frames. Reads go through a
/// read-ahead buffer, so a pipelining client's small requests arrive many per recv() instead of two recv()
/// calls (header, body) each; large payloads (Twrite) bypass it.
/// </summary>
/// <remarks>
/// With <c>blockingIo</c> (the server's TCP and unix-socket connections, each on a thread of its own) reads and
/// writes are plain blocking calls, so the async methods complete synchronously and a request the server
/// answers on its read loop (walk, getattr, clunk: what a serial client like v9fs's lookups or diodls waits
/// for) is read, served and answered without leaving the thread. Async socket calls would park the loop and
/// resume it from the socket engine's thread through the thread pool: two hand-offs per request.
/// Replies to a pipelining client can be queued (<see cref="QueueFrame"/>) while more of its requests are
/// already read ahead: they go out together in one write when the reader has to wait for the stream again.
/// </remarks>
public sealed class StreamTransport(Stream stream, string description, bool blockingIo = false) : INinePTransport
{
    private const int ReadAheadSize = 64 * 1024;
    private const int QueueLimit = 64 * 1024;
    private readonly byte[] _ahead = new byte[ReadAheadSize];
    private int _aheadStart, _aheadEnd;
    private readonly object _writeLock = new();
    private byte[] _queued = [];
    private int _queuedLength;

    public int MaxMessageSize => int.MaxValue;
    public string Description => description;

    /// <summary>Reads and writes block the calling thread (and so complete synchronously).</summary>
    public bool BlockingIo => blockingIo;

    public async ValueTask<int> ReadFrameAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (buffer.Length < P9.HeaderSize) throw new ArgumentException("buffer smaller than a header");
        if (!await FillAsync(buffer[..4], allowEof: true, cancellationToken)) return 0;
        uint size = BinaryPrimitives.ReadUInt32LittleEndian(buffer.Span);
        if (size < P9.HeaderSize || size > buffer.Length)
            throw new InvalidDataException($"frame size {size} outside 7..{buffer.Length}");
        await FillAsync(buffer[4..(int)size], allowEof: false, cancellationToken);
        return (int)size;
    }

    /// <summary>
    /// The size field of the next frame (0 at end of stream), read ahead but not consumed: lets the caller size
    /// the buffer for <see cref="ReadFrameAsync"/> by the frame instead of by msize.
    /// </summary>
    public async ValueTask<uint> PeekFrameSizeAsync(CancellationToken ct)
    {
        while (_aheadEnd - _aheadStart < 4)
        {
            int have = _aheadEnd - _aheadStart;
            _ahead.AsSpan(_aheadStart, have).CopyTo(_ahead);
            _aheadStart = 0;
            _aheadEnd = have;
            int read = await ReadStreamAsync(_ahead.AsMemory(have), ct);
            if (read == 0)
            {
                if (have == 0) return 0;
                throw new EndOfStreamException("connection closed inside a frame");
            }
            _aheadEnd += read;
        }
        return BinaryPrimitives.ReadUInt32LittleEndian(_ahead.AsSpan(_aheadStart));
    }

    private async ValueTask<bool> FillAsync(Memory<byte> dest, bool allowEof, CancellationToken ct)
    {
        int got = 0;
        while (got < dest.Length)
        {
            if (_aheadEnd > _aheadStart)
            {
                int n = Math.Min(_aheadEnd - _aheadStart, dest.Length - got);
                _ahead.AsMemory(_aheadStart, n).CopyTo(dest[got..]);
                _aheadStart += n;
                got += n;
                continue;
            }
            bool direct = dest.Length - got >= ReadAheadSize;
            int read = await ReadStreamAsync(direct ? dest[got..] : _ahead, ct);
            if (read == 0)
            {
                if (got == 0 && allowEof) return false;
                throw new EndOfStreamException("connection closed inside a frame");
            }
            if (direct) got += read;
            else { _aheadStart = 0; _aheadEnd = read; }
        }
        return true;
    }

    /// <summary>One read from the stream, after the queued replies: the client may be waiting for those first.</summary>
    private async ValueTask<int> ReadStreamAsync(Memory<byte> into, CancellationToken ct)
    {
        if (_queuedLength > 0) lock (_writeLock) FlushLocked();
        return blockingIo ? stream.Read(into.Span) : await stream.ReadAsync(into, ct);
    }

    /// <summary>Whether a whole frame is already read ahead, so the next read will not wait for the stream.</summary>
    public bool HasBufferedFrame
    {
        get
        {
            int have = _aheadEnd - _aheadStart;
            return have >= 4 && BinaryPrimitives.ReadUInt32LittleEndian(_ahead.AsSpan(_aheadStart)) <= (uint)have;
        }
    }

    public async ValueTask WriteFrameAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken)
    {
        if (blockingIo)
            lock (_writeLock)
            {
                if (_queuedLength > 0 && frame.Length <= QueueLimit) { Append(frame.Span); FlushLocked(); }
                else { FlushLocked(); stream.Write(frame.Span); }
            }
        else await stream.WriteAsync(frame, cancellationToken);
    }

    /// <summary>
    /// Queues a reply to be written with the next write, or before the reader waits for the stream (blocking mode
    /// only; otherwise it is written now). For the reader's own thread while <see cref="HasBufferedFrame"/>.
    /// </summary>
    public void QueueFrame(ReadOnlySpan<byte> frame)
    {
        if (!blockingIo)
        {
            stream.Write(frame);
            return;
        }
        lock (_writeLock)
        {
            Append(frame);
            if (_queuedLength >= QueueLimit) FlushLocked();
        }
    }

    private void Append(ReadOnlySpan<byte> frame)
    {
        if (_queued.Length - _queuedLength < frame.Length)
            Array.Resize(ref _queued, Math.Max(_queued.Length * 2, Math.Max(_queuedLength + frame.Length, 4096)));
        frame.CopyTo(_queued.AsSpan(_queuedLength));
        _queuedLength += frame.Length;
    }

    private void FlushLocked()
    {
        if (_queuedLength == 0) return;
        int n = _queuedLength;
        _queuedLength = 0; // even if the write throws: the connection is over then
        stream.Write(_queued, 0, n);
        if (_queued.Length > 4 * QueueLimit) _queued = [];
    }

    public ValueTask DisposeAsync() => stream.DisposeAsync();
}

/// <summary>Where the server listens: "tcp:HOST:PORT" or "unix:/path".</summary>
public sealed record ListenAddress(string Scheme, string Host, int Port, string? SocketPath)
{
    public static ListenAddress Parse(string spec)
    {
        if (spec.StartsWith("unix:", StringComparison.Ordinal))
        {
            var path = spec[5..];
            if (path.Length == 0) throw new UserFacingException("unix: needs a socket path, e.g. unix:/run/user/1000/rootfs.9p");
            return new ListenAddress("unix", "", 0, Path.GetFullPath(path));
        }
        var rest = spec.StartsWith("tcp:", StringComparison.Ordinal) ? spec[4..] : spec;
        int colon = rest.LastIndexOf(':');
        string host = colon < 0 ? "127.0.0.1" : rest[..colon];
        var portText = colon < 0 ? rest : rest[(colon + 1)..];
        if (host.StartsWith('[') && host.EndsWith(']')) host = host[1..^1];
        if (host.Length == 0) host = "127.0.0.1";
        if (!int.TryParse(portText, out var port) || port < 0 || port > 65535)
            throw new UserFacingException($"bad 9P listen address '{spec}': expected tcp:HOST:PORT or unix:/path");
        return new ListenAddress("tcp", host, port, null);
    }

    public EndPoint ToEndPoint() => Scheme == "unix"
        ? new UnixDomainSocketEndPoint(SocketPath!)
        : new IPEndPoint(System.Net.IPAddress.Parse(Host), Port);

    public override string ToString() => Scheme == "unix" ? $"unix:{SocketPath}" : $"tcp:{Host}:{Port}";
}
