using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportTree;

/// <summary>
/// Creates objects inside an export as an ordinary user and records their real ownership in files.db,
/// the way pseudo would: device nodes become empty placeholder files, setuid/setgid and group/other write
/// are stripped on disk, the owner can always read and write. Every host access is an *at() call below
/// the export's directory fd without following symlinks, so an entry can never land outside the export.
/// The caller owns the transaction (FilesDb.InTransaction) around a batch of calls.
/// </summary>
public sealed class ExportWriter : IDisposable
{
    private readonly HostDirectory _root;
    private readonly DirectoryCache _dirs = new();
    private readonly List<(ExportPath Path, DateTimeOffset Mtime)> _deferredDirTimes = new();
    private readonly byte[] _buffer = new byte[1 << 20];
    private readonly uint _umask;
    private readonly OwnershipRecorder? _recorder;
    private readonly FileContentWriter? _contents;
    private readonly FilesDb _db;

    /// <summary>
    /// True while the tree and files.db were new and empty and nothing has been removed or replaced since:
    /// then no row can hold the path or the inode of an object just created, and its row goes in as a plain
    /// insert (a third of the statements of <see cref="FilesDb.PutNew"/>).
    /// </summary>
    private bool _onlyCreated;

    /// <summary>True when creating with this mode leaves it intact (the umask takes nothing away).</summary>
    private bool CreatesExactly(uint onDisk) => (onDisk & _umask) == 0;

    /// <summary>files.db, with every write handed over so far in it.</summary>
    public FilesDb Db
    {
        get
        {
            Flush();
            return _db;
        }
    }

    /// <summary>The absolute path recorded in files.db for the export root (the final, canonical location).</summary>
    public string DbRoot { get; }

    /// <param name="treeOnDisk">Where the tree is now (may be a directory that is renamed into place later).</param>
    /// <param name="dbRoot">The canonical path the export will have; rows are recorded under it.</param>
    /// <param name="newTree">the tree and files.db are new and empty (a staged unpack): files.db is written on
    /// a thread of its own, in the caller's transaction; <see cref="Flush"/> before committing it</param>
    public ExportWriter(string treeOnDisk, string dbRoot, FilesDb db, bool newTree = false)
        : this(HostDirectory.Open(treeOnDisk), dbRoot, db, newTree)
    {
    }

    /// <summary>
    /// Writes into an export its handle holds: through a duplicate of the handle's root fd (the export directory
    /// is not looked up by its path again) and the handle's files.db; the caller owns the transaction.
    /// </summary>
    public ExportWriter(ExportHandle export) : this(export.Root.Duplicate(), export.Path, export.Db, newTree: false)
    {
    }

    private ExportWriter(HostDirectory root, string dbRoot, FilesDb db, bool newTree)
    {
        // With the umask known, objects are created with their final on-disk mode and need no chmod after.
        _umask = Libc.Umask(0x12);
        Libc.Umask(_umask);
        _root = root;
        DbRoot = dbRoot;
        _db = db;
        if (newTree)
        {
            _onlyCreated = db.Count() == 0;
            _recorder = new OwnershipRecorder(db);
            if (_onlyCreated) _contents = new FileContentWriter();
        }
    }

    /// <summary>Waits until every file and files.db write handed over is done (rethrows a failure).</summary>
    public void Flush()
    {
        _contents?.Drain();
        _recorder?.Drain();
    }

    /// <summary>
    /// Something other than a fresh create follows (a name exists, an object is removed): the files still
    /// being written must be done and their rows in first, so rows and names change in archive order.
    /// </summary>
    private void LeaveFreshCreates()
    {
        _contents?.Drain();
        _onlyCreated = false;
    }

    /// <summary>A files.db write: on the recorder's thread when there is one, else here and now.</summary>
    private void Write(Action<FilesDb> write)
    {
        if (_recorder != null) { _recorder.Post(write); return; }
        long started = UnpackPhases.Start();
        write(_db);
        UnpackPhases.Stop(ref UnpackPhases.Record, started);
    }

    public string DbPath(ExportPath path) => ExportPaths.Join(DbRoot, path.Value);

    // ---- objects ----

