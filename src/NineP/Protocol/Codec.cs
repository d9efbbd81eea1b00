using System.Buffers.Binary;
using System.Text;

namespace RootfsExport.NineP.Protocol;

/// <summary>Why a frame could not be decoded.</summary>
public enum DecodeError
{
    None,
    /// <summary>Shorter than a header, or size[4] disagrees with the frame length: no tag to answer.</summary>
    BadFrame,
    /// <summary>A known type whose fields are truncated, overlong or out of range.</summary>
    Malformed,
    /// <summary>A type this codec does not know (legacy 9P2000 messages, garbage).</summary>
    UnknownType,
}

/// <summary>
/// Pure 9P2000.L codec: whole frames (size[4] type[1] tag[2] fields…, little endian) to messages and back.
/// Decoding never throws on bad input; it reports a <see cref="DecodeError"/> so the server can answer Rlerror.
/// </summary>
public static class Codec
{
    // ---------------- decoding ----------------

    /// <summary>Reads size, type and tag of a frame without decoding its body.</summary>
    public static bool TryReadHeader(ReadOnlySpan<byte> frame, out uint size, out byte type, out ushort tag)
    {
        size = 0; type = 0; tag = P9.NoTag;
        if (frame.Length < P9.HeaderSize) return false;
        size = BinaryPrimitives.ReadUInt32LittleEndian(frame);
        type = frame[4];
        tag = BinaryPrimitives.ReadUInt16LittleEndian(frame[5..]);
        return true;
    }

    public static DecodeError TryDecode(ReadOnlyMemory<byte> frame, out ushort tag, out Message? message)
    {
        message = null;
        var span = frame.Span;
        if (!TryReadHeader(span, out var size, out var type, out tag)) return DecodeError.BadFrame;
        if (size != frame.Length) return DecodeError.BadFrame;
        if (Readers[type] is not { } read) return DecodeError.UnknownType;
        var r = new WireReader(frame, P9.HeaderSize);
        message = read(ref r);
        if (message is null) return DecodeError.Malformed;
        if (r.Failed || r.Remaining != 0) { message = null; return DecodeError.Malformed; }
        return DecodeError.None;
    }

    /// <summary>Each type number's reader, from the message records themselves; null where the codec knows none.</summary>
    private static readonly BodyReader?[] Readers = ReaderTable(
    [
        (MessageType.Rlerror, Rlerror.Read),
        (MessageType.Tversion, Tversion.Read), (MessageType.Rversion, Rversion.Read),
        (MessageType.Tauth, Tauth.Read), (MessageType.Rauth, Rauth.Read),
        (MessageType.Tattach, Tattach.Read), (MessageType.Rattach, Rattach.Read),
        (MessageType.Tflush, Tflush.Read), (MessageType.Rflush, Rflush.Read),
        (MessageType.Twalk, Twalk.Read), (MessageType.Rwalk, Rwalk.Read),
        (MessageType.Tread, Tread.Read), (MessageType.Rread, Rread.Read),
        (MessageType.Twrite, Twrite.Read), (MessageType.Rwrite, Rwrite.Read),
        (MessageType.Tclunk, Tclunk.Read), (MessageType.Rclunk, Rclunk.Read),
        (MessageType.Tremove, Tremove.Read), (MessageType.Rremove, Rremove.Read),
        (MessageType.Tstatfs, Tstatfs.Read), (MessageType.Rstatfs, Rstatfs.Read),
        (MessageType.Tlopen, Tlopen.Read), (MessageType.Rlopen, Rlopen.Read),
        (MessageType.Tlcreate, Tlcreate.Read), (MessageType.Rlcreate, Rlcreate.Read),
        (MessageType.Tsymlink, Tsymlink.Read), (MessageType.Rsymlink, Rsymlink.Read),
        (MessageType.Tmknod, Tmknod.Read), (MessageType.Rmknod, Rmknod.Read),
        (MessageType.Trename, Trename.Read), (MessageType.Rrename, Rrename.Read),
        (MessageType.Treadlink, Treadlink.Read), (MessageType.Rreadlink, Rreadlink.Read),
        (MessageType.Tgetattr, Tgetattr.Read), (MessageType.Rgetattr, Rgetattr.Read),
        (MessageType.Tsetattr, Tsetattr.Read), (MessageType.Rsetattr, Rsetattr.Read),
        (MessageType.Txattrwalk, Txattrwalk.Read), (MessageType.Rxattrwalk, Rxattrwalk.Read),
        (MessageType.Txattrcreate, Txattrcreate.Read), (MessageType.Rxattrcreate, Rxattrcreate.Read),
        (MessageType.Treaddir, Treaddir.Read), (MessageType.Rreaddir, Rreaddir.Read),
        (MessageType.Tfsync, Tfsync.Read), (MessageType.Rfsync, Rfsync.Read),
        (MessageType.Tlock, Tlock.Read), (MessageType.Rlock, Rlock.Read),
        (MessageType.Tgetlock, Tgetlock.Read), (MessageType.Rgetlock, Rgetlock.Read),
        (MessageType.Tlink, Tlink.Read), (MessageType.Rlink, Rlink.Read),
        (MessageType.Tmkdir, Tmkdir.Read), (MessageType.Rmkdir, Rmkdir.Read),
        (MessageType.Trenameat, Trenameat.Read), (MessageType.Rrenameat, Rrenameat.Read),
        (MessageType.Tunlinkat, Tunlinkat.Read), (MessageType.Runlinkat, Runlinkat.Read),
    ]);

