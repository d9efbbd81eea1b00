namespace RootfsExport.Compression;

public enum CompressionKind { None, Gzip, Bzip2, Xz, Zstd }

/// <summary>Picks the decoder by the data's magic bytes (file names lie: OE's symlinks, renamed downloads).</summary>
public static class Decompression
{
    public static CompressionKind Detect(ReadOnlySpan<byte> head) => head switch
    {
        [0x1f, 0x8b, ..] => CompressionKind.Gzip,
        [(byte)'B', (byte)'Z', (byte)'h', ..] => CompressionKind.Bzip2,
        [0xfd, (byte)'7', (byte)'z', (byte)'X', (byte)'Z', 0x00, ..] => CompressionKind.Xz,
        [0x28, 0xb5, 0x2f, 0xfd, ..] => CompressionKind.Zstd,
        _ => CompressionKind.None,
    };

    /// <summary>Wraps a (non-seekable is fine) stream with the decoder its first bytes call for.</summary>
    /// <param name="small">
    /// a small stream (a package's control or data member): decoded on the caller's thread through 64 KiB, without
    /// the read-ahead thread and its 10 MiB of blocks, which would cost a small package more than its decoding
    /// </param>
    public static Stream OpenDecoded(Stream raw, out CompressionKind kind, bool leaveOpen = false, bool small = false)
    {
        var peek = new PeekStream(raw, 6, leaveOpen);
        kind = Detect(peek.Head);
        Stream decoded = kind switch
        {
            CompressionKind.Gzip => new GzipDecoderStream(peek),
            CompressionKind.Bzip2 => new Bzip2DecoderStream(peek),
            CompressionKind.Xz => new XzDecoderStream(peek),
            CompressionKind.Zstd => new ZstdDecoderStream(peek),
            _ => peek,
        };
        if (small) return new BufferedStream(decoded, 1 << 16);
        // Decode on a second core while the caller writes files; archive readers' 512-byte reads are then
        // served from memory instead of a native decoder call each.
        return kind == CompressionKind.None ? new BufferedStream(decoded, 1 << 20) : new ReadAheadStream(decoded);
    }

    public static Stream OpenDecoded(Stream raw, bool leaveOpen = false, bool small = false) => OpenDecoded(raw, out _, leaveOpen, small);

    /// <summary>Counts bytes read from the compressed file, for progress and error offsets.</summary>
    private sealed class PeekStream : ReadOnlyStream
    {
        private readonly Stream _inner;
        private readonly bool _leaveOpen;
        private readonly byte[] _head;
        private int _headPos;

        public PeekStream(Stream inner, int count, bool leaveOpen)
        {
            _inner = inner;
            _leaveOpen = leaveOpen;
            var buf = new byte[count];
            int n = 0;
            while (n < count)
            {
                int r = inner.Read(buf, n, count - n);
                if (r == 0) break;
                n += r;
            }
            _head = buf[..n];
        }

        public ReadOnlySpan<byte> Head => _head;

        public override int Read(Span<byte> buffer)
        {
            if (_headPos < _head.Length)
            {
                int n = Math.Min(buffer.Length, _head.Length - _headPos);
                _head.AsSpan(_headPos, n).CopyTo(buffer);
                _headPos += n;
                return n;
            }
            return _inner.Read(buffer);
        }


        protected override void Dispose(bool disposing)
        {
            if (disposing && !_leaveOpen) _inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
