namespace RootfsExport.Compression;

/// <summary>
/// A read-only stream that pulls compressed bytes from an inner stream and hands them to a native
/// streaming decoder. Subclasses wrap one library's streaming API; this class owns the buffering.
/// </summary>
public abstract class NativeDecoderStream : ReadOnlyStream
{
    private readonly Stream _inner;
    private readonly bool _leaveOpen;
    private readonly byte[] _input = new byte[256 * 1024];
    private int _inputStart, _inputEnd;
    private bool _innerEnded, _finished;
    private long _position;

    protected NativeDecoderStream(Stream inner, bool leaveOpen)
    {
        _inner = inner;
        _leaveOpen = leaveOpen;
    }

    /// <summary>Name of the format, for error messages.</summary>
    protected abstract string Format { get; }

    /// <summary>Bytes of compressed input consumed so far (for "corrupt at offset" messages).</summary>
    public long CompressedPosition { get; private set; }

    /// <summary>
    /// Decodes from input into output. Returns true when the compressed data ended (all frames/streams);
    /// throws InvalidDataException on corrupt input.
    /// </summary>
    protected abstract bool Decode(ReadOnlySpan<byte> input, Span<byte> output, bool inputEnded, out int consumed, out int produced);

    public override int Read(Span<byte> buffer)
    {
        if (buffer.Length == 0 || _finished) return 0;
        while (true)
        {
            if (_inputStart == _inputEnd && !_innerEnded)
            {
                _inputStart = 0;
                _inputEnd = _inner.Read(_input, 0, _input.Length);
                if (_inputEnd == 0) _innerEnded = true;
            }
            bool done = Decode(_input.AsSpan(_inputStart, _inputEnd - _inputStart), buffer, _innerEnded, out int consumed, out int produced);
            _inputStart += consumed;
            CompressedPosition += consumed;
            _position += produced;
            if (done)
            {
                _finished = true;
                return produced;
            }
            if (produced > 0) return produced;
            if (_innerEnded && _inputStart == _inputEnd && consumed == 0)
                throw new InvalidDataException($"{Format} data is truncated (input ended at byte {CompressedPosition})");
        }
    }

    public override long Position { get => _position; set => throw new NotSupportedException(); }

    protected override void Dispose(bool disposing)
    {
        if (disposing && !_leaveOpen) _inner.Dispose();
        base.Dispose(disposing);
    }
}
