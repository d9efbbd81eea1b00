namespace RootfsExport.NineP.Protocol;

/// <summary>Message type numbers of 9P2000.L (each reply is its request + 1).</summary>
public enum MessageType : byte
{
    Tlerror = 6, Rlerror = 7,
    Tstatfs = 8, Rstatfs = 9,
    Tlopen = 12, Rlopen = 13,
    Tlcreate = 14, Rlcreate = 15,
    Tsymlink = 16, Rsymlink = 17,
    Tmknod = 18, Rmknod = 19,
    Trename = 20, Rrename = 21,
    Treadlink = 22, Rreadlink = 23,
    Tgetattr = 24, Rgetattr = 25,
    Tsetattr = 26, Rsetattr = 27,
    Txattrwalk = 30, Rxattrwalk = 31,
    Txattrcreate = 32, Rxattrcreate = 33,
    Treaddir = 40, Rreaddir = 41,
    Tfsync = 50, Rfsync = 51,
    Tlock = 52, Rlock = 53,
    Tgetlock = 54, Rgetlock = 55,
    Tlink = 70, Rlink = 71,
    Tmkdir = 72, Rmkdir = 73,
    Trenameat = 74, Rrenameat = 75,
    Tunlinkat = 76, Runlinkat = 77,
    Tversion = 100, Rversion = 101,
    Tauth = 102, Rauth = 103,
    Tattach = 104, Rattach = 105,
    Tflush = 108, Rflush = 109,
    Twalk = 110, Rwalk = 111,
    Tread = 116, Rread = 117,
    Twrite = 118, Rwrite = 119,
    Tclunk = 120, Rclunk = 121,
    Tremove = 122, Rremove = 123,
}

public static class P9
{
    public const string Version = "9P2000.L";
    public const ushort NoTag = 0xFFFF;
    public const uint NoFid = 0xFFFFFFFF;
    public const uint NoUname = 0xFFFFFFFF;
    public const int MaxWalkElements = 16;
    /// <summary>size[4] type[1] tag[2].</summary>
    public const int HeaderSize = 7;
    /// <summary>Room the Linux client leaves for the header of Tread/Twrite/Treaddir.</summary>
    public const int IoHeaderSize = 24;
    /// <summary>Rread/Rreaddir header: size type tag count[4].</summary>
    public const int ReadReplyHeaderSize = 11;
}

[Flags]
public enum QidType : byte
{
    File = 0, Link = 0x01, Symlink = 0x02, Tmp = 0x04, Auth = 0x08, Mount = 0x10, Excl = 0x20, Append = 0x40, Dir = 0x80,
}

/// <summary>type[1] version[4] path[8]: the server's identity of a file.</summary>
public readonly record struct Qid(QidType Type, uint Version, ulong Path)
{
    public const int Size = 13;
}

/// <summary>Rgetattr's valid / Tgetattr's request_mask bits.</summary>
[Flags]
public enum AttrMask : ulong
{
    Mode = 0x1, Nlink = 0x2, Uid = 0x4, Gid = 0x8, Rdev = 0x10, Atime = 0x20, Mtime = 0x40, Ctime = 0x80,
    Ino = 0x100, Size = 0x200, Blocks = 0x400, Btime = 0x800, Gen = 0x1000, DataVersion = 0x2000,
    Basic = 0x7ff, All = 0x3fff,
}

/// <summary>Tsetattr's valid bits.</summary>
[Flags]
public enum SetAttrMask : uint
{
    Mode = 0x1, Uid = 0x2, Gid = 0x4, Size = 0x8, Atime = 0x10, Mtime = 0x20, Ctime = 0x40, AtimeSet = 0x80, MtimeSet = 0x100,
}

public readonly record struct Attributes(
    AttrMask Valid, Qid Qid, uint Mode, uint Uid, uint Gid, ulong Nlink, ulong Rdev, ulong Size, ulong BlkSize, ulong Blocks,
    ulong AtimeSec, ulong AtimeNsec, ulong MtimeSec, ulong MtimeNsec, ulong CtimeSec, ulong CtimeNsec,
    ulong BtimeSec, ulong BtimeNsec, ulong Gen, ulong DataVersion);

