namespace RootfsExport.PseudoDb;

/// <summary>
/// pseudo's row semantics, once: what a change of the export does to files.db. Paths are absolute DB paths;
/// ownership and xattrs belong to the inode (dev/ino), so every link of it shares them. Implemented over files.db
/// in one transaction (<see cref="FilesDbStore"/>) and, for the 9P server, as a cache in front of that.
/// </summary>
public interface IOwnershipStore
{
    /// <summary>The row of a path, or null.</summary>
    FileRow? Get(string path);

    /// <summary>A row of the inode under any of its names (its first recorded one), or null.</summary>
    FileRow? ByInode(long dev, long ino);

    /// <summary>
    /// Records a newly created object: replaces any row of this path, and drops the stale rows (and xattrs) of a
    /// reused inode, which pseudo aborts clients on.
    /// </summary>
    void PutNew(FileRow row);

    /// <summary>Records another name of an existing inode (a hard link): same dev/ino, own path.</summary>
    void PutLink(FileRow row);

    /// <summary>chown/chmod as pseudo applies them: to every link of the row's inode; type bits are kept.</summary>
    void UpdateOwnership(FileRow row, uint uid, uint gid, uint mode);

    /// <summary>Removes one name; the inode's xattrs go with its last name.</summary>
    void DeletePath(string path);

    /// <summary>Removes a path and everything recorded under it.</summary>
    void DeleteTree(string path);

    /// <summary>A rename: whatever the target held goes first (when it existed), then the source subtree moves.</summary>
    void Rename(string oldPath, string newPath, bool targetExisted);

    byte[]? GetXattr(FileRow row, string name);

    List<string> ListXattrs(FileRow row);

    void SetXattr(FileRow row, string name, byte[] value);

    /// <summary>Removes one xattr of the row's inode; false when it had none of that name.</summary>
    bool RemoveXattr(FileRow row, string name);

    /// <summary>Makes everything done so far durable in files.db.</summary>
    void Commit();
}
