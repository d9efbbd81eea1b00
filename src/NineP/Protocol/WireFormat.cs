using System.Buffers.Binary;
using System.Text;

namespace RootfsExport.NineP.Protocol;

/// <summary>Reads one message body; null when a field is out of range (the frame is then malformed).</summary>
internal delegate Message? BodyReader(ref WireReader reader);

/// <summary>Bounds-checked little-endian reader; past the end it yields zeros and remembers the failure.</summary>
internal ref struct WireReader(ReadOnlyMemory<byte> frame, int position)
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);
    private readonly ReadOnlySpan<byte> _span = frame.Span;
    private readonly ReadOnlyMemory<byte> _memory = frame;
    private int _pos = position;
    public bool Failed;

    public readonly int Remaining => _span.Length - _pos;

    private bool Take(int n, out int at)
    {
        at = _pos;
        if (Failed || n < 0 || n > _span.Length - _pos) { Failed = true; return false; }
        _pos += n;
        return true;
    }

    public byte U8() => Take(1, out var at) ? _span[at] : (byte)0;
    public ushort U16() => Take(2, out var at) ? BinaryPrimitives.ReadUInt16LittleEndian(_span[at..]) : (ushort)0;
    public uint U32() => Take(4, out var at) ? BinaryPrimitives.ReadUInt32LittleEndian(_span[at..]) : 0;
    public ulong U64() => Take(8, out var at) ? BinaryPrimitives.ReadUInt64LittleEndian(_span[at..]) : 0;

    public string Str()
    {
        int n = U16();
        return Take(n, out var at) ? (n == 0 ? "" : Utf8.GetString(_span.Slice(at, n))) : "";
    }

    public ReadOnlyMemory<byte> Data(uint count) =>
        count <= int.MaxValue && Take((int)count, out var at) ? _memory.Slice(at, (int)count) : ReadOnlyMemory<byte>.Empty;

    public Qid Qid()
    {
        byte type = U8();
        uint version = U32();
        ulong path = U64();
        return new Qid((QidType)type, version, path);
    }
}

/// <summary>Little-endian writer into a buffer sized by the message's own BodySize.</summary>
internal ref struct WireWriter(Span<byte> dest)
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);
    private readonly Span<byte> _span = dest;
    private int _pos;

    /// <summary>Encoded size of a string field (len[2] + UTF-8 bytes).</summary>
    public static int StringSize(string s) => 2 + Utf8.GetByteCount(s);

    public void U8(byte v) => _span[_pos++] = v;
    public void U16(ushort v) { BinaryPrimitives.WriteUInt16LittleEndian(_span[_pos..], v); _pos += 2; }
    public void U32(uint v) { BinaryPrimitives.WriteUInt32LittleEndian(_span[_pos..], v); _pos += 4; }
    public void U64(ulong v) { BinaryPrimitives.WriteUInt64LittleEndian(_span[_pos..], v); _pos += 8; }
    public void Bytes(ReadOnlySpan<byte> b) { b.CopyTo(_span[_pos..]); _pos += b.Length; }

    public void Str(string s)
    {
        int n = Utf8.GetBytes(s, _span[(_pos + 2)..]);
        if (n > ushort.MaxValue) throw new ArgumentException("string longer than 65535 bytes");
        U16((ushort)n);
        _pos += n;
    }

    public void Qid(Qid q) { U8((byte)q.Type); U32(q.Version); U64(q.Path); }
}
