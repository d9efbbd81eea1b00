using RootfsExport.PseudoDb;

namespace RootfsExport.NineP.Server;

/// <summary>
/// The export's files.db behind one lock, with every row cached by path. We hold pseudo's lock for the
/// server's lifetime, so our own writes are the only changes and the cache stays exact: each write goes to
/// the database first (one transaction), then the affected cache entries are refreshed from it.
/// </summary>
public sealed class OwnershipStore : IDisposable
{
    private readonly FilesDb _db;
    private readonly object _lock = new();
    private readonly Dictionary<string, FileRow> _byPath = new(StringComparer.Ordinal);

    public OwnershipStore(FilesDb db)
    {
        _db = db;
        foreach (var row in db.All()) _byPath.TryAdd(row.Path, row);
    }

    public FileRow? Get(string path)
    {
        lock (_lock) return _byPath.GetValueOrDefault(path);
    }

    /// <summary>Records a new object (and drops stale rows of a reused inode, as FilesDb.PutNew does).</summary>
    public void PutNew(FileRow row)
    {
        lock (_lock)
        {
            var stale = _db.GetByDevIno(row.Dev, row.Ino);
            _db.InTransaction(() => _db.PutNew(row));
            foreach (var s in stale) _byPath.Remove(s.Path);
            _byPath[row.Path] = row;
        }
    }

    /// <summary>Another name for an existing inode.</summary>
    public void PutLink(FileRow row)
    {
        lock (_lock)
        {
            _db.InTransaction(() => _db.PutLink(row));
            _byPath[row.Path] = row;
        }
    }

    /// <summary>chown/chmod/rdev applied to every link of the row's inode (type bits kept).</summary>
    public void UpdateOwnership(FileRow row, uint uid, uint gid, uint mode)
    {
        lock (_lock)
        {
            _db.InTransaction(() => _db.UpdateOwnership(row.Dev, row.Ino, uid, gid, mode));
            foreach (var r in _db.GetByDevIno(row.Dev, row.Ino)) _byPath[r.Path] = r;
        }
    }

    public void DeletePath(string path)
    {
        lock (_lock)
        {
            _db.InTransaction(() => _db.DeletePath(path));
            _byPath.Remove(path);
        }
    }

    public void DeleteTree(string path)
    {
        lock (_lock)
        {
            _db.InTransaction(() => _db.DeleteTree(path));
            foreach (var key in KeysUnder(path)) _byPath.Remove(key);
        }
    }

    /// <summary>A rename: whatever the target held goes first, then the source subtree moves.</summary>
    public void Rename(string oldPath, string newPath, bool targetExisted)
    {
        lock (_lock)
        {
            _db.InTransaction(() =>
            {
                if (targetExisted) _db.DeleteTree(newPath);
                _db.RenameTree(oldPath, newPath);
            });
            if (targetExisted) foreach (var key in KeysUnder(newPath)) _byPath.Remove(key);
            foreach (var key in KeysUnder(oldPath))
            {
                var row = _byPath[key];
                _byPath.Remove(key);
                var moved = row with { Path = newPath + key[oldPath.Length..] };
                _byPath[moved.Path] = moved;
            }
        }
    }

    private List<string> KeysUnder(string path)
    {
        var prefix = path == "/" ? "/" : path + "/";
        return _byPath.Keys.Where(k => k == path || k.StartsWith(prefix, StringComparison.Ordinal)).ToList();
    }

    // ---- xattrs (keyed by the inode, shared by its links) ----

    public byte[]? GetXattr(FileRow row, string name)
    {
        lock (_lock) return _db.GetXattr(row.Dev, row.Ino, name);
    }

    public List<string> ListXattrs(FileRow row)
    {
        lock (_lock) return _db.GetXattrs(row.Dev, row.Ino).Select(x => x.Name).ToList();
    }

    public void SetXattr(FileRow row, string name, byte[] value)
    {
        lock (_lock) _db.InTransaction(() => _db.SetXattr(row.Dev, row.Ino, name, value));
    }

    public bool RemoveXattr(FileRow row, string name)
    {
        lock (_lock) return _db.InTransaction(() => _db.RemoveXattr(row.Dev, row.Ino, name));
    }

    public void Dispose()
    {
        lock (_lock) _db.Dispose();
    }
}
