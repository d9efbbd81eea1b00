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
    private readonly Dictionary<string, FileRow> _byPath = new(StringComparer.Ordinal);
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
            foreach (var row in _db.All()) if (_byPath.TryAdd(row.Path, row)) Index(row);
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
        lock (_lock) return _byPath.GetValueOrDefault(path);
    }

    /// <summary>A row of the inode under any of its names (an open file whose own name went may have other links).</summary>
    public FileRow? ByInode(long dev, long ino)
    {
        lock (_lock) return _byInode.First(dev, ino) is { } path ? _byPath[path] : null;
    }

    // ---- the cache and its inode index change together (callers hold _lock) ----

    private void Index(FileRow row) => _byInode.Add(row.Dev, row.Ino, row.Path);

    private void Set(FileRow row)
    {
        if (_byPath.TryGetValue(row.Path, out var old)) Unindex(old);
        _byPath[row.Path] = row;
        Index(row);
    }

    private void Remove(string path)
    {
        if (_byPath.Remove(path, out var old)) Unindex(old);
    }

    private void Unindex(FileRow row) => _byInode.Remove(row.Dev, row.Ino, row.Path);

    private List<FileRow> RowsOf(long dev, long ino) => _byInode.All(dev, ino).ConvertAll(p => _byPath[p]);

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
                _byPath[link.Path] = link with { Uid = uid, Gid = gid, Mode = (link.Mode & FileRow.S_IFMT) | (mode & 0xfff) };
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
            foreach (var key in KeysUnder(oldPath))
            {
                var row = _byPath[key];
                Remove(key);
                Set(row with { Path = newPath + key[oldPath.Length..] });
            }
            Enqueue(() => _sql.Rename(oldPath, newPath, targetExisted));
        }
    }

    private List<string> KeysUnder(string path)
    {
        var prefix = path == "/" ? "/" : path + "/";
        return _byPath.Keys.Where(k => k == path || k.StartsWith(prefix, StringComparison.Ordinal)).ToList();
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
