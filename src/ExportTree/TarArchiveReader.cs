using System.Buffers.Text;
using System.Text;

namespace RootfsExport.ExportTree;

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
    private static readonly UTF8Encoding StrictUtf8 = new(false, throwOnInvalidBytes: true);

    /// <summary>
    /// What the extended headers (x, g, L, K) before one member, and the global records, may add up to: far
    /// above any real name or xattr set, and a bound on the memory a hostile archive can make us take.
    /// </summary>
    public const long MaxExtendedBytes = 16 << 20;

    public TarArchiveReader(Stream stream) => _stream = stream;

    /// <summary>Bytes of the archive consumed so far (for "corrupt at offset" messages).</summary>
    public long Offset { get; private set; }

    /// <summary>The next member, or null at the end of the archive.</summary>
    public TarMember? Next()
    {
        _current?.SkipRest();
        _current = null;
        var ext = new Extended(new Dictionary<string, byte[]>(_global, StringComparer.Ordinal));
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
            var type = (TarMemberType)_block[TarHeader.TypeFlag];
            long size = ParseNumber(_block.AsSpan(TarHeader.Size), "size", headerOffset);
            if (ReadExtended(type, size, headerOffset, ext)) continue;
            if (ext.Pax.ContainsKey("GNU.sparse.major") || ext.Pax.ContainsKey("GNU.sparse.size") || type == TarMemberType.GnuSparse)
                throw new InvalidDataException($"member at byte {headerOffset} is a sparse file, which rootfs archives do not use");
            return Member(type, size, headerOffset, ext);
        }
    }

    /// <summary>The extended headers (x, g, L, K) read so far for the coming member.</summary>
    private sealed class Extended(Dictionary<string, byte[]> pax)
    {
        public readonly Dictionary<string, byte[]> Pax = pax;
        public string? LongName, LongLink;
        public long Bytes;
    }

    /// <summary>Takes in an extended header, within the bound; false for a member's own header.</summary>
    private bool ReadExtended(TarMemberType type, long size, long headerOffset, Extended ext)
    {
        if (type is not (TarMemberType.PaxExtended or TarMemberType.PaxGlobal or TarMemberType.GnuLongName or TarMemberType.GnuLongLink)) return false;
        if ((ext.Bytes += size) > MaxExtendedBytes)
            throw new TarEntryException($"the extended headers before the member at byte {headerOffset} add up to more than {MaxExtendedBytes >> 20} MiB; refusing to hold them in memory");
        switch (type)
        {
            case TarMemberType.PaxExtended:
                ParsePax(ReadPayload(size), ext.Pax, headerOffset);
                break;
            case TarMemberType.PaxGlobal:
                ParsePax(ReadPayload(size), _global, headerOffset);
                if (_global.Sum(kv => (long)kv.Key.Length + kv.Value.Length) > MaxExtendedBytes)
                    throw new TarEntryException($"the global extended headers up to byte {headerOffset} add up to more than {MaxExtendedBytes >> 20} MiB; refusing to hold them in memory");
                foreach (var (k, v) in _global) ext.Pax[k] = v;
                break;
            case TarMemberType.GnuLongName:
                ext.LongName = CText(ReadPayload(size), "name", headerOffset);
                break;
            default:
                ext.LongLink = CText(ReadPayload(size), "link target", headerOffset);
                break;
        }
        return true;
    }

    /// <summary>A member from its header block and the extended records before it (PAX values win over the header's).</summary>
    private TarMember Member(TarMemberType type, long size, long headerOffset, Extended ext)
    {
        var pax = ext.Pax;
        string name = pax.TryGetValue("path", out var p) ? Text(p, "name", headerOffset) : ext.LongName ?? UstarName(headerOffset);
        string link = pax.TryGetValue("linkpath", out var l) ? Text(l, "link target", headerOffset) : ext.LongLink ?? CText(_block.AsSpan(TarHeader.LinkName), "link target", headerOffset);
        if (pax.TryGetValue("size", out var s)) size = PaxLong(s, "size", headerOffset);
        long uid = pax.TryGetValue("uid", out var u) ? PaxLong(u, "uid", headerOffset) : ParseNumber(_block.AsSpan(TarHeader.Uid), "uid", headerOffset);
        long gid = pax.TryGetValue("gid", out var g) ? PaxLong(g, "gid", headerOffset) : ParseNumber(_block.AsSpan(TarHeader.Gid), "gid", headerOffset);
        long major = ParseNumber(_block.AsSpan(TarHeader.DevMajor), "devmajor", headerOffset), minor = ParseNumber(_block.AsSpan(TarHeader.DevMinor), "devminor", headerOffset);
        if (uid > uint.MaxValue || gid > uint.MaxValue)
            throw new TarEntryException($"entry '{ArchiveText.Shown(name)}': owner {uid}:{gid} does not fit a 32-bit uid/gid");
        if (type.IsDevice() && (major > uint.MaxValue || minor > uint.MaxValue))
            throw new TarEntryException($"entry '{ArchiveText.Shown(name)}': device number {major},{minor} is too large for dev_t (32 bits each for major and minor)");
        var mtime = pax.TryGetValue("mtime", out var m) ? PaxTime(m, headerOffset)
            : DateTimeOffset.FromUnixTimeSeconds(ParseNumber(_block.AsSpan(TarHeader.Mtime), "mtime", headerOffset));
        if (type == TarMemberType.OldFile) type = name.EndsWith('/') ? TarMemberType.Directory : TarMemberType.File;
        var data = new MemberData(this, size);
        _current = data;
        return new TarMember
        {
            Name = name,
            LinkName = link,
            Type = type,
            Mode = (uint)ParseNumber(_block.AsSpan(TarHeader.Mode), "mode", headerOffset) & 0xfff,
            Uid = (uint)uid,
            Gid = (uint)gid,
            Size = size,
            Mtime = mtime,
            DevMajor = type.IsDevice() ? (uint)major : 0,
            DevMinor = type.IsDevice() ? (uint)minor : 0,
            Pax = pax,
            Data = data,
        };
    }

    private string UstarName(long offset)
    {
        var name = CText(_block.AsSpan(TarHeader.Name), "name", offset);
        bool ustar = _block.AsSpan(TarHeader.Magic).SequenceEqual("ustar"u8);
        var prefix = ustar ? CText(_block.AsSpan(TarHeader.Prefix), "name", offset) : "";
        return prefix.Length > 0 ? prefix + "/" + name : name;
    }

    private void VerifyChecksum(long offset)
    {
        long stored = ParseNumber(_block.AsSpan(TarHeader.Checksum), "checksum", offset);
        var (at, length) = TarHeader.Checksum.GetOffsetAndLength(TarHeader.BlockSize);
        long sum = 0;
        for (int i = 0; i < TarHeader.BlockSize; i++) sum += i >= at && i < at + length ? (byte)' ' : _block[i]; // the field counts as spaces
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

    private static string CText(ReadOnlySpan<byte> field, string what, long offset)
    {
        int end = field.IndexOf((byte)0);
        return Text(end < 0 ? field : field[..end], what, offset);
    }

    /// <summary>
    /// A name as text. Names that are not UTF-8 are refused: decoding them would turn 'a\xff' and 'a\xfe'
    /// into the same 'a\uFFFD', one file where the archive has two.
    /// </summary>
    private static string Text(ReadOnlySpan<byte> raw, string what, long offset)
    {
        try
        {
            return StrictUtf8.GetString(raw);
        }
        catch (DecoderFallbackException)
        {
            throw new TarEntryException($"the {what} '{ArchiveText.Shown(raw)}' (header at byte {offset}) is not UTF-8; names are kept as text here, "
                                        + "and decoding it would merge names that differ only in such bytes, so the archive is refused");
        }
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