/// <summary>
/// Any 9P2000.L message body (the tag travels beside it). Each message owns its wire form: the size of its body,
/// how it writes the body and (a static Read) how it reads one back; <see cref="Codec"/> adds the header and finds
/// the reader by type number. Adding a message: its type numbers above, its records here, a line in Codec's table.
/// </summary>
public abstract record Message
{
    public abstract MessageType Type { get; }
    /// <summary>Bytes after the 7-byte header.</summary>
    internal abstract int BodySize { get; }
    internal abstract void WriteBody(ref WireWriter w);
}

/// <summary>A message with no fields (most R-messages of calls that only succeed or fail).</summary>
public abstract record EmptyMessage : Message
{
    internal sealed override int BodySize => 0;
    internal sealed override void WriteBody(ref WireWriter w) { }
}

public sealed record Rlerror(uint Ecode) : Message
{
    public override MessageType Type => MessageType.Rlerror;
    internal override int BodySize => 4;
    internal override void WriteBody(ref WireWriter w) => w.U32(Ecode);
    internal static Message Read(ref WireReader r) => new Rlerror(r.U32());
}

public sealed record Tversion(uint Msize, string Version) : Message
{
    public override MessageType Type => MessageType.Tversion;
    internal override int BodySize => 4 + WireWriter.StringSize(Version);
    internal override void WriteBody(ref WireWriter w) { w.U32(Msize); w.Str(Version); }
    internal static Message Read(ref WireReader r) => new Tversion(r.U32(), r.Str());
}

public sealed record Rversion(uint Msize, string Version) : Message
{
    public override MessageType Type => MessageType.Rversion;
    internal override int BodySize => 4 + WireWriter.StringSize(Version);
    internal override void WriteBody(ref WireWriter w) { w.U32(Msize); w.Str(Version); }
    internal static Message Read(ref WireReader r) => new Rversion(r.U32(), r.Str());
}

public sealed record Tauth(uint Afid, string Uname, string Aname, uint NUname) : Message
{
    public override MessageType Type => MessageType.Tauth;
    internal override int BodySize => 8 + WireWriter.StringSize(Uname) + WireWriter.StringSize(Aname);
    internal override void WriteBody(ref WireWriter w) { w.U32(Afid); w.Str(Uname); w.Str(Aname); w.U32(NUname); }
    internal static Message Read(ref WireReader r) => new Tauth(r.U32(), r.Str(), r.Str(), r.U32());
}

public sealed record Rauth(Qid Aqid) : Message
{
    public override MessageType Type => MessageType.Rauth;
    internal override int BodySize => Qid.Size;
    internal override void WriteBody(ref WireWriter w) => w.Qid(Aqid);
    internal static Message Read(ref WireReader r) => new Rauth(r.Qid());
}

public sealed record Tattach(uint Fid, uint Afid, string Uname, string Aname, uint NUname) : Message
{
    public override MessageType Type => MessageType.Tattach;
    internal override int BodySize => 12 + WireWriter.StringSize(Uname) + WireWriter.StringSize(Aname);
    internal override void WriteBody(ref WireWriter w) { w.U32(Fid); w.U32(Afid); w.Str(Uname); w.Str(Aname); w.U32(NUname); }
    internal static Message Read(ref WireReader r) => new Tattach(r.U32(), r.U32(), r.Str(), r.Str(), r.U32());
}

public sealed record Rattach(Qid Qid) : Message
{
    public override MessageType Type => MessageType.Rattach;
    internal override int BodySize => Qid.Size;
    internal override void WriteBody(ref WireWriter w) => w.Qid(Qid);
    internal static Message Read(ref WireReader r) => new Rattach(r.Qid());
}

public sealed record Tflush(ushort OldTag) : Message
{
    public override MessageType Type => MessageType.Tflush;
    internal override int BodySize => 2;
    internal override void WriteBody(ref WireWriter w) => w.U16(OldTag);
    internal static Message Read(ref WireReader r) => new Tflush(r.U16());
}

public sealed record Rflush : EmptyMessage
{
    public override MessageType Type => MessageType.Rflush;
    internal static Message Read(ref WireReader r) => new Rflush();
}

public sealed record Twalk(uint Fid, uint NewFid, IReadOnlyList<string> Names) : Message
{
    public override MessageType Type => MessageType.Twalk;
    internal override int BodySize => 10 + Names.Sum(WireWriter.StringSize);