    /// <summary>Creates a directory (or adopts an existing one) with this ownership.</summary>
    public void Directory(ExportPath path, EntryMeta meta)
    {
        uint mode = FileRow.S_IFDIR | (meta.Permissions & 0xfff);
        Statx st;
        bool created = false;
        if (path.IsRoot)
        {
            _root.ChmodSelf(StMode.OnDisk(mode, true));
            st = _root.StatSelf();
        }
        else
        {
            var parent = OpenParent(path);
            uint onDisk = StMode.OnDisk(mode, true);
            bool exact = CreatesExactly(onDisk);
            try
            {
                parent.CreateDirectory(path.Name, exact ? onDisk : 0x1c0);
                created = true;
            }
            catch (PosixException e) when (e.Errno == Errno.EEXIST)
            {
                exact = false;
                _contents?.Drain(); // a file of that name may still be being written
                var existing = parent.Stat(path.Name);
                if (!StMode.IsDirectory(existing.Mode)) { RemoveObject(parent, path, existing); parent.CreateDirectory(path.Name, 0x1c0); }
            }
            if (!exact) parent.Chmod(path.Name, onDisk);
            st = parent.Stat(path.Name);
        }
        Record(path, st, meta, mode, replaceInode: false, created);
        if (meta.Mtime is { } m) _deferredDirTimes.Add((path, m));
    }

    /// <summary>Writes a regular file. An existing object at the path is replaced atomically (rename over it).</summary>
    public void RegularFile(ExportPath path, Stream content, EntryMeta meta)
    {
        uint mode = FileRow.S_IFREG | (meta.Permissions & 0xfff);
        var parent = OpenParent(path);
        string name = path.Name;
        string target = name;
        uint onDisk = StMode.OnDisk(mode, false);
        bool exact = CreatesExactly(onDisk);
        int fd;
        try
        {
            fd = parent.OpenFile(name, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_EXCL, exact ? onDisk : 0x180);
        }
        catch (PosixException e) when (e.Errno == Errno.EEXIST)
        {
            LeaveFreshCreates(); // the old object's inode may be freed and come back
            var existing = parent.Stat(name);
            if (StMode.IsDirectory(existing.Mode)) RemoveObject(parent, path, existing);
            else name = TempName(name);
            fd = parent.OpenFile(name, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_EXCL, exact ? onDisk : 0x180);
        }
        if (_contents != null && _onlyCreated)
        {
            var finish = new FileContentWriter.Finish(path, exact ? null : onDisk, meta.Mtime is { } t ? ToTimespec(t) : null,
                st => Record(path, st, meta, mode, replaceInode: true, created: true));
            _contents.Write(fd, content, finish);
            return;
        }
        Statx st;
        try
        {
            WriteAll(fd, content, path);
            if (!exact && Libc.Fchmod(fd, onDisk) != 0) throw PosixException.Last("chmod", path.Value);
            if (meta.Mtime is { } m) SetTimes(fd, m);
            st = HostDirectory.StatFd(fd);
        }
        catch
        {
            Libc.Close(fd);
            try { parent.Unlink(name); } catch (PosixException) { }
            throw;
        }
        Libc.Close(fd);
        if (name != target) HostDirectory.Rename(parent, name, parent, target);
        Record(path, st, meta, mode, replaceInode: true, created: name == target);
    }

    public void Symlink(ExportPath path, string linkTarget, EntryMeta meta)
    {
        var parent = OpenParent(path);
        bool created = true;
        try
        {
            parent.CreateSymlink(path.Name, linkTarget);
        }
        catch (PosixException e) when (e.Errno == Errno.EEXIST)
        {
            LeaveFreshCreates();
            created = false;
            var tmp = TempName(path.Name);
            parent.CreateSymlink(tmp, linkTarget);
            var existing = parent.Stat(path.Name);
            if (StMode.IsDirectory(existing.Mode)) RemoveObject(parent, path, existing);
            HostDirectory.Rename(parent, tmp, parent, path.Name);
        }
        var st = parent.Stat(path.Name);
        Record(path, st, meta, FileRow.S_IFLNK | 0x1ff, replaceInode: true, created);
    }

