using RootfsExport.NineP.Protocol;
using RootfsExport.PseudoDb;
using RootfsExport.Posix.Native;

namespace RootfsExport.ExportServing;

/// <summary>What a board's overlay asks of a layer (the shared export or the board's own) by path.</summary>
public sealed partial class ExportFileSystem
{
    /// <summary>The device whose inode numbers serve as qid paths unchanged (the shared export's root).</summary>
    internal long QidDevice => _rootDev;

    /// <summary>Stat of rel without an exception for a missing object (a board's lookups miss in one layer often).</summary>
    internal bool TryStatRel(string rel, out Statx st)
    {
        st = default;
        if (rel.Length == 0) { st = StatFd(_rootFd); return true; }
        var parent = ParentOf(rel);
        int fd = -1;
        if (parent.Length > 0)
        {
            fd = Libc.OpenAt2(_rootFd, parent, Libc.O_PATH | Libc.O_DIRECTORY | Libc.O_CLOEXEC | Libc.O_NOFOLLOW, 0, Resolve);
            if (fd < 0) return false;
        }
        try { return Libc.StatxAt(fd < 0 ? _rootFd : fd, NameOf(rel), Libc.AT_SYMLINK_NOFOLLOW, StatxMask, out st) == 0; }
        finally { if (fd >= 0) Libc.Close(fd); }
    }

    /// <summary>The mode (type bits included) and owner a client sees for the object at rel, stat'ed as st.</summary>
    internal (uint Mode, uint Uid, uint Gid, long Rdev, FileRow? Row) Ownership(string rel, in Statx st)
    {
        var row = RowFor(rel, st);
        return (EffectiveMode(st, row), row?.Uid ?? st.Uid, row?.Gid ?? st.Gid, row?.Rdev ?? 0, row);
    }

    /// <summary>`want` permission on the object at rel for the fid's user (root: always).</summary>
    internal void RequireAt(ExportFid fid, string rel, int want)
    {
        if (fid.Uid == 0) return;
        var st = StatRel(rel);
        Require(fid, RowFor(rel, st), st, want, rel.Length == 0 ? "/" : rel);
    }

    /// <summary>The target of the symlink at rel.</summary>
    internal string ReadLinkRel(string rel)
    {
        var fid = new ExportFid(rel, 0);
        try { return ReadLink(fid); }
        finally { fid.Release(); }
    }

    /// <summary>Every entry of the directory at rel ('.' and '..' first), as Treaddir would list it.</summary>
    internal List<DirEntry> ReadDirRel(string rel)
    {
        var fid = new ExportFid(rel, 0);
        try { return Snapshot(fid); }
        finally { fid.Release(); }
    }
}
