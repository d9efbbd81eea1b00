using Microsoft.Win32.SafeHandles;
using RootfsExport.ExportTree;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportServing;

/// <summary>
/// One board layer merged into the shared export: staged first (every object the board has copied into a
/// staging directory at the export's root, checked against the board's files.db), then applied in path order
/// (parents first) inside the caller's files.db transaction. Both trees are reached only through directory fds
/// opened with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS or single-name *at() calls without following symlinks:
/// a symlink the board made is copied as a symlink, never followed.
/// </summary>
internal sealed class LayerMerge : IDisposable
{
    private enum ItemKind { Directory, Whiteout, Object }

    private sealed record Item(string Rel, FileRow Row, ItemKind Kind, string? Staged, bool FirstOfInode);

    /// <summary>A directory of the board and the times it had in the board's layer (what the board saw).</summary>
    private readonly record struct DirTimes(string Rel, Timespec Atime, Timespec Mtime);

    private readonly ExportHandle _export;
    private readonly BoardPaths _paths;
    private readonly string _stagingName;
    private readonly FilesDb _own;
    private readonly HostDirectory _upper;
    private readonly string _upperDb;
    private readonly List<Item> _items = [];
    private readonly HashSet<string> _opaque = new(StringComparer.Ordinal);
    private readonly List<DirTimes> _dirTimes = [];
    private HostDirectory? _staging;
    private DirTimes? _rootBefore; // the root's times before the staging directory came and went in it
    private (string Rel, HostDirectory Dir)? _parent; // the shared directory of the last item: most items share it

    public LayerMerge(ExportHandle export, BoardPaths paths, string stagingName)
    {
        _export = export;
        _paths = paths;
        _stagingName = stagingName;
        _own = FilesDb.OpenFile(paths.State.FilesDbPath, create: false);
        _upper = HostDirectory.Open(paths.Upper);
        _upperDb = ExportPaths.Canonical(paths.Upper);
    }

    // ---------------- staging: nothing of the shared export changes yet ----------------

    /// <summary>Reads the board's rows in path order and copies each object it has into the staging directory.</summary>
    public void Stage()
    {
        var root = _export.Root.StatSelf();
        _rootBefore = new DirTimes("", Time(root.Atime), Time(root.Mtime));
        _export.Root.RemoveTree(_stagingName); // a previous, interrupted attempt's
        _export.Root.CreateDirectory(_stagingName, 0x1c0);
        _staging = _export.Root.OpenDirectory(_stagingName);
        var rows = _own.All().Where(r => r.Path == _upperDb || r.Path.StartsWith(_upperDb + "/", StringComparison.Ordinal))
            .OrderBy(r => r.Path, StringComparer.Ordinal).ToList();
        var byInode = rows.GroupBy(r => (r.Dev, r.Ino)).ToDictionary(g => g.Key, g => g.First().Path);
        foreach (var x in _own.AllXattrs().Where(x => x.Name == BoardLayer.OpaqueXattr))
            if (byInode.TryGetValue((x.Dev, x.Ino), out var p)) _opaque.Add(Rel(p));
        var staged = new Dictionary<(long, long), string>();
        foreach (var row in rows)
        {
            try { StageRow(row, staged); }
            catch (IOException e) // an object of the layer that cannot be read: named with its place in the layer
            {
                throw new UserFacingException($"board {_paths.Board}: cannot copy {Path.Combine(_paths.Upper, Rel(row.Path))} out of its layer ({e.Message}); " +
                    "nothing of the shared export was changed", e);
            }
        }
    }

    private void StageRow(FileRow row, Dictionary<(long, long), string> staged)
    {
        var rel = Rel(row.Path);
        var st = UpperStat(rel, row);
        if (BoardLayer.IsWhiteout(row)) _items.Add(new Item(rel, row, ItemKind.Whiteout, null, false));
        else if (row.IsDirectory)
        {
            _items.Add(new Item(rel, row, ItemKind.Directory, null, false));
            _dirTimes.Add(new DirTimes(rel, Time(st.Atime), Time(st.Mtime)));
        }
        else
        {
            var name = _items.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
            bool first = !staged.TryGetValue((row.Dev, row.Ino), out var linkOf);
            if (first) StageCopy(rel, st, name);
            else HostDirectory.Link(_staging!, linkOf!, _staging!, name); // another name of an inode the board linked
            staged.TryAdd((row.Dev, row.Ino), name);
            _items.Add(new Item(rel, row, ItemKind.Object, name, first));
        }
    }

    private static Timespec Time(StatxTimestamp t) => new() { Sec = t.Sec, Nsec = t.Nsec };

    private string Rel(string dbPath) => dbPath.Length == _upperDb.Length ? "" : dbPath[(_upperDb.Length + 1)..];

