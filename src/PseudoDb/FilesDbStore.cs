namespace RootfsExport.PseudoDb;

/// <summary>
/// <see cref="IOwnershipStore"/> straight over files.db: the first call opens a transaction, <see cref="Commit"/>
/// ends it, and <see cref="Dispose"/> rolls back whatever was not committed, so a failed change leaves files.db
/// as it was. Reads inside the transaction see its own writes.
/// </summary>
public sealed class FilesDbStore(FilesDb db) : IOwnershipStore, IDisposable
{
    private FilesDb.Transaction? _tx;

    public FilesDb Db => db;

    private FilesDb Open()
    {
        _tx ??= db.BeginTransaction();
        return db;
    }

    public FileRow? Get(string path) => Open().GetByPath(path);

    public FileRow? ByInode(long dev, long ino) => Open().GetByDevIno(dev, ino).FirstOrDefault();

    public void PutNew(FileRow row) => Open().PutNew(row);

    public void PutLink(FileRow row) => Open().PutLink(row);

    public void UpdateOwnership(FileRow row, uint uid, uint gid, uint mode) => Open().UpdateOwnership(row.Dev, row.Ino, uid, gid, mode);

    public void DeletePath(string path) => Open().DeletePath(path);

    public void DeleteTree(string path) => Open().DeleteTree(path);

    public void Rename(string oldPath, string newPath, bool targetExisted)
    {
        Open();
        if (targetExisted) db.DeleteTree(newPath);
        db.RenameTree(oldPath, newPath);
    }

    public byte[]? GetXattr(FileRow row, string name) => Open().GetXattr(row.Dev, row.Ino, name);

    public List<string> ListXattrs(FileRow row) => Open().GetXattrs(row.Dev, row.Ino).Select(x => x.Name).ToList();

    public void SetXattr(FileRow row, string name, byte[] value) => Open().SetXattr(row.Dev, row.Ino, name, value);

    public bool RemoveXattr(FileRow row, string name) => Open().RemoveXattr(row.Dev, row.Ino, name);

    public void Commit()
    {
        var tx = _tx;
        _tx = null;
        tx?.Commit();
    }

    /// <summary>Rolls back what was not committed; the database stays open (its owner closes it).</summary>
    public void Dispose()
    {
        var tx = _tx;
        _tx = null;
        tx?.Dispose();
    }
}
