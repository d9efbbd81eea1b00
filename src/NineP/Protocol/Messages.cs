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

/// <summary>Any 9P2000.L message body (the tag travels beside it).</summary>
public abstract record Message
{
    public abstract MessageType Type { get; }
}

public sealed record Rlerror(uint Ecode) : Message { public override MessageType Type => MessageType.Rlerror; }

public sealed record Tversion(uint Msize, string Version) : Message { public override MessageType Type => MessageType.Tversion; }
public sealed record Rversion(uint Msize, string Version) : Message { public override MessageType Type => MessageType.Rversion; }

public sealed record Tauth(uint Afid, string Uname, string Aname, uint NUname) : Message { public override MessageType Type => MessageType.Tauth; }
public sealed record Rauth(Qid Aqid) : Message { public override MessageType Type => MessageType.Rauth; }

public sealed record Tattach(uint Fid, uint Afid, string Uname, string Aname, uint NUname) : Message { public override MessageType Type => MessageType.Tattach; }
public sealed record Rattach(Qid Qid) : Message { public override MessageType Type => MessageType.Rattach; }

public sealed record Tflush(ushort OldTag) : Message { public override MessageType Type => MessageType.Tflush; }
public sealed record Rflush : Message { public override MessageType Type => MessageType.Rflush; }

public sealed record Twalk(uint Fid, uint NewFid, IReadOnlyList<string> Names) : Message { public override MessageType Type => MessageType.Twalk; }
public sealed record Rwalk(IReadOnlyList<Qid> Qids) : Message { public override MessageType Type => MessageType.Rwalk; }

public sealed record Tread(uint Fid, ulong Offset, uint Count) : Message { public override MessageType Type => MessageType.Tread; }
/// <summary>Data may point into a pooled buffer owned by whoever built the reply.</summary>
public sealed record Rread(ReadOnlyMemory<byte> Data) : Message { public override MessageType Type => MessageType.Rread; }

/// <summary>Data points into the received frame; valid while the request is being served.</summary>
public sealed record Twrite(uint Fid, ulong Offset, ReadOnlyMemory<byte> Data) : Message { public override MessageType Type => MessageType.Twrite; }
public sealed record Rwrite(uint Count) : Message { public override MessageType Type => MessageType.Rwrite; }

public sealed record Tclunk(uint Fid) : Message { public override MessageType Type => MessageType.Tclunk; }
public sealed record Rclunk : Message { public override MessageType Type => MessageType.Rclunk; }

public sealed record Tremove(uint Fid) : Message { public override MessageType Type => MessageType.Tremove; }
public sealed record Rremove : Message { public override MessageType Type => MessageType.Rremove; }

public sealed record Tstatfs(uint Fid) : Message { public override MessageType Type => MessageType.Tstatfs; }
public sealed record Rstatfs(uint FsType, uint Bsize, ulong Blocks, ulong Bfree, ulong Bavail, ulong Files, ulong Ffree, ulong Fsid, uint Namelen) : Message
{ public override MessageType Type => MessageType.Rstatfs; }

public sealed record Tlopen(uint Fid, uint Flags) : Message { public override MessageType Type => MessageType.Tlopen; }
public sealed record Rlopen(Qid Qid, uint Iounit) : Message { public override MessageType Type => MessageType.Rlopen; }

public sealed record Tlcreate(uint Fid, string Name, uint Flags, uint Mode, uint Gid) : Message { public override MessageType Type => MessageType.Tlcreate; }
public sealed record Rlcreate(Qid Qid, uint Iounit) : Message { public override MessageType Type => MessageType.Rlcreate; }

public sealed record Tsymlink(uint Dfid, string Name, string Target, uint Gid) : Message { public override MessageType Type => MessageType.Tsymlink; }
public sealed record Rsymlink(Qid Qid) : Message { public override MessageType Type => MessageType.Rsymlink; }

public sealed record Tmknod(uint Dfid, string Name, uint Mode, uint Major, uint Minor, uint Gid) : Message { public override MessageType Type => MessageType.Tmknod; }
public sealed record Rmknod(Qid Qid) : Message { public override MessageType Type => MessageType.Rmknod; }

