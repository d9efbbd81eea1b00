using System.Collections.Concurrent;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportServing;

/// <summary>
/// The export's files.db with every row cached by path. We hold pseudo's lock for the server's lifetime, so
/// our writes are the only changes: the cache is updated at once and answers all ownership reads, while the
/// database writes run in order on one writer thread that groups them into transactions (one commit per
/// burst instead of one fsync per file). <see cref="Dispose"/> commits what is queued.
/// </summary>
public sealed class OwnershipStore : IOwnershipStore, IDisposable
{
    private readonly FilesDb _db;
    // the writer thread's view of files.db: the same row semantics, one transaction per burst
    private readonly FilesDbStore _sql;
    private readonly object _lock = new();
    // Rows by key: a path inside the export root (once KeyByRoot set one) is keyed by its path relative to it ("" = the
    // root), so the export's absolute path is not repeated in 100,000 keys, a 9P request looks its row up by the
    // fid's relative path without building the absolute one, and fids share the key string as their path
    // (Intern). Other paths (no root, or a row outside it) keep their absolute path, which starts with '/' where a
    // relative key never does. FileRow.Path stays the absolute DB path.
    private readonly Dictionary<string, FileRow> _byPath = new(StringComparer.Ordinal);
    private readonly Dictionary<string, FileRow>.AlternateLookup<ReadOnlySpan<char>> _bySpan;
    private string? _root;
    // every path of an inode: a create checks for stale rows of a reused inode and a chown reaches all links,
    // without scanning every row of the export (a 10,000-entry rootfs made each create a 10,000-row scan)
    private readonly InodeIndex _byInode = new();
    // Alone: runs between two transactions, with none of ours open (a host-side change through another connection)
    private readonly BlockingCollection<(Action Op, bool Alone)> _queue = new();
    private readonly Thread _writer;
    private readonly Action<string>? _log;
    // Inodes we recorded with PutNew (which drops whatever xattrs a reused inode had) and set none on since:
    // their xattr reads (v9fs asks for security.capability before every write) are answered here instead of
    // waiting behind the writer's queue and commit.
    private readonly HashSet<(long Dev, long Ino)> _noXattrs = new();

    public OwnershipStore(FilesDb db, Action<string>? log = null)
    {
        _db = db;
        _sql = new FilesDbStore(db);
        _log = log;
        _bySpan = _byPath.GetAlternateLookup<ReadOnlySpan<char>>();
        LoadRows();
        _writer = new Thread(WriterLoop) { IsBackground = true, Name = "files.db writer" };
        _writer.Start();
    }

    /// <summary>
    /// How long a transaction stays open for more work after its first write. A board creates a file every
    /// 10-20 ms (the emulated guest) or faster; a commit is two fsyncs and a journal file created and removed,
    /// so committing whenever the queue fell idle for a moment cost one commit per file. Our cache answers
    /// every read meanwhile, so the delay only widens what a crash of this process could lose.
    /// </summary>
    public const int CommitWindowMs = 200;

    private void WriterLoop()
    {
        foreach (var first in _queue.GetConsumingEnumerable())
        {
            if (first.Alone) { Run(first.Op); continue; }
            Action? alone = null;
            Run(first.Op);
            long until = Environment.TickCount64 + CommitWindowMs;
            for (int n = 0; n < 5000; n++)
            {
                long left = until - Environment.TickCount64;
                if (left <= 0 || !_queue.TryTake(out var next, (int)left)) break;
                if (next.Alone) { alone = next.Op; break; } // commit first: it must see every write before it
                Run(next.Op);
            }
            _sql.Commit();
            if (alone != null) Run(alone);
        }
    }

    private void Enqueue(Action op) => _queue.Add((op, false));

