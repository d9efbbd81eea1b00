using System.Buffers.Text;
using System.Text;

namespace RootfsExport.ExportTree;

/// <summary>One member of a tar archive, with its PAX records kept as raw bytes.</summary>
public sealed class TarMember
{
    public required string Name { get; init; }
    public required string LinkName { get; init; }
    /// <summary>The typeflag: '0' file, '1' hard link, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo, '7' contiguous.</summary>
    public required char Type { get; init; }
    /// <summary>Permission bits including setuid/setgid/sticky.</summary>
    public required uint Mode { get; init; }
    public required uint Uid { get; init; }
    public required uint Gid { get; init; }
    public required long Size { get; init; }
    public required DateTimeOffset Mtime { get; init; }
    public required uint DevMajor { get; init; }
    public required uint DevMinor { get; init; }
    /// <summary>PAX records of this member (SCHILY.xattr.*, SCHILY.acl.*, ...), values as raw bytes.</summary>
    public required IReadOnlyDictionary<string, byte[]> Pax { get; init; }
    public required Stream Data { get; init; }
}

/// <summary>
/// Reads ustar/GNU/PAX archives as OE, PTXdist and GNU tar write them. We read tar ourselves rather than
/// with System.Formats.Tar because its TarReader rejects GNU tar's SCHILY.acl.* records (values contain
/// newlines: "The extended header contains invalid records") and decodes binary SCHILY.xattr.* values
/// (capabilities, ACL blobs) as UTF-8, corrupting them. Pure: bytes in, members out; streams data.
/// </summary>
public sealed class TarArchiveReader
{
    private readonly Stream _stream;
    private readonly byte[] _block = new byte[512];
    private MemberData? _current;
    private Dictionary<string, byte[]> _global = new(StringComparer.Ordinal);

    public TarArchiveReader(Stream stream) => _stream = stream;

    /// <summary>Bytes of the archive consumed so far (for "corrupt at offset" messages).</summary>
    public long Offset { get; private set; }

    /// <summary>The next member, or null at the end of the archive.</summary>
    public TarMember? Next()
    {
        _current?.SkipRest();
        _current = null;
        string? longName = null, longLink = null;
        var pax = new Dictionary<string, byte[]>(_global, StringComparer.Ordinal);
        while (true)
        {
            long headerOffset = Offset;
            if (!ReadBlock(allowEof: true)) return null;
            if (_block.AsSpan().IndexOfAnyExcept((byte)0) < 0)
            {
                ReadBlock(allowEof: true); // the second zero block (often missing in truncated-but-ok archives)
                return null;
            }
            VerifyChecksum(headerOffset);
            char type = (char)_block[156];
            long size = ParseNumber(_block.AsSpan(124, 12), "size", headerOffset);
            switch (type)
            {
                case 'x':
                    ParsePax(ReadPayload(size), pax, headerOffset);
                    continue;
                case 'g':
                    ParsePax(ReadPayload(size), _global, headerOffset);
                    foreach (var (k, v) in _global) pax[k] = v;
                    continue;
                case 'L':
                    longName = CString(ReadPayload(size));
                    continue;
                case 'K':
                    longLink = CString(ReadPayload(size));
                    continue;
            }
            if (pax.ContainsKey("GNU.sparse.major") || pax.ContainsKey("GNU.sparse.size") || type == 'S')
                throw new InvalidDataException($"member at byte {headerOffset} is a sparse file, which rootfs archives do not use");

            string name = pax.TryGetValue("path", out var p) ? Encoding.UTF8.GetString(p) : longName ?? UstarName();
            string link = pax.TryGetValue("linkpath", out var l) ? Encoding.UTF8.GetString(l) : longLink ?? CString(_block.AsSpan(157, 100));
            if (pax.TryGetValue("size", out var s)) size = PaxLong(s, "size", headerOffset);
            uint uid = pax.TryGetValue("uid", out var u) ? (uint)PaxLong(u, "uid", headerOffset) : (uint)ParseNumber(_block.AsSpan(108, 8), "uid", headerOffset);
            uint gid = pax.TryGetValue("gid", out var g) ? (uint)PaxLong(g, "gid", headerOffset) : (uint)ParseNumber(_block.AsSpan(116, 8), "gid", headerOffset);
            var mtime = pax.TryGetValue("mtime", out var m) ? PaxTime(m, headerOffset)
                : DateTimeOffset.FromUnixTimeSeconds(ParseNumber(_block.AsSpan(136, 12), "mtime", headerOffset));
            if (type == '\0') type = name.EndsWith('/') ? '5' : '0';
            var data = new MemberData(this, size);
            _current = data;
            return new TarMember
            {
                Name = name,
                LinkName = link,
                Type = type,
                Mode = (uint)ParseNumber(_block.AsSpan(100, 8), "mode", headerOffset) & 0xfff,
                Uid = uid,
                Gid = gid,
                Size = size,
                Mtime = mtime,
                DevMajor = (uint)ParseNumber(_block.AsSpan(329, 8), "devmajor", headerOffset),
                DevMinor = (uint)ParseNumber(_block.AsSpan(337, 8), "devminor", headerOffset),
                Pax = pax,
                Data = data,
            };
        }
    }

    private string UstarName()
    {
        var name = CString(_block.AsSpan(0, 100));
        bool ustar = _block.AsSpan(257, 5).SequenceEqual("ustar"u8);
        var prefix = ustar ? CString(_block.AsSpan(345, 155)) : "";
        return prefix.Length > 0 ? prefix + "/" + name : name;
    }