    /// <summary>Another name for an object already in the export; shares its row's ownership (same dev/ino).</summary>
    public void HardLink(ExportPath path, ExportPath target)
    {
        // a handle of our own: walking to the link's directory may evict the target's from the cache
        using var targetParent = OpenParent(target).Duplicate();
        if (!targetParent.TryStat(target.Name, out var targetSt))
            throw new UserFacingException($"hard link '{ArchiveText.Shown(path.Value)}' points to '{ArchiveText.Shown(target.Value)}', which is not in the export");
        if (StMode.IsDirectory(targetSt.Mode))
            throw new UserFacingException($"hard link '{ArchiveText.Shown(path.Value)}' points to directory '{ArchiveText.Shown(target.Value)}'");
        var parent = OpenParent(path);
        try
        {
            HostDirectory.Link(targetParent, target.Name, parent, path.Name);
        }
        catch (PosixException e) when (e.Errno == Errno.EEXIST)
        {
            LeaveFreshCreates();
            var tmp = TempName(path.Name);
            HostDirectory.Link(targetParent, target.Name, parent, tmp);
            HostDirectory.Rename(parent, tmp, parent, path.Name);
        }
        // the target's row is looked up where it is written, in order after it: no wait for the files.db thread
        _contents?.Drain(); // the target's row is posted when its content is written
        string dbTarget = DbPath(target), dbLink = DbPath(path);
        long dev = targetSt.Dev(), ino = targetSt.InoSigned();
        Write(db =>
        {
            var row = db.GetByPath(dbTarget) ?? db.GetByDevIno(dev, ino).FirstOrDefault()
                ?? throw new UserFacingException($"hard link '{ArchiveText.Shown(path.Value)}': its target '{ArchiveText.Shown(target.Value)}' has no ownership record");
            db.PutLink(row with { Path = dbLink, Dev = dev, Ino = ino });
        });
    }

    /// <summary>
    /// A device node, fifo or socket. Devices and sockets are empty regular files on disk (an ordinary user
    /// cannot mknod them; pseudo does the same); the DB row carries the type and device number.
    /// </summary>
    public void Special(ExportPath path, EntryKind kind, EntryMeta meta)
    {
        uint type = kind switch
        {
            EntryKind.CharDevice => FileRow.S_IFCHR,
            EntryKind.BlockDevice => FileRow.S_IFBLK,
            EntryKind.Fifo => FileRow.S_IFIFO,
            EntryKind.Socket => FileRow.S_IFSOCK,
            _ => throw new ArgumentException($"not a special file kind: {kind}"),
        };
        uint mode = type | (meta.Permissions & 0xfff);
        var parent = OpenParent(path);
        string name = path.Name;
        bool created = true;
        if (parent.TryStat(name, out var existing))
        {
            LeaveFreshCreates();
            created = false;
            if (StMode.IsDirectory(existing.Mode)) RemoveObject(parent, path, existing);
            else name = TempName(name);
        }
        if (StMode.OnDiskType(mode) == Libc.S_IFREG) Libc.Close(parent.OpenFile(name, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_EXCL, 0x180));
        else parent.CreateFifo(name, StMode.OnDisk(mode, false));
        parent.Chmod(name, StMode.OnDisk(mode, false));
        if (name != path.Name) HostDirectory.Rename(parent, name, parent, path.Name);
        var st = parent.Stat(path.Name);
        long rdev = kind is EntryKind.CharDevice or EntryKind.BlockDevice ? meta.Rdev : 0;
        Record(path, st, meta with { Rdev = rdev }, mode, replaceInode: true, created);
    }

    /// <summary>Changes the recorded ownership of an existing object (all its hard links).</summary>
    public void SetOwnership(ExportPath path, uint uid, uint gid, uint permissions)
    {
        var row = Db.GetByPath(DbPath(path)) ?? throw new UserFacingException($"'{ArchiveText.Shown(path.Value)}' has no ownership record");
        Write(db => db.UpdateOwnership(row.Dev, row.Ino, uid, gid, permissions));
    }

    /// <summary>Removes an object (a directory with everything below it) from disk and DB.</summary>
    public void Remove(ExportPath path)
    {
        if (path.IsRoot) throw new InvalidOperationException("refusing to remove the export root");
        var parent = OpenParent(path);
        LeaveFreshCreates();
        var dbPath = DbPath(path);
        if (!parent.TryStat(path.Name, out var st)) { Write(db => db.DeleteTree(dbPath)); return; }
        RemoveObject(parent, path, st);
    }

    public bool TryStat(ExportPath path, out Statx st)
    {
        st = default;
        if (path.IsRoot) { st = _root.StatSelf(); return true; }
        try
        {
            return OpenParent(path, create: false).TryStat(path.Name, out st);
        }
        catch (PosixException e) when (e.Errno is Errno.ENOENT or Errno.ENOTDIR)
        {
            return false;
        }
    }

