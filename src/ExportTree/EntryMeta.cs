namespace RootfsExport.ExportTree;

/// <summary>
/// The ownership of one object as the target sees it: numeric uid/gid, full permission bits
/// (setuid/setgid/sticky included), device number for device nodes, modification time and xattrs.
/// </summary>
public sealed record EntryMeta(uint Uid, uint Gid, uint Permissions, long Rdev = 0, DateTimeOffset? Mtime = null,
    IReadOnlyDictionary<string, byte[]>? Xattrs = null)
{
    public static EntryMeta Root(uint permissions) => new(0, 0, permissions);
}

/// <summary>What kind of object an entry creates.</summary>
public enum EntryKind { Directory, Regular, Symlink, HardLink, CharDevice, BlockDevice, Fifo, Socket }