    private static BodyReader?[] ReaderTable((MessageType Type, BodyReader Read)[] entries)
    {
        var table = new BodyReader?[256];
        foreach (var (type, read) in entries) table[(byte)type] = read;
        return table;
    }

    // ---------------- encoding ----------------

    /// <summary>Encoded size of a string field (len[2] + UTF-8 bytes).</summary>
    public static int StringSize(string s) => WireWriter.StringSize(s);

    /// <summary>Number of bytes <see cref="Encode(Span{byte}, ushort, Message)"/> writes.</summary>
    public static int Measure(Message m) => P9.HeaderSize + m.BodySize;

    public static byte[] Encode(ushort tag, Message m)
    {
        var buf = new byte[Measure(m)];
        Encode(buf, tag, m);
        return buf;
    }

    /// <summary>Writes the whole frame into dest (at least <see cref="Measure"/> bytes); returns its length.</summary>
    public static int Encode(Span<byte> dest, ushort tag, Message m)
    {
        int size = Measure(m);
        if (dest.Length < size) throw new ArgumentException("buffer too small for the message");
        var w = new WireWriter(dest);
        w.U32((uint)size);
        w.U8((byte)m.Type);
        w.U16(tag);
        m.WriteBody(ref w);
        return size;
    }
}

/// <summary>Readdir payload entries: qid[13] offset[8] type[1] name[s].</summary>
public readonly record struct DirEntry(Qid Qid, ulong Offset, byte Type, string Name);

/// <summary>Packs whole readdir entries into a reply buffer; never splits one.</summary>
public ref struct DirEntryWriter(Span<byte> dest)
{
    private readonly Span<byte> _span = dest;
    public int Length { get; private set; }

    /// <summary>Appends an entry if it fits; false when the buffer is full.</summary>
    public bool TryAdd(in DirEntry e)
    {
        var nameBytes = Encoding.UTF8.GetByteCount(e.Name);
        int need = Qid.Size + 8 + 1 + 2 + nameBytes;
        if (nameBytes > ushort.MaxValue || need > _span.Length - Length) return false;
        var s = _span[Length..];
        s[0] = (byte)e.Qid.Type;
        BinaryPrimitives.WriteUInt32LittleEndian(s[1..], e.Qid.Version);
        BinaryPrimitives.WriteUInt64LittleEndian(s[5..], e.Qid.Path);
        BinaryPrimitives.WriteUInt64LittleEndian(s[13..], e.Offset);
        s[21] = e.Type;
        BinaryPrimitives.WriteUInt16LittleEndian(s[22..], (ushort)nameBytes);
        Encoding.UTF8.GetBytes(e.Name, s[24..]);
        Length += need;
        return true;
    }

    /// <summary>Parses a readdir payload (client side); null if it is not a run of whole entries.</summary>
    public static List<DirEntry>? Parse(ReadOnlySpan<byte> data)
    {
        var result = new List<DirEntry>();
        while (data.Length > 0)
        {
            if (data.Length < 24) return null;
            var qid = new Qid((QidType)data[0], BinaryPrimitives.ReadUInt32LittleEndian(data[1..]), BinaryPrimitives.ReadUInt64LittleEndian(data[5..]));
            ulong off = BinaryPrimitives.ReadUInt64LittleEndian(data[13..]);
            byte type = data[21];
            int n = BinaryPrimitives.ReadUInt16LittleEndian(data[22..]);
            if (data.Length < 24 + n) return null;
            result.Add(new DirEntry(qid, off, type, Encoding.UTF8.GetString(data.Slice(24, n))));
            data = data[(24 + n)..];
        }
        return result;
    }
}