    /// <summary>Applies directory mtimes recorded during the batch (creating entries changes them).</summary>
    public void FinishDirectoryTimes()
    {
        for (int i = _deferredDirTimes.Count - 1; i >= 0; i--)
        {
            var (path, mtime) = _deferredDirTimes[i];
            var ts = ToTimespec(mtime);
            if (path.IsRoot) _root.SetTimesSelf(ts, ts);
            else if (TryOpenParent(path) is { } parent && parent.TryStat(path.Name, out _)) parent.SetTimes(path.Name, ts, ts);
        }
        _deferredDirTimes.Clear();
    }

    // ---- internals ----

    /// <param name="created">the object was made by this call, not put over or adopting another</param>
    private void Record(ExportPath path, in Statx st, EntryMeta meta, uint mode, bool replaceInode, bool created)
    {
        var row = new FileRow(DbPath(path), st.Dev(), st.InoSigned(), meta.Uid, meta.Gid, mode, meta.Rdev);
        var xattrs = meta.Xattrs;
        if (created && _onlyCreated)
        {
            if (xattrs is null) Write(db => db.PutCreated(row));
            else Write(db => { db.PutCreated(row); SetXattrs(db, row, xattrs); });
            return;
        }
        Write(db =>
        {
            if (replaceInode) db.PutNew(row);
            else db.Put(row);
            if (!replaceInode) db.DeleteXattrs(row.Dev, row.Ino);
            if (xattrs != null) SetXattrs(db, row, xattrs);
        });
    }

    private static void SetXattrs(FilesDb db, FileRow row, IEnumerable<KeyValuePair<string, byte[]>> xattrs)
    {
        foreach (var (name, value) in xattrs) db.SetXattr(row.Dev, row.Ino, name, value);
    }

    private void RemoveObject(HostDirectory parent, ExportPath path, in Statx st)
    {
        LeaveFreshCreates();
        var dbPath = DbPath(path);
        if (StMode.IsDirectory(st.Mode))
        {
            _dirs.DropUnder(path.Value);
            parent.RemoveTree(path.Name);
            Write(db => db.DeleteTree(dbPath));
        }
        else
        {
            parent.Unlink(path.Name);
            Write(db => db.DeletePath(dbPath));
        }
    }

    private HostDirectory? TryOpenParent(ExportPath path)
    {
        try { return OpenParent(path, create: false); }
        catch (PosixException) { return null; }
    }

    /// <summary>
    /// The directory that holds path, walked component by component from the export root with O_NOFOLLOW:
    /// a symlink (or file) in the way is an error, never a detour. Missing directories are created as
    /// root-owned 0755, as tar does for members whose parents are not listed.
    /// </summary>
    private HostDirectory OpenParent(ExportPath path, bool create = true)
    {
        var parentPath = path.Parent;
        if (parentPath.IsRoot) return _root;
        if (_dirs.Get(parentPath.Value) is { } cached) return cached;
        // start from the deepest cached ancestor: a deep tree arrives in order, so that is the grandparent
        // and the walk is one openat, not one per level
        var (dir, sofar) = DeepestCachedAncestor(parentPath);
        int from = sofar.IsRoot ? 0 : sofar.Value.Length + 1;
        while (from < parentPath.Value.Length)
        {
            int slash = parentPath.Value.IndexOf('/', from);
            var component = slash < 0 ? parentPath.Value[from..] : parentPath.Value[from..slash];
            from += component.Length + 1;
            sofar = sofar.Child(component);
            dir = _dirs.Add(sofar.Value, OpenChild(dir, component, sofar, path, create));
        }
        return dir;
    }

    private (HostDirectory Dir, ExportPath Path) DeepestCachedAncestor(ExportPath parentPath)
    {
        var probe = parentPath;
        for (int tries = 0; tries < 64 && !probe.IsRoot; tries++)
        {
            probe = probe.Parent;
            if (probe.IsRoot) break;
            if (_dirs.Get(probe.Value) is { } hit) return (hit, probe);
        }
        return (_root, ExportPath.Root);
    }

