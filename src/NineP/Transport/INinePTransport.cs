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
/// A transport whose calls block the calling thread (diod's Nptrans read/write ops): the server gives its
/// connection a thread of its own, calls these directly and never awaits, so a request read, served and answered
/// on that thread costs no hand-off.
/// </summary>
public interface IBlockingNinePTransport : INinePTransport
{
    /// <summary>Blocks until one whole T-message is in buffer; returns its length (0: the client is gone).</summary>
    int ReadFrame(Span<byte> buffer, CancellationToken cancellationToken);

    /// <summary>Writes one whole R-message.</summary>
    void WriteFrame(ReadOnlySpan<byte> frame);

    /// <summary>
    /// The client sends its next request only after the reply (usb9pfs): the server then answers every request on
    /// its loop, and nothing is in flight when a Tflush or Tversion arrives.
    /// </summary>
    bool OneRequestAtATime => false;
}

/// <summary>
/// A transport whose host side decides what its client attaches (a usb9pfs board given a board's layer by its USB
/// port or serial): the server attaches <see cref="Aname"/> of what the client asked for.
/// </summary>
public interface IAttachNaming
{
    string Aname(string requested);
}

/// <summary>A transport with one request in flight at a time (usb9pfs: the gadget sends its next T-message only after the reply).</summary>
public interface ISerialNinePTransport : IBlockingNinePTransport
{
    bool IBlockingNinePTransport.OneRequestAtATime => true;
}

/// <summary>
/// A byte stream that reads ahead: the server sizes each request's buffer by the next frame's size instead of
/// by msize, and queues replies while more requests are already buffered, so they leave in one write.
/// </summary>
public interface IReadAheadNinePTransport : INinePTransport
{
    /// <summary>The size field of the next frame (0 at end of stream), read but not consumed.</summary>
    uint PeekFrameSize(CancellationToken cancellationToken);

    /// <summary>Whether a whole frame is already read ahead, so the next read will not wait.</summary>
    bool HasBufferedFrame { get; }

    /// <summary>Queues a reply to go out with the next write or before the next wait for the stream.</summary>
    void QueueFrame(ReadOnlySpan<byte> frame);
}