public sealed record Trename(uint Fid, uint Dfid, string Name) : Message { public override MessageType Type => MessageType.Trename; }
public sealed record Rrename : Message { public override MessageType Type => MessageType.Rrename; }

public sealed record Treadlink(uint Fid) : Message { public override MessageType Type => MessageType.Treadlink; }
public sealed record Rreadlink(string Target) : Message { public override MessageType Type => MessageType.Rreadlink; }

public sealed record Tgetattr(uint Fid, AttrMask RequestMask) : Message { public override MessageType Type => MessageType.Tgetattr; }
public sealed record Rgetattr(Attributes Attr) : Message { public override MessageType Type => MessageType.Rgetattr; }

public sealed record Tsetattr(uint Fid, SetAttrMask Valid, uint Mode, uint Uid, uint Gid, ulong Size,
    ulong AtimeSec, ulong AtimeNsec, ulong MtimeSec, ulong MtimeNsec) : Message { public override MessageType Type => MessageType.Tsetattr; }
public sealed record Rsetattr : Message { public override MessageType Type => MessageType.Rsetattr; }

public sealed record Txattrwalk(uint Fid, uint NewFid, string Name) : Message { public override MessageType Type => MessageType.Txattrwalk; }
public sealed record Rxattrwalk(ulong Size) : Message { public override MessageType Type => MessageType.Rxattrwalk; }

public sealed record Txattrcreate(uint Fid, string Name, ulong AttrSize, uint Flags) : Message { public override MessageType Type => MessageType.Txattrcreate; }
public sealed record Rxattrcreate : Message { public override MessageType Type => MessageType.Rxattrcreate; }

public sealed record Treaddir(uint Fid, ulong Offset, uint Count) : Message { public override MessageType Type => MessageType.Treaddir; }
/// <summary>Data is a run of whole directory entries (see <see cref="DirEntryWriter"/>).</summary>
public sealed record Rreaddir(ReadOnlyMemory<byte> Data) : Message { public override MessageType Type => MessageType.Rreaddir; }

public sealed record Tfsync(uint Fid, uint Datasync) : Message { public override MessageType Type => MessageType.Tfsync; }
public sealed record Rfsync : Message { public override MessageType Type => MessageType.Rfsync; }

public sealed record Tlock(uint Fid, byte LockType, uint Flags, ulong Start, ulong Length, uint ProcId, string ClientId) : Message
{ public override MessageType Type => MessageType.Tlock; }
public sealed record Rlock(byte Status) : Message { public override MessageType Type => MessageType.Rlock; }

public sealed record Tgetlock(uint Fid, byte LockType, ulong Start, ulong Length, uint ProcId, string ClientId) : Message
{ public override MessageType Type => MessageType.Tgetlock; }
public sealed record Rgetlock(byte LockType, ulong Start, ulong Length, uint ProcId, string ClientId) : Message
{ public override MessageType Type => MessageType.Rgetlock; }

public sealed record Tlink(uint Dfid, uint Fid, string Name) : Message { public override MessageType Type => MessageType.Tlink; }
public sealed record Rlink : Message { public override MessageType Type => MessageType.Rlink; }

public sealed record Tmkdir(uint Dfid, string Name, uint Mode, uint Gid) : Message { public override MessageType Type => MessageType.Tmkdir; }
public sealed record Rmkdir(Qid Qid) : Message { public override MessageType Type => MessageType.Rmkdir; }

public sealed record Trenameat(uint OldDirFid, string OldName, uint NewDirFid, string NewName) : Message { public override MessageType Type => MessageType.Trenameat; }
public sealed record Rrenameat : Message { public override MessageType Type => MessageType.Rrenameat; }

public sealed record Tunlinkat(uint DirFid, string Name, uint Flags) : Message { public override MessageType Type => MessageType.Tunlinkat; }
public sealed record Runlinkat : Message { public override MessageType Type => MessageType.Runlinkat; }

/// <summary>Lock constants of Tlock/Rlock.</summary>
public static class LockValues
{
    public const byte ReadLock = 0, WriteLock = 1, Unlock = 2;
    public const byte Success = 0, Blocked = 1, Error = 2, Grace = 3;
}
