using System.Buffers.Binary;
using RootfsExport.NineP.Protocol;

namespace RootfsExport.NineP.Transport;

/// <summary>
/// Byte-stream framing (TCP, unix sockets, pipes): the size prefix delimits frames. Reads go through a
/// read-ahead buffer, so a pipelining client's small requests arrive many per recv() instead of two recv()
/// calls (header, body) each; large payloads (Twrite) bypass it.
/// </summary>
/// <remarks>
/// Reads and writes are plain blocking calls (the server gives each connection a thread of its own), so a
/// request the server answers on its read loop (walk, getattr, clunk: what a serial client like v9fs's lookups
/// or diodls waits for) is read, served and answered without leaving the thread. Async socket calls would park
/// the loop and resume it from the socket engine's thread through the thread pool: two hand-offs per request.
/// Replies to a pipelining client can be queued (<see cref="QueueFrame"/>) while more of its requests are
/// already read ahead: they go out together in one write when the reader has to wait for the stream again.
/// The async methods complete synchronously.
/// </remarks>
public sealed class StreamTransport(Stream stream, string description) : IBlockingNinePTransport, IReadAheadNinePTransport
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

    public ValueTask<int> ReadFrameAsync(Memory<byte> buffer, CancellationToken cancellationToken) => new(ReadFrame(buffer.Span, cancellationToken));

    public int ReadFrame(Span<byte> buffer, CancellationToken cancellationToken)
    {
        if (buffer.Length < P9.HeaderSize) throw new ArgumentException("buffer smaller than a header");
        if (!Fill(buffer[..4], allowEof: true)) return 0;
        uint size = BinaryPrimitives.ReadUInt32LittleEndian(buffer);
        if (size < P9.HeaderSize || size > buffer.Length)
            throw new InvalidDataException($"frame size {size} outside 7..{buffer.Length}");
        Fill(buffer[4..(int)size], allowEof: false);
        return (int)size;
    }

    public ValueTask<uint> PeekFrameSizeAsync(CancellationToken ct) => new(PeekFrameSize(ct));

    /// <summary>
    /// The size field of the next frame (0 at end of stream), read ahead but not consumed: lets the caller size
    /// the buffer for <see cref="ReadFrame"/> by the frame instead of by msize.
    /// </summary>
    public uint PeekFrameSize(CancellationToken ct)
    {
        while (_aheadEnd - _aheadStart < 4)
        {
            int have = _aheadEnd - _aheadStart;
            _ahead.AsSpan(_aheadStart, have).CopyTo(_ahead);
            _aheadStart = 0;
            _aheadEnd = have;
            int read = ReadStream(_ahead.AsSpan(have));
            if (read == 0)
            {
                if (have == 0) return 0;
                throw new EndOfStreamException("connection closed inside a frame");
            }
            _aheadEnd += read;
        }
        return BinaryPrimitives.ReadUInt32LittleEndian(_ahead.AsSpan(_aheadStart));
    }

    private bool Fill(Span<byte> dest, bool allowEof)
    {
        int got = 0;
        while (got < dest.Length)
        {
            if (_aheadEnd > _aheadStart)
            {
                int n = Math.Min(_aheadEnd - _aheadStart, dest.Length - got);
                _ahead.AsSpan(_aheadStart, n).CopyTo(dest[got..]);
                _aheadStart += n;
                got += n;
                continue;
            }
            bool direct = dest.Length - got >= ReadAheadSize;
            int read = ReadStream(direct ? dest[got..] : _ahead);
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
    private int ReadStream(Span<byte> into)
    {
        if (_queuedLength > 0) lock (_writeLock) FlushLocked();
        return stream.Read(into);
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

    public ValueTask WriteFrameAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken)
    {
        WriteFrame(frame.Span);
        return ValueTask.CompletedTask;
    }

    public void WriteFrame(ReadOnlySpan<byte> frame)
    {
        lock (_writeLock)
        {
            if (_queuedLength > 0 && frame.Length <= QueueLimit) { Append(frame); FlushLocked(); }
            else { FlushLocked(); stream.Write(frame); }
        }
    }

    /// <summary>
    /// Queues a reply to be written with the next write, or before the reader waits for the stream. For the
    /// reader's own thread while <see cref="HasBufferedFrame"/>.
    /// </summary>
    public void QueueFrame(ReadOnlySpan<byte> frame)
    {
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