    /// <summary>The board's object at rel as it is on disk, which must be what its row records.</summary>
    private Statx UpperStat(string rel, FileRow row)
    {
        Statx st;
        bool there;
        if (rel.Length == 0) { st = _upper.StatSelf(); there = true; }
        else
        {
            using var dir = OpenUpperDir(ExportFileSystem.ParentOf(rel));
            there = dir.TryStat(ExportFileSystem.NameOf(rel), out st);
        }
        if (!there || !StMode.Stands(row.Mode, st.Mode))
            throw new UserFacingException($"board {_paths.Board}: {rel} in its layer is {(there ? "not the type" : "missing, not what")} its files.db records " +
                $"({_paths.State.FilesDbPath}); nothing was committed. 'rootfs-export check {_paths.Upper}' shows the layer's problems");
        return st;
    }

    private HostDirectory OpenUpperDir(string rel) => rel.Length == 0 ? _upper.Duplicate() : _upper.OpenDirectoryBeneath(rel);

    private void StageCopy(string rel, in Statx st, string name)
    {
        using var dir = OpenUpperDir(ExportFileSystem.ParentOf(rel));
        var from = ExportFileSystem.NameOf(rel);
        switch (StMode.Type(st.Mode))
        {
            case Libc.S_IFLNK: _staging!.CreateSymlink(name, dir.ReadLink(from)); break;
            case Libc.S_IFIFO: _staging!.CreateFifo(name, (uint)st.Mode); break;
            case Libc.S_IFREG: CopyFile(dir, from, name, st); return;
            default: throw new UserFacingException($"board {_paths.Board}: {rel} in its layer is neither a file, a symlink nor a FIFO; nothing was committed");
        }
        KeepTimes(name, st); // a symlink's own times (AT_SYMLINK_NOFOLLOW), a FIFO's: what the board saw
    }

    private unsafe void KeepTimes(string name, in Statx st)
    {
        var times = stackalloc Timespec[2];
        times[0] = Time(st.Atime);
        times[1] = Time(st.Mtime);
        _ = Libc.UtimensAt(_staging!.Fd, name, times, Libc.AT_SYMLINK_NOFOLLOW); // best effort, as for files
    }

