namespace RootfsExport.Compression;

/// <summary>
/// Decodes on a second thread while the consumer writes files, like `tar -I zstd` gets from running the
/// decompressor as its own process: a bounded queue of blocks keeps memory flat (at most Depth blocks).
/// Errors of the decoder surface on the consumer's next Read.
/// </summary>
public sealed class ReadAheadStream : ReadOnlyStream
{
    private const int BlockSize = 1 << 20;
    private const int Depth = 8;
    private readonly Stream _inner;
    private readonly HandoffQueue<(byte[] Buffer, int Length)> _blocks = new(Depth);
    private readonly HandoffQueue<byte[]> _free = new(Depth + 2);
    private readonly Thread _producer;
    private volatile bool _stopping;
    private Exception? _error;
    private byte[]? _current;
    private int _currentPos, _currentLen;
    private bool _ended;

    /// <summary>Time the consumer waited for decoded data, and the decoder thread spent decoding (Stopwatch ticks).</summary>
    public long ConsumerWaitTicks { get; private set; }
    public long DecodeTicks { get; private set; }

    public ReadAheadStream(Stream inner)
    {
        _inner = inner;
        for (int i = 0; i < Depth + 2; i++) _free.Add(new byte[BlockSize]);
        _producer = new Thread(Produce) { IsBackground = true, Name = "decompress" };
        _producer.Start();
    }

    private void Produce()
    {
        try
        {
            while (!_stopping && _free.TryTake(out var buf))
            {
                long started = System.Diagnostics.Stopwatch.GetTimestamp();
                int len = 0;
                while (len < buf.Length)
                {
                    int n = _inner.Read(buf, len, buf.Length - len);
                    if (n == 0) break;
                    len += n;
                }
                DecodeTicks += System.Diagnostics.Stopwatch.GetTimestamp() - started;
                if (len == 0) break;
                if (!_blocks.Add((buf, len)) || len < buf.Length) break;
            }
        }
        catch (Exception e) { _error = e; }
        finally { _blocks.Complete(); }
    }

    public override int Read(Span<byte> buffer)
    {
        if (buffer.Length == 0) return 0;
        while (_current is null || _currentPos == _currentLen)
        {
            if (_current != null) { _free.Add(_current); _current = null; }
            if (_ended) return 0;
            long waitStarted = System.Diagnostics.Stopwatch.GetTimestamp();
            bool got = _blocks.TryTake(out var block);
            ConsumerWaitTicks += System.Diagnostics.Stopwatch.GetTimestamp() - waitStarted;
            if (!got)
            {
                _ended = true;
                if (_error != null) throw _error is IOException or InvalidDataException ? Rethrow(_error) : new IOException(_error.Message, _error);
                return 0;
            }
            (_current, _currentLen, _currentPos) = (block.Buffer, block.Length, 0);
        }
        int n = Math.Min(buffer.Length, _currentLen - _currentPos);
        _current.AsSpan(_currentPos, n).CopyTo(buffer);
        _currentPos += n;
        return n;
    }

    private static Exception Rethrow(Exception e) => e is InvalidDataException ide ? new InvalidDataException(ide.Message, ide) : new IOException(e.Message, e);


    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            // the decoder stops at its next hand-over: no free block comes, and a full block is refused
            _stopping = true;
            _free.Complete();
            _blocks.Complete();
            _producer.Join();
            _inner.Dispose();
        }
        base.Dispose(disposing);
    }
}
