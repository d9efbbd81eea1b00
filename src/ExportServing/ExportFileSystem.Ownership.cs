using RootfsExport.NineP.Protocol;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportServing;

/// <summary>The export as 9P sees it: owner, group, mode and type from files.db over the host's stat; qids.</summary>
public sealed unsafe partial class ExportFileSystem
{
    /// <summary>The mode the client sees: the DB's when it describes this object, the host's otherwise.</summary>
    internal static uint EffectiveMode(in Statx st, FileRow? row) =>
        row != null && RowDescribes(row.Mode & Libc.S_IFMT, st.Mode & Libc.S_IFMT)
            ? row.Mode
            : st.Mode; // no row, or a stale one (pseudo would drop it): trust the disk

    /// <summary>
    /// Whether a row of type dbType describes a host object of type hostType: the same type, or a device node or
    /// socket, which are empty regular files on disk.
    /// </summary>
    internal static bool RowDescribes(uint dbType, uint hostType) =>
        dbType == hostType || (hostType == Libc.S_IFREG && dbType is Libc.S_IFCHR or Libc.S_IFBLK or Libc.S_IFSOCK);

    /// <summary>
    /// The server's row cache, keyed by paths relative to this export (set up by the constructor), or null for
    /// another store (a plain files.db): its rows are then looked up by their absolute DB paths.
    /// </summary>
    private readonly OwnershipStore? _keyed;

    /// <summary>The row recorded for rel, with no absolute path built when the store is keyed by this export.</summary>
    internal FileRow? RowAt(string rel) => _keyed != null ? _keyed.GetRelative(rel) : _store.Get(DbPath(rel));

    /// <summary>A fid about to be tracked gets the store's string for its path: one string per path, not one per fid.</summary>
    private ExportFid Interned(ExportFid fid)
    {
        if (_keyed != null) fid.Path = _keyed.Intern(fid.Path);
        return fid;
    }

    internal FileRow? RowFor(string rel, in Statx st)
    {
        var row = RowAt(rel);
        if (row is null) return null;
        return EffectiveMode(st, row) == row.Mode ? row : null;
    }

    /// <summary>The object's row, recorded from the host's values first when the DB has none.</summary>
    private FileRow EnsureRow(string rel, in Statx st)
    {
        var row = RowFor(rel, st);
        if (row != null) return row;
        row = new FileRow(DbPath(rel), st.Dev(), st.InoSigned(), st.Uid, st.Gid, st.Mode, 0);
        _store.PutNew(row);
        return row;
    }

    private ulong QidPath(in Statx st)
    {
        long dev = st.Dev();
        return dev == _rootDev ? st.Ino : st.Ino ^ ((ulong)dev << 44);
    }

    internal static QidType QidTypeOf(uint mode) => (mode & Libc.S_IFMT) switch
    {
        Libc.S_IFDIR => QidType.Dir,
        Libc.S_IFLNK => QidType.Symlink,
        _ => QidType.File,
    };

    internal Qid QidOf(string rel, in Statx st) => new(QidTypeOf(EffectiveMode(st, RowAt(rel))), 0, QidPath(st));

    internal static bool IsDir(in Statx st) => (st.Mode & Libc.S_IFMT) == Libc.S_IFDIR;

    /// <summary>Linux's new_encode_dev, which the v9fs client decodes Rgetattr's rdev with.</summary>
    private static ulong KernelDev(long glibcDev)
    {
        ulong major = Libc.Major(glibcDev), minor = Libc.Minor(glibcDev);
        return (minor & 0xff) | (major << 8) | ((minor & ~0xffUL) << 12);
    }
}