    private unsafe void CopyFile(HostDirectory dir, string from, string name, in Statx st)
    {
        using var src = new FileStream(new SafeFileHandle(dir.OpenFile(from, Libc.O_RDONLY | Libc.O_NONBLOCK), ownsHandle: true), FileAccess.Read, 0);
        int fd = _staging!.OpenFile(name, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_EXCL, 0x180u);
        using var dst = new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Write, 0);
        src.CopyTo(dst, 1 << 20);
        dst.Flush(flushToDisk: true); // the board's copy goes at the end: its content must be on disk before the rows say it is there
        if (Libc.Fchmod(fd, (uint)st.Mode & 0xfffu) != 0) throw PosixException.Last("chmod", name); // the board's on-disk mode (pseudo's rule already applied)
        var times = stackalloc Timespec[2];
        times[0] = new Timespec { Sec = st.Atime.Sec, Nsec = st.Atime.Nsec };
        times[1] = new Timespec { Sec = st.Mtime.Sec, Nsec = st.Mtime.Nsec };
        _ = Libc.Futimens(fd, times); // best effort, as copy-up keeps them
    }

    // ---------------- applying: inside the files.db transaction ----------------

    /// <summary>Every item in path order; the caller's transaction commits the rows after the last.</summary>
    public void Apply(FilesDb db)
    {
        foreach (var item in _items)
        {
            switch (item.Kind)
            {
                case ItemKind.Directory: ApplyDirectory(db, item); break;
                case ItemKind.Whiteout: RemoveShared(db, item.Rel); break;
                default: ApplyObject(db, item); break;
            }
        }
        _export.Root.RemoveTree(_stagingName); // empty by now; removed before the times are set, as it is in the root
        KeepDirectoryTimes();
    }

    /// <summary>
    /// Every directory of the board ends with the times the board saw, as `rsync -a` of the board's view would
    /// leave it: the renames and removals above gave each the time of the commit. Last, after every change
    /// inside them; directories the board never had are not touched by a commit and keep theirs.
    /// </summary>
    private void KeepDirectoryTimes()
    {
        RestoreRootTimes(); // the board's own root times, when it has the root, are set below
        foreach (var d in _dirTimes)
        {
            if (d.Rel.Length == 0) _export.Root.SetTimesSelf(d.Atime, d.Mtime);
            else SharedParent(d.Rel).SetTimes(ExportFileSystem.NameOf(d.Rel), d.Atime, d.Mtime);
        }
    }

    private void ApplyObject(FilesDb db, Item item)
    {
        var parent = SharedParent(item.Rel);
        var name = ExportFileSystem.NameOf(item.Rel);
        if (parent.TryStat(name, out var old) && StMode.IsDirectory(old.Mode)) RemoveShared(db, item.Rel);
        HostDirectory.Rename(_staging!, item.Staged!, parent, name);
        var st = parent.Stat(name);
        var path = _export.DbPath(item.Rel);
        db.DeletePath(path); // the replaced object's row; its xattrs go with its last name
        var row = new FileRow(path, st.Dev(), st.InoSigned(), item.Row.Uid, item.Row.Gid, item.Row.Mode, item.Row.Rdev);
        if (!item.FirstOfInode) { db.PutLink(row); return; }
        db.PutNew(row);
        CopyXattrs(db, item.Row, row);
    }

    /// <summary>
    /// A directory of the board: made where the shared export has none (replacing a non-directory), its owner,
    /// mode and xattrs taken when they differ from the shared one's, and, when opaque, emptied of what the board
    /// does not have.
    /// </summary>
    private void ApplyDirectory(FilesDb db, Item item)
    {
        var rel = item.Rel;
        bool made = false;
        if (rel.Length > 0)
        {
            var parent = SharedParent(rel);
            var name = ExportFileSystem.NameOf(rel);
            if (parent.TryStat(name, out var old) && !StMode.IsDirectory(old.Mode)) RemoveShared(db, rel);
            if (!parent.TryStat(name, out _)) { parent.CreateDirectory(name, 0x1c0); made = true; }
        }
        using var dir = rel.Length == 0 ? _export.Root.Duplicate() : SharedParent(rel).OpenDirectory(ExportFileSystem.NameOf(rel));
        var st = dir.StatSelf();
        var path = _export.DbPath(rel);
        var before = db.GetByPath(path);
        bool sameObject = before != null && before.Dev == st.Dev() && before.Ino == st.InoSigned();
        if (made || !sameObject || (before!.Uid, before.Gid, before.Mode) != (item.Row.Uid, item.Row.Gid, item.Row.Mode))
        {
            dir.ChmodSelf(StMode.OnDisk(item.Row.Mode, isDirectory: true));
            var row = new FileRow(path, st.Dev(), st.InoSigned(), item.Row.Uid, item.Row.Gid, item.Row.Mode, 0);
            if (sameObject) db.UpdateOwnership(row.Dev, row.Ino, row.Uid, row.Gid, row.Mode);
            else db.PutNew(row);
            db.DeleteXattrs(row.Dev, row.Ino);
            CopyXattrs(db, item.Row, row);
        }
        if (IsOpaque(rel)) RemoveWhatTheBoardHides(db, rel, dir);
    }

    /// <summary>Whether nothing of the shared export shows through the board's directory rel (it or a parent is opaque).</summary>
    private bool IsOpaque(string rel)
    {
        for (var p = rel; ; p = ExportFileSystem.ParentOf(p))
        {
            if (_opaque.Contains(p)) return true;
            if (p.Length == 0) return false;
        }
    }

    /// <summary>Below an opaque directory the shared export keeps only what the board has there.</summary>
    private void RemoveWhatTheBoardHides(FilesDb db, string rel, HostDirectory shared)
    {
        using var own = OpenUpperDir(rel);
        foreach (var e in shared.ReadEntries())
        {
            if (rel.Length == 0 && e.Name == _stagingName) continue;
            if (own.TryStat(e.Name, out _)) continue;
            shared.RemoveTree(e.Name);
            db.DeleteTree(_export.DbPath(ExportFileSystem.Child(rel, e.Name)));
        }
    }

    /// <summary>What a whiteout hides goes from the shared export, with its rows (and a directory's whole tree).</summary>
    private void RemoveShared(FilesDb db, string rel)
    {
        var parent = SharedParent(rel);
        parent.RemoveTree(ExportFileSystem.NameOf(rel)); // never follows a symlink; nothing when already gone (a resumed commit)
        db.DeleteTree(_export.DbPath(rel));
    }

    private void CopyXattrs(FilesDb db, FileRow from, FileRow to)
    {
        foreach (var x in _own.GetXattrs(from.Dev, from.Ino))
            if (!x.Name.StartsWith(BoardLayer.OverlayXattrPrefix, StringComparison.Ordinal)) db.SetXattr(to.Dev, to.Ino, x.Name, x.Value);
    }

    /// <summary>
    /// A commit that stopped while staging: the staging directory goes, and the root gets back the times it had
    /// before it (creating and removing a name in a directory sets its mtime), so the shared export is as it was.
    /// </summary>
    public void Abandon()
    {
        _staging?.Dispose();
        _staging = null;
        _export.Root.RemoveTree(_stagingName);
        RestoreRootTimes();
    }

    private void RestoreRootTimes()
    {
        if (_rootBefore is { } t) _export.Root.SetTimesSelf(t.Atime, t.Mtime);
    }

    /// <summary>The shared export's directory holding rel, opened beneath the export root without following symlinks.</summary>
    private HostDirectory SharedParent(string rel)
    {
        var parentRel = ExportFileSystem.ParentOf(rel);
        if (_parent is { } held && held.Rel == parentRel) return held.Dir;
        _parent?.Dir.Dispose();
        var dir = parentRel.Length == 0 ? _export.Root.Duplicate() : _export.Root.OpenDirectoryBeneath(parentRel);
        _parent = (parentRel, dir);
        return dir;
    }

    private bool _disposed;

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _parent?.Dir.Dispose();
        _staging?.Dispose();
        _upper.Dispose();
        _own.Dispose();
    }
}
