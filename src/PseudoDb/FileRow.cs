namespace RootfsExport.PseudoDb;

/// <summary>
/// One row of pseudo's files table: the fake ownership of one path. Dev/Ino are the host's real
/// st_dev (glibc makedev encoding) and st_ino (as signed 64-bit); Mode is the full st_mode with type bits;
/// Rdev the fake device number of a device node.
/// </summary>
public sealed record FileRow(string Path, long Dev, long Ino, uint Uid, uint Gid, uint Mode, long Rdev)
{
    public const uint S_IFMT = 0xF000, S_IFDIR = 0x4000, S_IFLNK = 0xA000, S_IFREG = 0x8000,
        S_IFCHR = 0x2000, S_IFBLK = 0x6000, S_IFIFO = 0x1000, S_IFSOCK = 0xC000;

    public uint Type => Mode & S_IFMT;
    public bool IsDirectory => Type == S_IFDIR;
    public bool IsSymlink => Type == S_IFLNK;
    public uint Permissions => Mode & 0xfff;
}

/// <summary>One extended attribute, keyed like pseudo by (dev, ino): shared by all hard links.</summary>
public sealed record XattrRow(long Dev, long Ino, string Name, byte[] Value);