    internal override void WriteBody(ref WireWriter w)
    {
        if (Names.Count > ushort.MaxValue) throw new ArgumentException("too many walk names");
        w.U32(Fid); w.U32(NewFid); w.U16((ushort)Names.Count);
        foreach (var n in Names) w.Str(n);
    }

    /// <summary>More than 16 names is malformed (null), as the protocol allows no more.</summary>
    internal static Message? Read(ref WireReader r)
    {
        uint fid = r.U32(), newFid = r.U32();
        int n = r.U16();
        if (n > P9.MaxWalkElements) return null;
        var names = new string[n];
        for (int i = 0; i < n; i++) names[i] = r.Str();
        return new Twalk(fid, newFid, names);
    }
}

public sealed record Rwalk(IReadOnlyList<Qid> Qids) : Message
{
    public override MessageType Type => MessageType.Rwalk;
    internal override int BodySize => 2 + Qids.Count * Qid.Size;

    internal override void WriteBody(ref WireWriter w)
    {
        w.U16((ushort)Qids.Count);
        foreach (var q in Qids) w.Qid(q);
    }

    internal static Message? Read(ref WireReader r)
    {
        int n = r.U16();
        if (n > P9.MaxWalkElements) return null;
        var qids = new Qid[n];
        for (int i = 0; i < n; i++) qids[i] = r.Qid();
        return new Rwalk(qids);
    }
}

public sealed record Tread(uint Fid, ulong Offset, uint Count) : Message
{
    public override MessageType Type => MessageType.Tread;
    internal override int BodySize => 16;
    internal override void WriteBody(ref WireWriter w) { w.U32(Fid); w.U64(Offset); w.U32(Count); }
    internal static Message Read(ref WireReader r) => new Tread(r.U32(), r.U64(), r.U32());
}

/// <summary>Data may point into a pooled buffer owned by whoever built the reply.</summary>
public sealed record Rread(ReadOnlyMemory<byte> Data) : Message
{
    public override MessageType Type => MessageType.Rread;
    internal override int BodySize => 4 + Data.Length;
    internal override void WriteBody(ref WireWriter w) { w.U32((uint)Data.Length); w.Bytes(Data.Span); }
    internal static Message Read(ref WireReader r) => new Rread(r.Data(r.U32()));
}

/// <summary>Data points into the received frame; valid while the request is being served.</summary>
public sealed record Twrite(uint Fid, ulong Offset, ReadOnlyMemory<byte> Data) : Message
{
    public override MessageType Type => MessageType.Twrite;
    internal override int BodySize => 16 + Data.Length;
    internal override void WriteBody(ref WireWriter w) { w.U32(Fid); w.U64(Offset); w.U32((uint)Data.Length); w.Bytes(Data.Span); }
    internal static Message Read(ref WireReader r) => new Twrite(r.U32(), r.U64(), r.Data(r.U32()));
}

public sealed record Rwrite(uint Count) : Message
{
    public override MessageType Type => MessageType.Rwrite;
    internal override int BodySize => 4;
    internal override void WriteBody(ref WireWriter w) => w.U32(Count);
    internal static Message Read(ref WireReader r) => new Rwrite(r.U32());
}

public sealed record Tclunk(uint Fid) : Message
{
    public override MessageType Type => MessageType.Tclunk;
    internal override int BodySize => 4;
    internal override void WriteBody(ref WireWriter w) => w.U32(Fid);
    internal static Message Read(ref WireReader r) => new Tclunk(r.U32());
}

public sealed record Rclunk : EmptyMessage
{
    public override MessageType Type => MessageType.Rclunk;
    internal static Message Read(ref WireReader r) => new Rclunk();
}

public sealed record Tremove(uint Fid) : Message
{
    public override MessageType Type => MessageType.Tremove;
    internal override int BodySize => 4;
    internal override void WriteBody(ref WireWriter w) => w.U32(Fid);
    internal static Message Read(ref WireReader r) => new Tremove(r.U32());
}

public sealed record Rremove : EmptyMessage
{
    public override MessageType Type => MessageType.Rremove;
    internal static Message Read(ref WireReader r) => new Rremove();
}

public sealed record Tstatfs(uint Fid) : Message
{
    public override MessageType Type => MessageType.Tstatfs;
    internal override int BodySize => 4;
    internal override void WriteBody(ref WireWriter w) => w.U32(Fid);
    internal static Message Read(ref WireReader r) => new Tstatfs(r.U32());
}

