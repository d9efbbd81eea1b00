using System.Buffers.Binary;
using RootfsExport.NineP.Transport;
using RootfsExport.Usb9pBridge.Native;

namespace RootfsExport.Usb9pBridge;

/// <summary>
/// 9P frames over the usb9pfs bulk endpoints (docs/USB9PFS.md, protocol rules):
/// one T-message is one IN transfer, followed by a zero-length packet when its size is a multiple of the IN
/// wMaxPacketSize, and that ZLP must be taken before the reply is written (the gadget queues its OUT request
/// only once the IN request completed); one R-message is one OUT transfer, ended by a ZLP under the same rule.
/// The gadget keeps one request in flight, so reads and writes simply alternate.
/// </summary>
public sealed class UsbgTransport(IBulkEndpoints pipe, IDisposable? owner = null) : ISerialNinePTransport
{
    /// <summary>How long an idle read waits before it looks at the cancellation token again.</summary>
    public const uint PollMs = 250;

    /// <summary>A transfer that stops in the middle of a message for this long means the board is wedged or gone.</summary>
    public static readonly TimeSpan StallLimit = TimeSpan.FromSeconds(30);

    /// <summary>A reply the gadget has not taken in this time is a protocol failure: the link is dropped and re-opened.</summary>
    public const uint WriteTimeoutMs = 10_000;

    /// <summary>
    /// The first read of a message: a multiple of every bulk packet size (64, 512, 1024), large enough for most
    /// T-messages, small enough that the kernel does not stage a msize-sized buffer for each Tgetattr.
    /// </summary>
    public const int FirstReadLength = 4096;

    private readonly byte[] _zlp = new byte[Math.Max(pipe.MaxPacketSizeIn, 64)];
    private long _requests, _bytesIn, _bytesOut;

    /// <summary>The board's buflen caps msize on its side already; this is only our ceiling (Linux's own 4 MiB).</summary>
    public int MaxMessageSize => 4 * 1024 * 1024 + 4096;
    public string Description => pipe.Description;
    /// <summary>The gadget served, when the pipe is a real USB link (the host's --board mapping looks at its port and serial).</summary>
    public Usb9pfsGadget? Gadget => (pipe as UsbgLink)?.Gadget;
    public long Requests => Interlocked.Read(ref _requests);
    public long BytesIn => Interlocked.Read(ref _bytesIn);
    public long BytesOut => Interlocked.Read(ref _bytesOut);

    public ValueTask<int> ReadFrameAsync(Memory<byte> buffer, CancellationToken cancellationToken) =>
        new(Task.Run(() => ReadFrame(buffer.Span, cancellationToken), CancellationToken.None));

    public ValueTask WriteFrameAsync(ReadOnlyMemory<byte> frame, CancellationToken cancellationToken) =>
        new(Task.Run(() => WriteFrame(frame.Span), CancellationToken.None));

    /// <summary>Blocks until one whole T-message is in buffer (its trailing ZLP taken); returns its length.</summary>
    public int ReadFrame(Span<byte> buffer, CancellationToken ct)
    {
        int mps = pipe.MaxPacketSizeIn;
        int first = Math.Min(RoundUp(FirstReadLength, mps), buffer.Length / mps * mps);
        if (first < mps) throw new ArgumentException("buffer smaller than one USB packet");
        while (true)
        {
            int got = ReadTransfer(buffer[..first], idle: true, ct);
            if (got == 0) continue; // a lone ZLP between messages carries nothing
            if (got < 4) throw new InvalidDataException($"{Description}: a {got}-byte transfer is not a 9P message");
            uint size = BinaryPrimitives.ReadUInt32LittleEndian(buffer);
            if (size < 7 || size > buffer.Length)
                throw new InvalidDataException($"{Description}: T-message size {size} outside 7..{buffer.Length}");
            if (got < first)
            {
                // a short packet or a ZLP ended the transfer: it was the whole message
                if (got != size) throw new InvalidDataException($"{Description}: T-message says {size} bytes, its transfer carried {got}");
            }
            else
            {
                if (size < got) throw new InvalidDataException($"{Description}: T-message says {size} bytes, its transfer carried at least {got}");
                if (size > got)
                {
                    got += ReadTransfer(buffer[got..(int)size], idle: false, ct);
                    if (got != size) throw new InvalidDataException($"{Description}: T-message says {size} bytes, its transfer carried {got}");
                }
                if (size % mps == 0) ReadZeroLengthPacket(size);
            }
            Interlocked.Increment(ref _requests);
            Interlocked.Add(ref _bytesIn, size);
            return (int)size;
        }
    }

    /// <summary>Writes one R-message as one OUT transfer, plus the ZLP that ends it when it fills its last packet.</summary>
    public void WriteFrame(ReadOnlySpan<byte> frame)
    {
        var rc = pipe.WriteOut(frame, WriteTimeoutMs, out int sent);
        if (rc != UsbError.Success) throw new UsbException($"writing a {frame.Length}-byte R-message to {Description} ({sent} bytes taken)", rc);
        if (sent != frame.Length) throw new UsbException($"writing a {frame.Length}-byte R-message to {Description}: only {sent} bytes taken", UsbError.Io);
        if (frame.Length % pipe.MaxPacketSizeOut == 0)
        {
            rc = pipe.WriteOut(ReadOnlySpan<byte>.Empty, WriteTimeoutMs, out _);
            if (rc != UsbError.Success) throw new UsbException($"writing the zero-length packet after a {frame.Length}-byte R-message to {Description}", rc);
        }
        Interlocked.Add(ref _bytesOut, frame.Length);
    }

    /// <summary>
    /// One IN transfer into dest, resumed after poll timeouts. While idle (nothing of a message read yet) it
    /// stops for the token; inside a message it goes on until the transfer ends or stalls for StallLimit.
    /// </summary>
    private int ReadTransfer(Span<byte> dest, bool idle, CancellationToken ct)
    {
        int n = 0;
        var lastProgress = Environment.TickCount64;
        while (true)
        {
            var rc = pipe.ReadIn(dest[n..], PollMs, out int t);
            n += t;
            if (rc == UsbError.Success) return n;
            if (rc != UsbError.Timeout) throw new UsbException($"reading a T-message from {Description}", rc);
            if (idle && n == 0)
            {
                ct.ThrowIfCancellationRequested();
                continue;
            }
            if (t > 0) lastProgress = Environment.TickCount64;
            else if (Environment.TickCount64 - lastProgress > StallLimit.TotalMilliseconds)
                throw new UsbException($"{Description} stopped sending in the middle of a T-message ({n} bytes in)", UsbError.Timeout);
        }
    }

    private void ReadZeroLengthPacket(uint size)
    {
        var started = Environment.TickCount64;
        while (true)
        {
            var rc = pipe.ReadIn(_zlp, PollMs, out int t);
            if (rc == UsbError.Success)
            {
                if (t != 0) throw new InvalidDataException($"{Description}: expected the zero-length packet after a {size}-byte T-message, got {t} bytes");
                return;
            }
            if (rc != UsbError.Timeout) throw new UsbException($"reading the zero-length packet after a {size}-byte T-message from {Description}", rc);
            if (Environment.TickCount64 - started > StallLimit.TotalMilliseconds)
                throw new UsbException($"{Description} never sent the zero-length packet after a {size}-byte T-message", UsbError.Timeout);
        }
    }

    private static int RoundUp(int n, int multiple) => (n + multiple - 1) / multiple * multiple;

    public ValueTask DisposeAsync()
    {
        owner?.Dispose();
        return ValueTask.CompletedTask;
    }
}
