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
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: false);

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
        var r = new Reader(frame, P9.HeaderSize);
        message = DecodeBody((MessageType)type, ref r);
        if (message is null) return r.Unknown ? DecodeError.UnknownType : DecodeError.Malformed;
        if (r.Failed || r.Remaining != 0) { message = null; return DecodeError.Malformed; }
        return DecodeError.None;
    }

    /// <summary>The body of a message: the classic 9P session and I/O messages (types from 100 up), or 9P2000.L's own.</summary>
    private static Message? DecodeBody(MessageType type, ref Reader r) =>
        type >= MessageType.Tversion ? DecodeClassic(type, ref r) : DecodeLinux(type, ref r);

    private static Message? DecodeClassic(MessageType type, ref Reader r)
    {
        switch (type)
        {
            case MessageType.Tversion: return new Tversion(r.U32(), r.Str());
            case MessageType.Rversion: return new Rversion(r.U32(), r.Str());
            case MessageType.Tauth: return new Tauth(r.U32(), r.Str(), r.Str(), r.U32());
            case MessageType.Rauth: return new Rauth(r.Qid());
            case MessageType.Tattach: return new Tattach(r.U32(), r.U32(), r.Str(), r.Str(), r.U32());
            case MessageType.Rattach: return new Rattach(r.Qid());
            case MessageType.Tflush: return new Tflush(r.U16());
            case MessageType.Rflush: return new Rflush();
            case MessageType.Twalk:
            {
                uint fid = r.U32(), newFid = r.U32();
                int n = r.U16();
                if (n > P9.MaxWalkElements) return null;
                var names = new string[n];
                for (int i = 0; i < n; i++) names[i] = r.Str();
                return new Twalk(fid, newFid, names);
            }
            case MessageType.Rwalk:
            {
                int n = r.U16();
                if (n > P9.MaxWalkElements) return null;
                var qids = new Qid[n];
                for (int i = 0; i < n; i++) qids[i] = r.Qid();
                return new Rwalk(qids);
            }
            case MessageType.Tread: return new Tread(r.U32(), r.U64(), r.U32());
            case MessageType.Rread: return new Rread(r.Data(r.U32()));
            case MessageType.Twrite: { uint fid = r.U32(); ulong off = r.U64(); return new Twrite(fid, off, r.Data(r.U32())); }
            case MessageType.Rwrite: return new Rwrite(r.U32());
            case MessageType.Tclunk: return new Tclunk(r.U32());
            case MessageType.Rclunk: return new Rclunk();
            case MessageType.Tremove: return new Tremove(r.U32());
            case MessageType.Rremove: return new Rremove();
            default:
                r.Unknown = true;
                return null;
        }
    }

    private static Message? DecodeLinux(MessageType type, ref Reader r)
    {
        switch (type)
        {
            case MessageType.Rlerror: return new Rlerror(r.U32());
            case MessageType.Tstatfs: return new Tstatfs(r.U32());
            case MessageType.Rstatfs: return new Rstatfs(r.U32(), r.U32(), r.U64(), r.U64(), r.U64(), r.U64(), r.U64(), r.U64(), r.U32());
            case MessageType.Tlopen: return new Tlopen(r.U32(), r.U32());
            case MessageType.Rlopen: return new Rlopen(r.Qid(), r.U32());
            case MessageType.Tlcreate: return new Tlcreate(r.U32(), r.Str(), r.U32(), r.U32(), r.U32());
            case MessageType.Rlcreate: return new Rlcreate(r.Qid(), r.U32());
            case MessageType.Tsymlink: return new Tsymlink(r.U32(), r.Str(), r.Str(), r.U32());
            case MessageType.Rsymlink: return new Rsymlink(r.Qid());
            case MessageType.Tmknod: return new Tmknod(r.U32(), r.Str(), r.U32(), r.U32(), r.U32(), r.U32());
            case MessageType.Rmknod: return new Rmknod(r.Qid());
            case MessageType.Trename: return new Trename(r.U32(), r.U32(), r.Str());
            case MessageType.Rrename: return new Rrename();
            case MessageType.Treadlink: return new Treadlink(r.U32());
            case MessageType.Rreadlink: return new Rreadlink(r.Str());
            case MessageType.Tgetattr: return new Tgetattr(r.U32(), (AttrMask)r.U64());
            case MessageType.Rgetattr:
                return new Rgetattr(new Attributes((AttrMask)r.U64(), r.Qid(), r.U32(), r.U32(), r.U32(), r.U64(), r.U64(), r.U64(), r.U64(),
                    r.U64(), r.U64(), r.U64(), r.U64(), r.U64(), r.U64(), r.U64(), r.U64(), r.U64(), r.U64(), r.U64()));
            case MessageType.Tsetattr:
                return new Tsetattr(r.U32(), (SetAttrMask)r.U32(), r.U32(), r.U32(), r.U32(), r.U64(), r.U64(), r.U64(), r.U64(), r.U64());
            case MessageType.Rsetattr: return new Rsetattr();
            case MessageType.Txattrwalk: return new Txattrwalk(r.U32(), r.U32(), r.Str());
            case MessageType.Rxattrwalk: return new Rxattrwalk(r.U64());
            case MessageType.Txattrcreate: return new Txattrcreate(r.U32(), r.Str(), r.U64(), r.U32());
            case MessageType.Rxattrcreate: return new Rxattrcreate();
            case MessageType.Treaddir: return new Treaddir(r.U32(), r.U64(), r.U32());
            case MessageType.Rreaddir: return new Rreaddir(r.Data(r.U32()));
            case MessageType.Tfsync: return new Tfsync(r.U32(), r.U32());
            case MessageType.Rfsync: return new Rfsync();
            case MessageType.Tlock: return new Tlock(r.U32(), r.U8(), r.U32(), r.U64(), r.U64(), r.U32(), r.Str());
            case MessageType.Rlock: return new Rlock(r.U8());
            case MessageType.Tgetlock: return new Tgetlock(r.U32(), r.U8(), r.U64(), r.U64(), r.U32(), r.Str());
            case MessageType.Rgetlock: return new Rgetlock(r.U8(), r.U64(), r.U64(), r.U32(), r.Str());
            case MessageType.Tlink: return new Tlink(r.U32(), r.U32(), r.Str());
            case MessageType.Rlink: return new Rlink();
            case MessageType.Tmkdir: return new Tmkdir(r.U32(), r.Str(), r.U32(), r.U32());
            case MessageType.Rmkdir: return new Rmkdir(r.Qid());
            case MessageType.Trenameat: return new Trenameat(r.U32(), r.Str(), r.U32(), r.Str());
            case MessageType.Rrenameat: return new Rrenameat();
            case MessageType.Tunlinkat: return new Tunlinkat(r.U32(), r.Str(), r.U32());
            case MessageType.Runlinkat: return new Runlinkat();
            default:
                r.Unknown = true;
                return null;
        }
    }

    /// <summary>Bounds-checked little-endian reader; past the end it yields zeros and remembers the failure.</summary>
    private ref struct Reader(ReadOnlyMemory<byte> frame, int position)
    {
        private readonly ReadOnlySpan<byte> _span = frame.Span;
        private readonly ReadOnlyMemory<byte> _memory = frame;
        private int _pos = position;
        public bool Failed;
        public bool Unknown;

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

    // ---------------- encoding ----------------

    /// <summary>Encoded size of a string field (len[2] + UTF-8 bytes).</summary>
    public static int StringSize(string s) => 2 + Utf8.GetByteCount(s);

    /// <summary>Number of bytes <see cref="Encode(Span{byte}, ushort, Message)"/> writes.</summary>
    public static int Measure(Message m) => P9.HeaderSize + m switch
    {
        Rlerror => 4,
        Tversion t => 4 + StringSize(t.Version),
        Rversion t => 4 + StringSize(t.Version),
        Tauth t => 4 + StringSize(t.Uname) + StringSize(t.Aname) + 4,
        Rauth => Qid.Size,
        Tattach t => 8 + StringSize(t.Uname) + StringSize(t.Aname) + 4,
        Rattach => Qid.Size,
        Tflush => 2,
        Rflush => 0,
        Twalk t => 10 + t.Names.Sum(StringSize),
        Rwalk t => 2 + t.Qids.Count * Qid.Size,
        Tread => 16,
        Rread t => 4 + t.Data.Length,
        Twrite t => 16 + t.Data.Length,
        Rwrite => 4,
        Tclunk or Tremove or Tstatfs or Treadlink => 4,
        Rclunk or Rremove or Rrename or Rsetattr or Rxattrcreate or Rfsync or Rlink or Rrenameat or Runlinkat => 0,
        Rstatfs => 4 + 4 + 8 * 6 + 4,
        Tlopen => 8,
        Rlopen or Rlcreate => Qid.Size + 4,
        Tlcreate t => 4 + StringSize(t.Name) + 12,
        Tsymlink t => 4 + StringSize(t.Name) + StringSize(t.Target) + 4,
        Rsymlink or Rmknod or Rmkdir => Qid.Size,
        Tmknod t => 4 + StringSize(t.Name) + 16,
        Trename t => 8 + StringSize(t.Name),
        Rreadlink t => StringSize(t.Target),
        Tgetattr => 12,
        Rgetattr => 8 + Qid.Size + 12 + 8 * 15,
        Tsetattr => 4 + 4 + 12 + 8 * 5,
        Txattrwalk t => 8 + StringSize(t.Name),
        Rxattrwalk => 8,
        Txattrcreate t => 4 + StringSize(t.Name) + 12,
        Treaddir => 16,
        Rreaddir t => 4 + t.Data.Length,
        Tfsync => 8,
        Tlock t => 4 + 1 + 4 + 16 + 4 + StringSize(t.ClientId),
        Rlock => 1,
        Tgetlock t => 4 + 1 + 16 + 4 + StringSize(t.ClientId),
        Rgetlock t => 1 + 16 + 4 + StringSize(t.ClientId),
        Tlink t => 8 + StringSize(t.Name),
        Tmkdir t => 4 + StringSize(t.Name) + 8,
        Trenameat t => 4 + StringSize(t.OldName) + 4 + StringSize(t.NewName),
        Tunlinkat t => 4 + StringSize(t.Name) + 4,
        _ => throw new ArgumentException($"cannot encode {m.GetType().Name}"),
    };

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
        var w = new Writer(dest);
        w.U32((uint)size);
        w.U8((byte)m.Type);
        w.U16(tag);
        if (m.Type >= MessageType.Tversion) WriteClassic(ref w, m);
        else WriteLinux(ref w, m);
        return size;
    }

    private static void WriteClassic(ref Writer w, Message m)
    {
        switch (m)
        {
            case Tversion x: w.U32(x.Msize); w.Str(x.Version); break;
            case Rversion x: w.U32(x.Msize); w.Str(x.Version); break;
            case Tauth x: w.U32(x.Afid); w.Str(x.Uname); w.Str(x.Aname); w.U32(x.NUname); break;
            case Rauth x: w.Qid(x.Aqid); break;
            case Tattach x: w.U32(x.Fid); w.U32(x.Afid); w.Str(x.Uname); w.Str(x.Aname); w.U32(x.NUname); break;
            case Rattach x: w.Qid(x.Qid); break;
            case Tflush x: w.U16(x.OldTag); break;
            case Twalk x:
                if (x.Names.Count > ushort.MaxValue) throw new ArgumentException("too many walk names");
                w.U32(x.Fid); w.U32(x.NewFid); w.U16((ushort)x.Names.Count);
                foreach (var n in x.Names) w.Str(n);
                break;
            case Rwalk x:
                w.U16((ushort)x.Qids.Count);
                foreach (var q in x.Qids) w.Qid(q);
                break;
            case Tread x: w.U32(x.Fid); w.U64(x.Offset); w.U32(x.Count); break;
            case Rread x: w.U32((uint)x.Data.Length); w.Bytes(x.Data.Span); break;
            case Twrite x: w.U32(x.Fid); w.U64(x.Offset); w.U32((uint)x.Data.Length); w.Bytes(x.Data.Span); break;
            case Rwrite x: w.U32(x.Count); break;
            case Tclunk x: w.U32(x.Fid); break;
            case Tremove x: w.U32(x.Fid); break;
            case Rflush or Rclunk or Rremove: break;
            default: throw new ArgumentException($"cannot encode {m.GetType().Name}");
        }
    }

    private static void WriteLinux(ref Writer w, Message m)
    {
        switch (m)
        {
            case Rlerror x: w.U32(x.Ecode); break;
            case Tstatfs x: w.U32(x.Fid); break;
            case Rstatfs x:
                w.U32(x.FsType); w.U32(x.Bsize); w.U64(x.Blocks); w.U64(x.Bfree); w.U64(x.Bavail); w.U64(x.Files); w.U64(x.Ffree);
                w.U64(x.Fsid); w.U32(x.Namelen);
                break;
            case Tlopen x: w.U32(x.Fid); w.U32(x.Flags); break;
            case Rlopen x: w.Qid(x.Qid); w.U32(x.Iounit); break;
            case Tlcreate x: w.U32(x.Fid); w.Str(x.Name); w.U32(x.Flags); w.U32(x.Mode); w.U32(x.Gid); break;
            case Rlcreate x: w.Qid(x.Qid); w.U32(x.Iounit); break;
            case Tsymlink x: w.U32(x.Dfid); w.Str(x.Name); w.Str(x.Target); w.U32(x.Gid); break;
            case Rsymlink x: w.Qid(x.Qid); break;
            case Tmknod x: w.U32(x.Dfid); w.Str(x.Name); w.U32(x.Mode); w.U32(x.Major); w.U32(x.Minor); w.U32(x.Gid); break;
            case Rmknod x: w.Qid(x.Qid); break;
            case Trename x: w.U32(x.Fid); w.U32(x.Dfid); w.Str(x.Name); break;
            case Treadlink x: w.U32(x.Fid); break;
            case Rreadlink x: w.Str(x.Target); break;
            case Tgetattr x: w.U32(x.Fid); w.U64((ulong)x.RequestMask); break;
            case Rgetattr { Attr: var a }:
                w.U64((ulong)a.Valid); w.Qid(a.Qid); w.U32(a.Mode); w.U32(a.Uid); w.U32(a.Gid); w.U64(a.Nlink); w.U64(a.Rdev);
                w.U64(a.Size); w.U64(a.BlkSize); w.U64(a.Blocks); w.U64(a.AtimeSec); w.U64(a.AtimeNsec); w.U64(a.MtimeSec);
                w.U64(a.MtimeNsec); w.U64(a.CtimeSec); w.U64(a.CtimeNsec); w.U64(a.BtimeSec); w.U64(a.BtimeNsec); w.U64(a.Gen);
                w.U64(a.DataVersion);
                break;
            case Tsetattr x:
                w.U32(x.Fid); w.U32((uint)x.Valid); w.U32(x.Mode); w.U32(x.Uid); w.U32(x.Gid); w.U64(x.Size);
                w.U64(x.AtimeSec); w.U64(x.AtimeNsec); w.U64(x.MtimeSec); w.U64(x.MtimeNsec);
                break;
            case Txattrwalk x: w.U32(x.Fid); w.U32(x.NewFid); w.Str(x.Name); break;
            case Rxattrwalk x: w.U64(x.Size); break;
            case Txattrcreate x: w.U32(x.Fid); w.Str(x.Name); w.U64(x.AttrSize); w.U32(x.Flags); break;
            case Treaddir x: w.U32(x.Fid); w.U64(x.Offset); w.U32(x.Count); break;
            case Rreaddir x: w.U32((uint)x.Data.Length); w.Bytes(x.Data.Span); break;
            case Tfsync x: w.U32(x.Fid); w.U32(x.Datasync); break;
            case Tlock x: w.U32(x.Fid); w.U8(x.LockType); w.U32(x.Flags); w.U64(x.Start); w.U64(x.Length); w.U32(x.ProcId); w.Str(x.ClientId); break;
            case Rlock x: w.U8(x.Status); break;
            case Tgetlock x: w.U32(x.Fid); w.U8(x.LockType); w.U64(x.Start); w.U64(x.Length); w.U32(x.ProcId); w.Str(x.ClientId); break;
            case Rgetlock x: w.U8(x.LockType); w.U64(x.Start); w.U64(x.Length); w.U32(x.ProcId); w.Str(x.ClientId); break;
            case Tlink x: w.U32(x.Dfid); w.U32(x.Fid); w.Str(x.Name); break;
            case Tmkdir x: w.U32(x.Dfid); w.Str(x.Name); w.U32(x.Mode); w.U32(x.Gid); break;
            case Rmkdir x: w.Qid(x.Qid); break;
            case Trenameat x: w.U32(x.OldDirFid); w.Str(x.OldName); w.U32(x.NewDirFid); w.Str(x.NewName); break;
            case Tunlinkat x: w.U32(x.DirFid); w.Str(x.Name); w.U32(x.Flags); break;
            case Rrename or Rsetattr or Rxattrcreate or Rfsync or Rlink or Rrenameat or Runlinkat: break;
            default: throw new ArgumentException($"cannot encode {m.GetType().Name}");
        }
    }

    private ref struct Writer(Span<byte> dest)
    {
        private readonly Span<byte> _span = dest;
        private int _pos;

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