public sealed record Rstatfs(uint FsType, uint Bsize, ulong Blocks, ulong Bfree, ulong Bavail, ulong Files, ulong Ffree, ulong Fsid, uint Namelen) : Message
{
    public override MessageType Type => MessageType.Rstatfs;
    internal override int BodySize => 4 + 4 + 8 * 6 + 4;

    internal override void WriteBody(ref WireWriter w)
    {
        w.U32(FsType); w.U32(Bsize); w.U64(Blocks); w.U64(Bfree); w.U64(Bavail); w.U64(Files); w.U64(Ffree);
        w.U64(Fsid); w.U32(Namelen);
    }

    internal static Message Read(ref WireReader r) =>
        new Rstatfs(r.U32(), r.U32(), r.U64(), r.U64(), r.U64(), r.U64(), r.U64(), r.U64(), r.U32());
}

public sealed record Tlopen(uint Fid, uint Flags) : Message
{
    public override MessageType Type => MessageType.Tlopen;
    internal override int BodySize => 8;
    internal override void WriteBody(ref WireWriter w) { w.U32(Fid); w.U32(Flags); }
    internal static Message Read(ref WireReader r) => new Tlopen(r.U32(), r.U32());
}

public sealed record Rlopen(Qid Qid, uint Iounit) : Message
{
    public override MessageType Type => MessageType.Rlopen;
    internal override int BodySize => Qid.Size + 4;
    internal override void WriteBody(ref WireWriter w) { w.Qid(Qid); w.U32(Iounit); }
    internal static Message Read(ref WireReader r) => new Rlopen(r.Qid(), r.U32());
}

public sealed record Tlcreate(uint Fid, string Name, uint Flags, uint Mode, uint Gid) : Message
{
    public override MessageType Type => MessageType.Tlcreate;
    internal override int BodySize => 16 + WireWriter.StringSize(Name);
    internal override void WriteBody(ref WireWriter w) { w.U32(Fid); w.Str(Name); w.U32(Flags); w.U32(Mode); w.U32(Gid); }
    internal static Message Read(ref WireReader r) => new Tlcreate(r.U32(), r.Str(), r.U32(), r.U32(), r.U32());
}

public sealed record Rlcreate(Qid Qid, uint Iounit) : Message
{
    public override MessageType Type => MessageType.Rlcreate;
    internal override int BodySize => Qid.Size + 4;
    internal override void WriteBody(ref WireWriter w) { w.Qid(Qid); w.U32(Iounit); }
    internal static Message Read(ref WireReader r) => new Rlcreate(r.Qid(), r.U32());
}

public sealed record Tsymlink(uint Dfid, string Name, string Target, uint Gid) : Message
{
    public override MessageType Type => MessageType.Tsymlink;
    internal override int BodySize => 8 + WireWriter.StringSize(Name) + WireWriter.StringSize(Target);
    internal override void WriteBody(ref WireWriter w) { w.U32(Dfid); w.Str(Name); w.Str(Target); w.U32(Gid); }
    internal static Message Read(ref WireReader r) => new Tsymlink(r.U32(), r.Str(), r.Str(), r.U32());
}

public sealed record Rsymlink(Qid Qid) : Message
{
    public override MessageType Type => MessageType.Rsymlink;
    internal override int BodySize => Qid.Size;
    internal override void WriteBody(ref WireWriter w) => w.Qid(Qid);
    internal static Message Read(ref WireReader r) => new Rsymlink(r.Qid());
}

public sealed record Tmknod(uint Dfid, string Name, uint Mode, uint Major, uint Minor, uint Gid) : Message
{
    public override MessageType Type => MessageType.Tmknod;
    internal override int BodySize => 20 + WireWriter.StringSize(Name);
    internal override void WriteBody(ref WireWriter w) { w.U32(Dfid); w.Str(Name); w.U32(Mode); w.U32(Major); w.U32(Minor); w.U32(Gid); }
    internal static Message Read(ref WireReader r) => new Tmknod(r.U32(), r.Str(), r.U32(), r.U32(), r.U32(), r.U32());
}