    private void VerifyChecksum(long offset)
    {
        long stored = ParseNumber(_block.AsSpan(148, 8), "checksum", offset);
        long sum = 0;
        for (int i = 0; i < 512; i++) sum += i is >= 148 and < 156 ? (byte)' ' : _block[i];
        if (sum != stored) throw new InvalidDataException($"header checksum mismatch at byte {offset} (not a tar archive, or corrupt)");
    }

    private bool ReadBlock(bool allowEof)
    {
        int n = 0;
        while (n < 512)
        {
            int r = _stream.Read(_block, n, 512 - n);
            if (r == 0)
            {
                if (n == 0 && allowEof) return false;
                throw new EndOfStreamException($"archive ends inside a header at byte {Offset + n}");
            }
            n += r;
        }
        Offset += 512;
        return true;
    }

    private byte[] ReadPayload(long size)
    {
        if (size is < 0 or > 16 << 20) throw new InvalidDataException($"extended header of {size} bytes at byte {Offset}");
        var buf = new byte[size];
        ReadExactly(buf);
        Skip((512 - size % 512) % 512);
        return buf;
    }

    private void ReadExactly(Span<byte> buf)
    {
        int n = 0;
        while (n < buf.Length)
        {
            int r = _stream.Read(buf[n..]);
            if (r == 0) throw new EndOfStreamException($"archive is truncated at byte {Offset + n}");
            n += r;
        }
        Offset += buf.Length;
    }

    private void Skip(long count)
    {
        Span<byte> scratch = stackalloc byte[4096];
        while (count > 0)
        {
            int want = (int)Math.Min(count, scratch.Length);
            ReadExactly(scratch[..want]);
            count -= want;
        }
    }

    /// <summary>Octal (NUL/space padded) or GNU base-256 (high bit set) numeric field.</summary>
    private static long ParseNumber(ReadOnlySpan<byte> field, string what, long offset)
    {
        if ((field[0] & 0x80) != 0)
        {
            long v = field[0] & 0x3f;
            for (int i = 1; i < field.Length; i++) v = (v << 8) | field[i];
            return v;
        }
        long n = 0;
        bool digits = false;
        foreach (var b in field)
        {
            if (b is >= (byte)'0' and <= (byte)'7') { n = n * 8 + (b - '0'); digits = true; }
            else if (b is 0 or (byte)' ') { if (digits) break; }
            else throw new InvalidDataException($"bad {what} field at byte {offset}");
        }
        return n;
    }

    /// <summary>PAX records: "%d %s=%s\n", the length counts the whole record; values may hold any byte, newlines too.</summary>
    private static void ParsePax(ReadOnlySpan<byte> data, Dictionary<string, byte[]> into, long offset)
    {
        int pos = 0;
        while (pos < data.Length)
        {
            if (data[pos] == 0) break;
            int space = data[pos..].IndexOf((byte)' ');
            if (space <= 0 || !Utf8Parser.TryParse(data.Slice(pos, space), out int len, out int used) || used != space ||
                len <= space + 2 || pos + len > data.Length || data[pos + len - 1] != (byte)'\n')
                throw new InvalidDataException($"malformed PAX record in the extended header at byte {offset}");
            var record = data.Slice(pos + space + 1, len - space - 2);
            int eq = record.IndexOf((byte)'=');
            if (eq <= 0) throw new InvalidDataException($"malformed PAX record in the extended header at byte {offset}");
            var key = Encoding.UTF8.GetString(record[..eq]);
            var value = record[(eq + 1)..].ToArray();
            if (value.Length == 0) into.Remove(key); // an empty value deletes the keyword
            else into[key] = value;
            pos += len;
        }
    }

    private static long PaxLong(byte[] value, string what, long offset) =>
        long.TryParse(Encoding.ASCII.GetString(value), out var v) && v >= 0 ? v : throw new InvalidDataException($"bad PAX {what} at byte {offset}");

    private static DateTimeOffset PaxTime(byte[] value, long offset)
    {
        var text = Encoding.ASCII.GetString(value);
        if (!decimal.TryParse(text, System.Globalization.NumberStyles.Number, System.Globalization.CultureInfo.InvariantCulture, out var seconds))
            throw new InvalidDataException($"bad PAX mtime '{text}' at byte {offset}");
        return DateTimeOffset.UnixEpoch.AddTicks((long)(seconds * TimeSpan.TicksPerSecond));
    }

    private static string CString(ReadOnlySpan<byte> field)
    {
        int end = field.IndexOf((byte)0);
        return Encoding.UTF8.GetString(end < 0 ? field : field[..end]);
    }

    /// <summary>A member's data: reads at most its size, and skips what was not read (plus padding) on Next().</summary>
    private sealed class MemberData : Compression.ReadOnlyStream
    {
        private readonly TarArchiveReader _reader;
        private readonly long _size;
        private long _read;

        public MemberData(TarArchiveReader reader, long size)
        {
            _reader = reader;
            _size = size;
        }

        public void SkipRest()
        {
            _reader.Skip(_size - _read);
            _read = _size;
            _reader.Skip((512 - _size % 512) % 512);
        }

        public override int Read(Span<byte> buffer)
        {
            long left = _size - _read;
            if (left <= 0 || buffer.Length == 0) return 0;
            int n = _reader._stream.Read(buffer[..(int)Math.Min(buffer.Length, left)]);
            if (n == 0) throw new EndOfStreamException($"archive is truncated at byte {_reader.Offset} (inside a member's data)");
            _read += n;
            _reader.Offset += n;
            return n;
        }

        public override long Length => _size;
        public override long Position { get => _read; set => throw new NotSupportedException(); }
    }
}