    /// <summary>
    /// Runs a change another writer makes to files.db and the export (a feed update, under the pseudo lock this
    /// process holds) with everything queued before it committed and nothing of ours in flight, then reloads every
    /// row, so the cache answers with what that change wrote. The caller keeps new requests out meanwhile.
    /// </summary>
    public T Exclusive<T>(Func<T> change)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        _queue.Add((() =>
        {
            T result;
            try { result = change(); }
            catch (Exception e)
            {
                LoadRows(); // a failed change may have applied part of its work: the rows on disk are the truth
                done.SetException(e);
                return;
            }
            LoadRows();
            done.SetResult(result);
        }, true));
        return done.Task.GetAwaiter().GetResult();
    }

    private void LoadRows()
    {
        lock (_lock)
        {
            _byPath.Clear();
            _byInode.Clear();
            _noXattrs.Clear();
            var rows = _db.All();
            _byPath.EnsureCapacity(rows.Count); // grown by doubling, every old array was large-object garbage
            foreach (var row in rows) if (_byPath.TryAdd(KeyString(row.Path), row)) Index(row);
        }
    }

    private void Run(Action op)
    {
        try { op(); }
        catch (Exception e) { _log?.Invoke($"files.db: write failed: {e.Message}"); }
    }

    /// <summary>Runs a database read after every queued write, and returns its result.</summary>
    private T Query<T>(Func<T> query)
    {
        var done = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        Enqueue(() =>
        {
            try { done.SetResult(query()); }
            catch (Exception e) { done.SetException(e); }
        });
        return done.Task.GetAwaiter().GetResult();
    }

    public FileRow? Get(string path)
    {
        lock (_lock) return _bySpan.TryGetValue(Key(path), out var row) ? row : null;
    }

    /// <summary>
    /// From now on, keys paths inside root (canonical, absolute) relative to it; false when another root is set
    /// already (the store then serves that root's paths by their absolute paths as before).
    /// </summary>
    public bool KeyByRoot(string root)
    {
        lock (_lock)
        {
            if (_root != null) return _root == root;
            var rows = _byPath.Values.ToList();
            _root = root;
            _byPath.Clear();
            foreach (var row in rows) _byPath[KeyString(row.Path)] = row;
            return true;
        }
    }

    /// <summary>The row of a path relative to the root given to <see cref="KeyByRoot"/> ("" = the root), without allocating.</summary>
    public FileRow? GetRelative(ReadOnlySpan<char> rel)
    {
        lock (_lock) return _bySpan.TryGetValue(rel, out var row) ? row : null;
    }

    /// <summary>The store's own string for the relative path rel when it has a row for it, else rel: the many fids on one path share one string.</summary>
    public string Intern(string rel)
    {
        lock (_lock) return _root != null && _bySpan.TryGetValue(rel.AsSpan(), out var key, out _) ? key : rel;
    }

    // ---- keys (callers hold _lock, or run before the writer starts) ----

    /// <summary>The key of an absolute DB path: relative when inside the root, the path itself otherwise.</summary>
    private ReadOnlySpan<char> Key(string path)
    {
        var root = _root;
        if (root is null || !path.StartsWith(root, StringComparison.Ordinal)) return path;
        if (path.Length == root.Length) return "";
        if (root == "/") return path.AsSpan(1);
        return path[root.Length] == '/' ? path.AsSpan(root.Length + 1) : path;
    }

    private string KeyString(string path)
    {
        var key = Key(path);
        return key.Length == path.Length ? path : key.ToString();
    }

    /// <summary>A row of the inode under any of its names (an open file whose own name went may have other links).</summary>
    public FileRow? ByInode(long dev, long ino)
    {
        lock (_lock) return _byInode.First(dev, ino) is { } path ? _bySpan[Key(path)] : null;
    }

    // ---- the cache and its inode index change together (callers hold _lock) ----

    private void Index(FileRow row) => _byInode.Add(row.Dev, row.Ino, row.Path);

    private void Set(FileRow row)
    {
        if (_bySpan.TryGetValue(Key(row.Path), out var old)) Unindex(old);
        _bySpan[Key(row.Path)] = row;
        Index(row);
    }

    private void Remove(string path)
    {
        if (_bySpan.Remove(Key(path), out _, out var old)) Unindex(old);
    }

    private void Unindex(FileRow row) => _byInode.Remove(row.Dev, row.Ino, row.Path);

    private List<FileRow> RowsOf(long dev, long ino) => _byInode.All(dev, ino).ConvertAll(p => _bySpan[Key(p)]);

    /// <summary>Records a new object (and drops stale rows of a reused inode, as FilesDb.PutNew does).</summary>
    public void PutNew(FileRow row)
    {
        lock (_lock)
        {
            foreach (var stale in RowsOf(row.Dev, row.Ino).Where(r => r.Path != row.Path)) Remove(stale.Path);
            Set(row);
            _noXattrs.Add((row.Dev, row.Ino));
            Enqueue(() => _sql.PutNew(row));
        }
    }

    /// <summary>Another name for an existing inode.</summary>
    public void PutLink(FileRow row)
    {
        lock (_lock)
        {
            Set(row);
            Enqueue(() => _sql.PutLink(row));
        }
    }

    /// <summary>chown/chmod applied to every link of the row's inode (type bits kept).</summary>
    public void UpdateOwnership(FileRow row, uint uid, uint gid, uint mode)
    {
        lock (_lock)
        {
            foreach (var link in RowsOf(row.Dev, row.Ino)) // same paths, same inode: the index stays as it is
                _bySpan[Key(link.Path)] = link with { Uid = uid, Gid = gid, Mode = (link.Mode & FileRow.S_IFMT) | (mode & 0xfff) };
            Enqueue(() => _sql.UpdateOwnership(row, uid, gid, mode));
        }
    }

    public void DeletePath(string path)
    {
        lock (_lock)
        {
            Remove(path);
            Enqueue(() => _sql.DeletePath(path));
        }
    }

    public void DeleteTree(string path)
    {
        lock (_lock)
        {
            foreach (var key in KeysUnder(path)) Remove(key);
            Enqueue(() => _sql.DeleteTree(path));
        }
    }

    /// <summary>A rename: whatever the target held goes first, then the source subtree moves.</summary>
    public void Rename(string oldPath, string newPath, bool targetExisted)
    {
        lock (_lock)
        {
            if (targetExisted) foreach (var key in KeysUnder(newPath)) Remove(key);
            foreach (var path in KeysUnder(oldPath))
            {
                var row = _bySpan[Key(path)];
                Remove(path);
                Set(row with { Path = newPath + path[oldPath.Length..] });
            }
            Enqueue(() => _sql.Rename(oldPath, newPath, targetExisted));
        }
    }

    /// <summary>The absolute paths of the rows at path or below it.</summary>
    private List<string> KeysUnder(string path)
    {
        var prefix = path == "/" ? "/" : path + "/";
        return _byPath.Values.Select(r => r.Path).Where(k => k == path || k.StartsWith(prefix, StringComparison.Ordinal)).ToList();
    }

    // ---- xattrs (keyed by the inode, shared by its links; read through the writer so they see every write) ----

    private bool HasNoXattrs(FileRow row)
    {
        lock (_lock) return _noXattrs.Contains((row.Dev, row.Ino));
    }

    public byte[]? GetXattr(FileRow row, string name) => HasNoXattrs(row) ? null : Query(() => _sql.GetXattr(row, name));

    public List<string> ListXattrs(FileRow row) =>
        HasNoXattrs(row) ? [] : Query(() => _sql.ListXattrs(row));

    public void SetXattr(FileRow row, string name, byte[] value)
    {
        lock (_lock)
        {
            _noXattrs.Remove((row.Dev, row.Ino));
            Enqueue(() => _sql.SetXattr(row, name, value));
        }
    }

    public bool RemoveXattr(FileRow row, string name) => !HasNoXattrs(row) && Query(() => _sql.RemoveXattr(row, name));

    /// <summary>Returns once everything queued before it is committed to files.db.</summary>
    public void Commit()
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        _queue.Add((() => done.SetResult(), true));
        done.Task.GetAwaiter().GetResult();
    }

    /// <summary>Commits everything queued and closes the database.</summary>
    public void Dispose()
    {
        if (_queue.IsAddingCompleted) return;
        _queue.CompleteAdding();
        _writer.Join();
        _sql.Dispose();
        _db.Dispose();
        _queue.Dispose();
    }
}