public sealed record Rmknod(Qid Qid) : Message
{
    public override MessageType Type => MessageType.Rmknod;
    internal override int BodySize => Qid.Size;
    internal override void WriteBody(ref WireWriter w) => w.Qid(Qid);
    internal static Message Read(ref WireReader r) => new Rmknod(r.Qid());
}

public sealed record Trename(uint Fid, uint Dfid, string Name) : Message
{
    public override MessageType Type => MessageType.Trename;
    internal override int BodySize => 8 + WireWriter.StringSize(Name);
    internal override void WriteBody(ref WireWriter w) { w.U32(Fid); w.U32(Dfid); w.Str(Name); }
    internal static Message Read(ref WireReader r) => new Trename(r.U32(), r.U32(), r.Str());
}

public sealed record Rrename : EmptyMessage
{
    public override MessageType Type => MessageType.Rrename;
    internal static Message Read(ref WireReader r) => new Rrename();
}

public sealed record Treadlink(uint Fid) : Message
{
    public override MessageType Type => MessageType.Treadlink;
    internal override int BodySize => 4;
    internal override void WriteBody(ref WireWriter w) => w.U32(Fid);
    internal static Message Read(ref WireReader r) => new Treadlink(r.U32());
}

public sealed record Rreadlink(string Target) : Message
{
    public override MessageType Type => MessageType.Rreadlink;
    internal override int BodySize => WireWriter.StringSize(Target);
    internal override void WriteBody(ref WireWriter w) => w.Str(Target);
    internal static Message Read(ref WireReader r) => new Rreadlink(r.Str());
}

public sealed record Tgetattr(uint Fid, AttrMask RequestMask) : Message
{
    public override MessageType Type => MessageType.Tgetattr;
    internal override int BodySize => 12;
    internal override void WriteBody(ref WireWriter w) { w.U32(Fid); w.U64((ulong)RequestMask); }
    internal static Message Read(ref WireReader r) => new Tgetattr(r.U32(), (AttrMask)r.U64());
}

public sealed record Rgetattr(Attributes Attr) : Message
{
    public override MessageType Type => MessageType.Rgetattr;
    internal override int BodySize => 8 + Qid.Size + 12 + 8 * 15;

    internal override void WriteBody(ref WireWriter w)
    {
        var a = Attr;
        w.U64((ulong)a.Valid); w.Qid(a.Qid); w.U32(a.Mode); w.U32(a.Uid); w.U32(a.Gid); w.U64(a.Nlink); w.U64(a.Rdev);
        w.U64(a.Size); w.U64(a.BlkSize); w.U64(a.Blocks); w.U64(a.AtimeSec); w.U64(a.AtimeNsec); w.U64(a.MtimeSec);
        w.U64(a.MtimeNsec); w.U64(a.CtimeSec); w.U64(a.CtimeNsec); w.U64(a.BtimeSec); w.U64(a.BtimeNsec); w.U64(a.Gen);
        w.U64(a.DataVersion);
    }

    internal static Message Read(ref WireReader r) => new Rgetattr(new Attributes(
        (AttrMask)r.U64(), r.Qid(), r.U32(), r.U32(), r.U32(), r.U64(), r.U64(), r.U64(), r.U64(), r.U64(),
        r.U64(), r.U64(), r.U64(), r.U64(), r.U64(), r.U64(), r.U64(), r.U64(), r.U64(), r.U64()));
}

public sealed record Tsetattr(uint Fid, SetAttrMask Valid, uint Mode, uint Uid, uint Gid, ulong Size,
    ulong AtimeSec, ulong AtimeNsec, ulong MtimeSec, ulong MtimeNsec) : Message
{
    public override MessageType Type => MessageType.Tsetattr;
    internal override int BodySize => 4 + 4 + 12 + 8 * 5;

    internal override void WriteBody(ref WireWriter w)
    {
        w.U32(Fid); w.U32((uint)Valid); w.U32(Mode); w.U32(Uid); w.U32(Gid); w.U64(Size);
        w.U64(AtimeSec); w.U64(AtimeNsec); w.U64(MtimeSec); w.U64(MtimeNsec);
    }

    internal static Message Read(ref WireReader r) => new Tsetattr(
        r.U32(), (SetAttrMask)r.U32(), r.U32(), r.U32(), r.U32(), r.U64(), r.U64(), r.U64(), r.U64(), r.U64());
}