    private HostDirectory OpenChild(HostDirectory dir, string component, ExportPath sofar, ExportPath path, bool create)
    {
        try
        {
            return dir.OpenDirectory(component);
        }
        catch (PosixException e) when (e.Errno == Errno.ENOENT && create)
        {
            dir.CreateDirectory(component, 0x1c0);
            dir.Chmod(component, 0x1ed);
            var st = dir.Stat(component);
            var row = new FileRow(DbPath(sofar), st.Dev(), st.InoSigned(), 0, 0, FileRow.S_IFDIR | 0x1ed, 0);
            if (_onlyCreated) Write(db => db.PutCreated(row));
            else Write(db => db.PutNew(row));
            return dir.OpenDirectory(component);
        }
        catch (PosixException e) when (e.Errno is Errno.ELOOP or Errno.ENOTDIR)
        {
            var what = dir.TryStat(component, out var st) && StMode.IsSymlink(st.Mode) ? "a symlink" : "not a directory";
            throw new UserFacingException($"'{ArchiveText.Shown(path.Value)}' would be written through '{ArchiveText.Shown(sofar.Value)}', which is {what}: refusing to leave the export");
        }
    }

    private unsafe void WriteAll(int fd, Stream content, ExportPath path)
    {
        while (true)
        {
            int n = content.Read(_buffer, 0, _buffer.Length);
            if (n == 0) return;
            fixed (byte* p = _buffer)
            {
                int off = 0;
                while (off < n)
                {
                    nint w = Libc.Write(fd, p + off, (nuint)(n - off));
                    if (w < 0) throw PosixException.Last("write", path.Value);
                    off += (int)w;
                }
            }
        }
    }

    private static unsafe void SetTimes(int fd, DateTimeOffset mtime)
    {
        var times = stackalloc Timespec[2];
        times[0] = times[1] = ToTimespec(mtime);
        if (Libc.Futimens(fd, times) != 0) throw PosixException.Last("futimens");
    }

    private static Timespec ToTimespec(DateTimeOffset t)
    {
        long ticks = (t - DateTimeOffset.UnixEpoch).Ticks;
        return new Timespec { Sec = Math.DivRem(ticks, TimeSpan.TicksPerSecond, out long rem) - (rem < 0 ? 1 : 0), Nsec = ((rem % TimeSpan.TicksPerSecond + TimeSpan.TicksPerSecond) % TimeSpan.TicksPerSecond) * 100 };
    }

    private static string TempName(string name) => $".{name}.rfe-{Environment.ProcessId}-{Random.Shared.Next():x8}";

    public void Dispose()
    {
        _contents?.Dispose();
        _recorder?.Dispose();
        _dirs.Dispose();
        _root.Dispose();
    }
}

/// <summary>
/// Open directories of an export by path, least recently used evicted first. Only the newest handle is
/// returned by Add, and eviction takes the oldest, so a handle a caller just got stays open while it works;
/// a caller holding two at once (a hard link's two directories) duplicates the first.
/// </summary>
internal sealed class DirectoryCache : IDisposable
{
    private const int Capacity = 512;
    private readonly Dictionary<string, LinkedListNode<(string Path, HostDirectory Dir)>> _byPath = new(StringComparer.Ordinal);
    private readonly LinkedList<(string Path, HostDirectory Dir)> _order = new();

    public HostDirectory? Get(string path)
    {
        if (!_byPath.TryGetValue(path, out var node)) return null;
        _order.Remove(node);
        _order.AddFirst(node);
        return node.Value.Dir;
    }

    public HostDirectory Add(string path, HostDirectory dir)
    {
        if (_byPath.Remove(path, out var old)) { _order.Remove(old); old.Value.Dir.Dispose(); }
        while (_byPath.Count >= Capacity)
        {
            var last = _order.Last!;
            _order.RemoveLast();
            _byPath.Remove(last.Value.Path);
            last.Value.Dir.Dispose();
        }
        _byPath[path] = _order.AddFirst((path, dir));
        return dir;
    }

    /// <summary>Closes the handles of a directory and everything below it (it is about to be removed).</summary>
    public void DropUnder(string path)
    {
        foreach (var key in _byPath.Keys.Where(k => k == path || (k.StartsWith(path, StringComparison.Ordinal) && k.Length > path.Length && k[path.Length] == '/')).ToList())
        {
            var node = _byPath[key];
            _byPath.Remove(key);
            _order.Remove(node);
            node.Value.Dir.Dispose();
        }
    }

    public void Dispose()
    {
        foreach (var (_, dir) in _order) dir.Dispose();
        _order.Clear();
        _byPath.Clear();
    }
}
