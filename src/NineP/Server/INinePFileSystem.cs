using RootfsExport.NineP.Protocol;

namespace RootfsExport.NineP.Server;

/// <summary>
/// What a 9P2000.L server serves, in values rather than wire messages. The server owns the fid table, checks
/// names (<see cref="NinePNames.Check"/>) and open states before it calls in, and keeps xattr buffers and readdir
/// snapshots; the file system owns its per-fid state (<typeparamref name="TFid"/>) and every decision about
/// objects: lookups, permissions, ownership. Failures are <see cref="NinePException"/> or
/// <see cref="Posix.PosixException"/>, answered as Rlerror with their errno.
/// </summary>
public interface INinePFileSystem<TFid> where TFid : NinePFid
{
    /// <summary>Tattach as uid: a new fid on the directory aname names.</summary>
    TFid Attach(string aname, uint uid, out Qid qid);

    /// <summary>
    /// Twalk (names already checked; '.' and '..' allowed): the qids of the names walked; walked is a new fid
    /// when every name was (a clone for none), null after a partial walk.
    /// </summary>
    List<Qid> Walk(TFid fid, IReadOnlyList<string> names, out TFid? walked);

    /// <summary>Txattrwalk: the value of name ("" = the NUL-separated name list) and a new fid to read it through.</summary>
    byte[] XattrWalk(TFid fid, string name, out TFid attrFid);

    /// <summary>The fid left the table (clunk, remove, reset); its state goes with its last reference.</summary>
    void Clunk(TFid fid);

    Attributes GetAttr(TFid fid, AttrMask request);
    void SetAttr(TFid fid, SetAttrMask valid, in SetAttrValues values);
    FsStats StatFs(TFid fid);
    string ReadLink(TFid fid);

    /// <summary>Tlopen of a fid not open yet; a qid of type Dir makes it an open directory.</summary>
    Qid Open(TFid fid, uint flags);
    /// <summary>Tlcreate in the directory fid, which becomes the new file, open.</summary>
    Qid Create(TFid dir, string name, uint flags, uint mode, uint gid);
    Qid Mkdir(TFid dir, string name, uint mode, uint gid);
    Qid Symlink(TFid dir, string name, string target, uint gid);
    Qid Mknod(TFid dir, string name, uint mode, uint major, uint minor, uint gid);
    void Link(TFid dir, TFid target, string name);
    void Rename(TFid fid, TFid newDir, string newName);
    void RenameAt(TFid oldDir, string oldName, TFid newDir, string newName);
    void UnlinkAt(TFid dir, string name, uint flags);
    /// <summary>Tremove: the fid has already left the table.</summary>
    void Remove(TFid fid);

    /// <summary>Reads file data of an open file into dest; returns the byte count.</summary>
    int Read(TFid fid, ulong offset, Span<byte> dest);
    /// <summary>Writes to a file open for writing; returns the byte count.</summary>
    uint Write(TFid fid, ulong offset, ReadOnlySpan<byte> data);
    void Fsync(TFid fid, bool dataOnly);
    /// <summary>Every entry of an open directory, '.' and '..' first: the snapshot Treaddir serves from offset 0.</summary>
    List<DirEntry> ReadDir(TFid fid);

    /// <summary>Txattrcreate is about to be accepted: refuse what the fid may not set.</summary>
    void XattrCreate(TFid fid, string name, ulong size, uint flags);
    /// <summary>The value a Txattrcreate's writes made, at clunk (size 0 without XATTR_CREATE removes).</summary>
    void XattrSet(TFid fid, string name, byte[] value, uint flags);

    /// <summary>Tlock: a status of <see cref="LockValues"/>.</summary>
    byte Lock(TFid fid, in LockRange range, uint flags);
    /// <summary>Tgetlock: the lock that would block range, or range with type Unlock.</summary>
    LockRange GetLock(TFid fid, in LockRange range);
}

/// <summary>Tsetattr's values (which of them apply: its valid mask).</summary>
public readonly record struct SetAttrValues(uint Mode, uint Uid, uint Gid, ulong Size, ulong AtimeSec, ulong AtimeNsec, ulong MtimeSec, ulong MtimeNsec);

/// <summary>Rstatfs's values.</summary>
public readonly record struct FsStats(uint Type, uint BlockSize, ulong Blocks, ulong BlocksFree, ulong BlocksAvailable,
    ulong Files, ulong FilesFree, ulong Fsid, uint NameLength);

/// <summary>A byte range lock of Tlock/Tgetlock/Rgetlock.</summary>
public readonly record struct LockRange(byte Type, ulong Start, ulong Length, uint ProcId, string ClientId);

/// <summary>The names a client may create or look up.</summary>
public static class NinePNames
{
    /// <summary>One component, not '.', '..', no '/' or NUL, at most 255 bytes.</summary>
    public static string Check(string name)
    {
        int errno = Problem(name);
        if (errno != 0) throw new NinePException(errno, errno == Posix.Errno.ENAMETOOLONG ? "name too long" : $"bad name '{name}'");
        return name;
    }

    /// <summary>The errno a name is refused with, 0 for a good one.</summary>
    public static int Problem(string name)
    {
        if (name.Length == 0 || name == "." || name == ".." || name.Contains('/') || name.Contains('\0')) return Posix.Errno.EINVAL;
        return name.Length > 63 && System.Text.Encoding.UTF8.GetByteCount(name) > 255 ? Posix.Errno.ENAMETOOLONG : 0;
    }

    /// <summary>How many names from the start a walk may look up ('.' and '..' included).</summary>
    public static int WalkablePrefix(IReadOnlyList<string> names)
    {
        for (int i = 0; i < names.Count; i++)
            if (names[i] is not ("." or "..") && Problem(names[i]) != 0) return i;
        return names.Count;
    }
}