public sealed record Rsetattr : EmptyMessage
{
    public override MessageType Type => MessageType.Rsetattr;
    internal static Message Read(ref WireReader r) => new Rsetattr();
}

public sealed record Txattrwalk(uint Fid, uint NewFid, string Name) : Message
{
    public override MessageType Type => MessageType.Txattrwalk;
    internal override int BodySize => 8 + WireWriter.StringSize(Name);
    internal override void WriteBody(ref WireWriter w) { w.U32(Fid); w.U32(NewFid); w.Str(Name); }
    internal static Message Read(ref WireReader r) => new Txattrwalk(r.U32(), r.U32(), r.Str());
}

public sealed record Rxattrwalk(ulong Size) : Message
{
    public override MessageType Type => MessageType.Rxattrwalk;
    internal override int BodySize => 8;
    internal override void WriteBody(ref WireWriter w) => w.U64(Size);
    internal static Message Read(ref WireReader r) => new Rxattrwalk(r.U64());
}

public sealed record Txattrcreate(uint Fid, string Name, ulong AttrSize, uint Flags) : Message
{
    public override MessageType Type => MessageType.Txattrcreate;
    internal override int BodySize => 16 + WireWriter.StringSize(Name);
    internal override void WriteBody(ref WireWriter w) { w.U32(Fid); w.Str(Name); w.U64(AttrSize); w.U32(Flags); }
    internal static Message Read(ref WireReader r) => new Txattrcreate(r.U32(), r.Str(), r.U64(), r.U32());
}

public sealed record Rxattrcreate : EmptyMessage
{
    public override MessageType Type => MessageType.Rxattrcreate;
    internal static Message Read(ref WireReader r) => new Rxattrcreate();
}

public sealed record Treaddir(uint Fid, ulong Offset, uint Count) : Message
{
    public override MessageType Type => MessageType.Treaddir;
    internal override int BodySize => 16;
    internal override void WriteBody(ref WireWriter w) { w.U32(Fid); w.U64(Offset); w.U32(Count); }
    internal static Message Read(ref WireReader r) => new Treaddir(r.U32(), r.U64(), r.U32());
}

/// <summary>Data is a run of whole directory entries (see <see cref="DirEntryWriter"/>).</summary>
public sealed record Rreaddir(ReadOnlyMemory<byte> Data) : Message
{
    public override MessageType Type => MessageType.Rreaddir;
    internal override int BodySize => 4 + Data.Length;
    internal override void WriteBody(ref WireWriter w) { w.U32((uint)Data.Length); w.Bytes(Data.Span); }
    internal static Message Read(ref WireReader r) => new Rreaddir(r.Data(r.U32()));
}

public sealed record Tfsync(uint Fid, uint Datasync) : Message
{
    public override MessageType Type => MessageType.Tfsync;
    internal override int BodySize => 8;
    internal override void WriteBody(ref WireWriter w) { w.U32(Fid); w.U32(Datasync); }
    internal static Message Read(ref WireReader r) => new Tfsync(r.U32(), r.U32());
}

public sealed record Rfsync : EmptyMessage
{
    public override MessageType Type => MessageType.Rfsync;
    internal static Message Read(ref WireReader r) => new Rfsync();
}

public sealed record Tlock(uint Fid, byte LockType, uint Flags, ulong Start, ulong Length, uint ProcId, string ClientId) : Message
{
    public override MessageType Type => MessageType.Tlock;
    internal override int BodySize => 4 + 1 + 4 + 16 + 4 + WireWriter.StringSize(ClientId);

    internal override void WriteBody(ref WireWriter w)
    {
        w.U32(Fid); w.U8(LockType); w.U32(Flags); w.U64(Start); w.U64(Length); w.U32(ProcId); w.Str(ClientId);
    }

    internal static Message Read(ref WireReader r) => new Tlock(r.U32(), r.U8(), r.U32(), r.U64(), r.U64(), r.U32(), r.Str());
}

public sealed record Rlock(byte Status) : Message
{
    public override MessageType Type => MessageType.Rlock;
    internal override int BodySize => 1;
    internal override void WriteBody(ref WireWriter w) => w.U8(Status);
    internal static Message Read(ref WireReader r) => new Rlock(r.U8());
}

public sealed record Tgetlock(uint Fid, byte LockType, ulong Start, ulong Length, uint ProcId, string ClientId) : Message
{
    public override MessageType Type => MessageType.Tgetlock;
    internal override int BodySize => 4 + 1 + 16 + 4 + WireWriter.StringSize(ClientId);
    internal override void WriteBody(ref WireWriter w) { w.U32(Fid); w.U8(LockType); w.U64(Start); w.U64(Length); w.U32(ProcId); w.Str(ClientId); }
    internal static Message Read(ref WireReader r) => new Tgetlock(r.U32(), r.U8(), r.U64(), r.U64(), r.U32(), r.Str());
}

public sealed record Rgetlock(byte LockType, ulong Start, ulong Length, uint ProcId, string ClientId) : Message
{
    public override MessageType Type => MessageType.Rgetlock;
    internal override int BodySize => 1 + 16 + 4 + WireWriter.StringSize(ClientId);
    internal override void WriteBody(ref WireWriter w) { w.U8(LockType); w.U64(Start); w.U64(Length); w.U32(ProcId); w.Str(ClientId); }
    internal static Message Read(ref WireReader r) => new Rgetlock(r.U8(), r.U64(), r.U64(), r.U32(), r.Str());
}

public sealed record Tlink(uint Dfid, uint Fid, string Name) : Message
{
    public override MessageType Type => MessageType.Tlink;
    internal override int BodySize => 8 + WireWriter.StringSize(Name);
    internal override void WriteBody(ref WireWriter w) { w.U32(Dfid); w.U32(Fid); w.Str(Name); }
    internal static Message Read(ref WireReader r) => new Tlink(r.U32(), r.U32(), r.Str());
}

public sealed record Rlink : EmptyMessage
{
    public override MessageType Type => MessageType.Rlink;
    internal static Message Read(ref WireReader r) => new Rlink();
}

public sealed record Tmkdir(uint Dfid, string Name, uint Mode, uint Gid) : Message
{
    public override MessageType Type => MessageType.Tmkdir;
    internal override int BodySize => 12 + WireWriter.StringSize(Name);
    internal override void WriteBody(ref WireWriter w) { w.U32(Dfid); w.Str(Name); w.U32(Mode); w.U32(Gid); }
    internal static Message Read(ref WireReader r) => new Tmkdir(r.U32(), r.Str(), r.U32(), r.U32());
}

public sealed record Rmkdir(Qid Qid) : Message
{
    public override MessageType Type => MessageType.Rmkdir;
    internal override int BodySize => Qid.Size;
    internal override void WriteBody(ref WireWriter w) => w.Qid(Qid);
    internal static Message Read(ref WireReader r) => new Rmkdir(r.Qid());
}

public sealed record Trenameat(uint OldDirFid, string OldName, uint NewDirFid, string NewName) : Message
{
    public override MessageType Type => MessageType.Trenameat;
    internal override int BodySize => 8 + WireWriter.StringSize(OldName) + WireWriter.StringSize(NewName);
    internal override void WriteBody(ref WireWriter w) { w.U32(OldDirFid); w.Str(OldName); w.U32(NewDirFid); w.Str(NewName); }
    internal static Message Read(ref WireReader r) => new Trenameat(r.U32(), r.Str(), r.U32(), r.Str());
}

public sealed record Rrenameat : EmptyMessage
{
    public override MessageType Type => MessageType.Rrenameat;
    internal static Message Read(ref WireReader r) => new Rrenameat();
}

public sealed record Tunlinkat(uint DirFid, string Name, uint Flags) : Message
{
    public override MessageType Type => MessageType.Tunlinkat;
    internal override int BodySize => 8 + WireWriter.StringSize(Name);
    internal override void WriteBody(ref WireWriter w) { w.U32(DirFid); w.Str(Name); w.U32(Flags); }
    internal static Message Read(ref WireReader r) => new Tunlinkat(r.U32(), r.Str(), r.U32());
}

public sealed record Runlinkat : EmptyMessage
{
    public override MessageType Type => MessageType.Runlinkat;
    internal static Message Read(ref WireReader r) => new Runlinkat();
}

/// <summary>Lock constants of Tlock/Rlock.</summary>
public static class LockValues
{
    public const byte ReadLock = 0, WriteLock = 1, Unlock = 2;
    public const byte Success = 0, Blocked = 1, Error = 2, Grace = 3;
}
