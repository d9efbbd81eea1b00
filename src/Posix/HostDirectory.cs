using System.Runtime.InteropServices;
using System.Text;
using RootfsExport.Posix.Native;

namespace RootfsExport.Posix;

/// <summary>
/// An open directory on the host, and the only way our code touches objects inside an export:
/// every call takes a single path component and is an *at() call with O_NOFOLLOW / AT_SYMLINK_NOFOLLOW,
/// so no symlink in the tree is ever followed on the host.
/// </summary>
public sealed unsafe class HostDirectory : IDisposable
{
    private int _fd;

    public int Fd => _fd >= 0 ? _fd : throw new ObjectDisposedException(nameof(HostDirectory));

    private HostDirectory(int fd) => _fd = fd;

    /// <summary>Opens an absolute directory path (following symlinks only in this given path, as a user typed it).</summary>
    public static HostDirectory Open(string path)
    {
        int fd = Libc.OpenAt(Libc.AT_FDCWD, path, Libc.O_RDONLY | Libc.O_DIRECTORY | Libc.O_CLOEXEC, 0);
        if (fd < 0) throw PosixException.Last("open directory", path);
        return new HostDirectory(fd);
    }

    /// <summary>Takes ownership of an fd that refers to a directory.</summary>
    public static HostDirectory FromFd(int fd) => new(fd);

    /// <summary>Checks that a name is one path component (no '/', not '.' or '..').</summary>
    public static string CheckName(string name)
    {
        if (name.Length == 0 || name == "." || name == ".." || name.Contains('/') || name.Contains('\0'))
            throw new PosixException(Errno.EINVAL, "bad path component", name);
        return name;
    }

    public HostDirectory OpenDirectory(string name)
    {
        int fd = Libc.OpenAt(Fd, CheckName(name), Libc.O_RDONLY | Libc.O_DIRECTORY | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0);
        if (fd < 0) throw PosixException.Last("open directory", name);
        return new HostDirectory(fd);
    }

    public HostDirectory Duplicate()
    {
        int fd = Libc.Dup(Fd);
        if (fd < 0) throw PosixException.Last("dup");
        return new HostDirectory(fd);
    }

    /// <summary>Opens a non-directory object; O_NOFOLLOW makes a symlink fail with ELOOP.</summary>
    public int OpenFile(string name, int flags, uint mode = 0)
    {
        int fd = Libc.OpenAt(Fd, CheckName(name), flags | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, mode);
        if (fd < 0) throw PosixException.Last("open", name);
        return fd;
    }

    public bool TryStat(string name, out Statx st)
    {
        if (Libc.StatxAt(Fd, CheckName(name), Libc.AT_SYMLINK_NOFOLLOW, Libc.STATX_BASIC_STATS, out st) == 0) return true;
        int e = Marshal.GetLastPInvokeError();
        if (e == Errno.ENOENT || e == Errno.ENOTDIR) return false;
        throw new PosixException(e, "stat", name);
    }

    public Statx Stat(string name)
    {
        if (Libc.StatxAt(Fd, CheckName(name), Libc.AT_SYMLINK_NOFOLLOW, Libc.STATX_BASIC_STATS, out var st) != 0)
            throw PosixException.Last("stat", name);
        return st;
    }

    public Statx StatSelf()
    {
        if (Libc.StatxAt(Fd, "", Libc.AT_EMPTY_PATH | Libc.AT_SYMLINK_NOFOLLOW, Libc.STATX_BASIC_STATS, out var st) != 0)
            throw PosixException.Last("stat");
        return st;
    }

    public static Statx StatFd(int fd)
    {
        if (Libc.StatxAt(fd, "", Libc.AT_EMPTY_PATH | Libc.AT_SYMLINK_NOFOLLOW, Libc.STATX_BASIC_STATS, out var st) != 0)
            throw PosixException.Last("stat");
        return st;
    }

    public void CreateDirectory(string name, uint mode)
    {
        if (Libc.MkdirAt(Fd, CheckName(name), mode) != 0) throw PosixException.Last("mkdir", name);
    }

    public void CreateFifo(string name, uint mode)
    {
        if (Libc.MknodAt(Fd, CheckName(name), Libc.S_IFIFO | (mode & 0xfff), 0) != 0) throw PosixException.Last("mkfifo", name);
    }

    public void CreateSymlink(string name, string target)
    {
        if (Libc.SymlinkAt(target, Fd, CheckName(name)) != 0) throw PosixException.Last("symlink", name);
    }

    /// <summary>Hard link: both ends are relative to directories we hold, never following symlinks.</summary>
    public static void Link(HostDirectory fromDir, string fromName, HostDirectory toDir, string toName)
    {
        if (Libc.LinkAt(fromDir.Fd, CheckName(fromName), toDir.Fd, CheckName(toName), 0) != 0)
            throw PosixException.Last("link", toName);
    }

    public static void Rename(HostDirectory fromDir, string fromName, HostDirectory toDir, string toName, uint flags = 0)
    {
        if (Libc.RenameAt2(fromDir.Fd, CheckName(fromName), toDir.Fd, CheckName(toName), flags) != 0)
            throw PosixException.Last("rename", toName);
    }

    public string ReadLink(string name)
    {
        var buf = new byte[4096];
        fixed (byte* p = buf)
        {
            nint n = Libc.ReadlinkAt(Fd, CheckName(name), p, (nuint)buf.Length);
            if (n < 0) throw PosixException.Last("readlink", name);
            return FileName.Decode(buf.AsSpan(0, (int)n));
        }
    }

    public void Unlink(string name, bool directory = false)
    {
        if (Libc.UnlinkAt(Fd, CheckName(name), directory ? Libc.AT_REMOVEDIR : 0) != 0)
            throw PosixException.Last(directory ? "rmdir" : "unlink", name);
    }

    /// <summary>chmod without following symlinks (symlinks have no mode of their own on Linux).</summary>
    public void Chmod(string name, uint mode)
    {
        if (Libc.FchmodAt(Fd, CheckName(name), mode & 0xfff, 0) != 0) throw PosixException.Last("chmod", name);
    }

    public void ChmodSelf(uint mode)
    {
        if (Libc.Fchmod(Fd, mode & 0xfff) != 0) throw PosixException.Last("chmod");
    }

    public void SetTimes(string name, Timespec atime, Timespec mtime)
    {
        var times = stackalloc Timespec[2];
        times[0] = atime;
        times[1] = mtime;
        if (Libc.UtimensAt(Fd, CheckName(name), times, Libc.AT_SYMLINK_NOFOLLOW) != 0) throw PosixException.Last("utimensat", name);
    }

    public void SetTimesSelf(Timespec atime, Timespec mtime)
    {
        var times = stackalloc Timespec[2];
        times[0] = atime;
        times[1] = mtime;
        if (Libc.Futimens(Fd, times) != 0) throw PosixException.Last("futimens");
    }

    /// <summary>Entries of this directory (without '.' and '..'), read through a dup of the fd.</summary>
    public List<DirectoryEntry> ReadEntries()
    {
        int fd = Libc.Dup(Fd);
        if (fd < 0) throw PosixException.Last("dup");
        nint dir = Libc.Fdopendir(fd);
        if (dir == 0) { Libc.Close(fd); throw PosixException.Last("fdopendir"); }
        try
        {
            Libc.Rewinddir(dir);
            var result = new List<DirectoryEntry>();
            while (true)
            {
                Marshal.SetLastPInvokeError(0);
                byte* ent = Libc.Readdir(dir);
                if (ent == null)
                {
                    int e = Marshal.GetLastPInvokeError();
                    if (e != 0) throw new PosixException(e, "readdir", null);
                    break;
                }
                // struct dirent64: d_ino u64 @0, d_off s64 @8, d_reclen u16 @16, d_type u8 @18, d_name @19
                ulong ino = *(ulong*)ent;
                long off = *(long*)(ent + 8);
                byte type = ent[18];
                var name = FileName.Decode(MemoryMarshal.CreateReadOnlySpanFromNullTerminated(ent + 19)); // bytes kept: see FileName
                if (name is "." or "..") continue;
                result.Add(new DirectoryEntry(name, ino, type, off));
            }
            return result;
        }
        finally
        {
            Libc.Closedir(dir);
        }
    }

    // ---- confined multi-component access (issue #18): for commands that read what the board wrote ----

    /// <summary>
    /// openat2 of a relative path ("lib/modules/6.6/kernel/x.ko") with RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS:
    /// the kernel refuses any symlink on the way and anything outside this directory. -1 and errno on failure.
    /// </summary>
    public int TryOpenBeneath(string relativePath, int flags)
    {
        var rel = relativePath.TrimStart('/');
        return Libc.OpenAt2(Fd, rel.Length == 0 ? "." : rel, flags | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0,
            Libc.RESOLVE_BENEATH | Libc.RESOLVE_NO_SYMLINKS | Libc.RESOLVE_NO_MAGICLINKS);
    }

    public HostDirectory OpenDirectoryBeneath(string relativePath)
    {
        int fd = TryOpenBeneath(relativePath, Libc.O_RDONLY | Libc.O_DIRECTORY);
        if (fd < 0) throw PosixException.Last("open directory", relativePath);
        return new HostDirectory(fd);
    }

    /// <summary>
    /// The whole content of a regular file below this directory (no symlink followed anywhere on the way;
    /// O_NONBLOCK so a FIFO put there cannot block us; anything but a regular file is refused).
    /// </summary>
    public byte[] ReadFileBeneath(string relativePath, long maxBytes = 1L << 30)
    {
        int fd = TryOpenBeneath(relativePath, Libc.O_RDONLY | Libc.O_NONBLOCK);
        if (fd < 0) throw PosixException.Last("open", relativePath);
        using var handle = new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true);
        var st = StatFd(fd);
        if (!StMode.IsRegular(st.Mode)) throw new PosixException(Errno.EINVAL, "read (not a regular file)", relativePath);
        if ((long)st.Size > maxBytes) throw new PosixException(Errno.EFBIG, "read", relativePath);
        using var fs = new FileStream(handle, FileAccess.Read, 1 << 16);
        var ms = new MemoryStream();
        fs.CopyTo(ms);
        return ms.ToArray();
    }

    // ---- tree removal (issue #18): linear in the tree, one directory fd at a time, deeper than PATH_MAX ----

    /// <summary>This directory's parent ("..", the one name CheckName refuses), for walking back up a tree.</summary>
    public HostDirectory OpenUp()
    {
        int fd = Libc.OpenAt(Fd, "..", Libc.O_RDONLY | Libc.O_DIRECTORY | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0);
        if (fd < 0) throw PosixException.Last("open directory", "..");
        return new HostDirectory(fd);
    }

    private sealed record RemovalLevel(string Name, ulong Dev, ulong Ino, Queue<string> Subdirectories);

    /// <summary>
    /// rm -rf of one entry of this directory: never follows a symlink, copes with the modes an export leaves
    /// on disk, and holds one directory fd however deep the tree is (it climbs back with "..", checked against
    /// the inode it came from, so a directory moved meanwhile stops the removal instead of misleading it).
    /// </summary>
    public void RemoveTree(string name)
    {
        if (!TryStat(name, out var st)) return;
        if (!StMode.IsDirectory(st.Mode)) { Unlink(name); return; }
        var levels = new List<RemovalLevel>();
        var current = OpenForRemoval(this, name, st, levels);
        try
        {
            while (true)
            {
                var top = levels[^1];
                if (top.Subdirectories.TryDequeue(out var sub))
                {
                    if (!current.TryStat(sub, out var subSt)) continue;
                    if (!StMode.IsDirectory(subSt.Mode)) { current.Unlink(sub); continue; }
                    var child = OpenForRemoval(current, sub, subSt, levels);
                    current.Dispose();
                    current = child;
                    continue;
                }
                levels.RemoveAt(levels.Count - 1);
                if (levels.Count == 0) break;
                var up = current.OpenUp();
                var upSt = up.StatSelf();
                current.Dispose();
                current = up;
                if (upSt.Ino != levels[^1].Ino || Libc.MakeDev(upSt.DevMajor, upSt.DevMinor) != (long)levels[^1].Dev)
                    throw new PosixException(Errno.EBUSY, "remove (a directory was moved while it was being removed)", top.Name);
                current.Unlink(top.Name, directory: true);
            }
        }
        finally
        {
            current.Dispose();
        }
        Unlink(name, directory: true);
    }

    private sealed record WalkLevel(string Path, ulong Dev, ulong Ino, Queue<string> Subdirectories);

    /// <summary>
    /// Every object below this directory, parents before children, symlinks not followed: visit gets the path
    /// relative to here and the object's stat, and says whether to descend into a directory. Holds one
    /// directory fd however deep the tree is (back up with "..", checked against the inode it came from), and
    /// builds each path once from its parent's, so the walk is linear in the paths it reports.
    /// </summary>
    public void Walk(Func<string, Statx, bool> visit)
    {
        var levels = new List<WalkLevel>();
        var current = Duplicate();
        try
        {
            EnterForWalk(current, "", StatSelf(), visit, levels);
            while (levels.Count > 0)
            {
                var top = levels[^1];
                if (top.Subdirectories.TryDequeue(out var sub))
                {
                    if (current.TryOpenDirectory(sub) is not { } child) continue; // gone or replaced meanwhile
                    current.Dispose();
                    current = child;
                    EnterForWalk(current, top.Path.Length == 0 ? sub : top.Path + "/" + sub, current.StatSelf(), visit, levels);
                    continue;
                }
                levels.RemoveAt(levels.Count - 1);
                if (levels.Count == 0) break;
                var up = current.OpenUp();
                current.Dispose();
                current = up;
                var upSt = current.StatSelf();
                if (upSt.Ino != levels[^1].Ino || (ulong)upSt.Dev() != levels[^1].Dev)
                    throw new PosixException(Errno.EBUSY, "walk (a directory was moved while it was being read)", top.Path);
            }
        }
        finally
        {
            current.Dispose();
        }
    }

    private static void EnterForWalk(HostDirectory dir, string path, in Statx self, Func<string, Statx, bool> visit, List<WalkLevel> levels)
    {
        var subdirectories = new Queue<string>();
        foreach (var e in dir.ReadEntries())
        {
            if (!dir.TryStat(e.Name, out var st)) continue;
            if (visit(path.Length == 0 ? e.Name : path + "/" + e.Name, st) && StMode.IsDirectory(st.Mode)) subdirectories.Enqueue(e.Name);
        }
        levels.Add(new WalkLevel(path, (ulong)self.Dev(), self.Ino, subdirectories));
    }

    /// <summary>OpenDirectory, or null when the name is gone or is no longer a directory (a symlink now, say).</summary>
    public HostDirectory? TryOpenDirectory(string name)
    {
        int fd = Libc.OpenAt(Fd, CheckName(name), Libc.O_RDONLY | Libc.O_DIRECTORY | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0);
        if (fd >= 0) return new HostDirectory(fd);
        int e = Marshal.GetLastPInvokeError();
        if (e is Errno.ENOENT or Errno.ENOTDIR or Errno.ELOOP) return null;
        throw new PosixException(e, "open directory", name);
    }

    /// <summary>Opens a directory to empty it (making it ours to search and change first), unlinks its non-directories.</summary>
    private static HostDirectory OpenForRemoval(HostDirectory parent, string name, in Statx st, List<RemovalLevel> levels)
    {
        if ((st.Mode & 0x1c0) != 0x1c0) parent.Chmod(name, st.Mode | 0x1c0u);
        var dir = parent.OpenDirectory(name);
        var subdirectories = new Queue<string>();
        try
        {
            foreach (var e in dir.ReadEntries())
            {
                if (e.Type == 4 /* DT_DIR */ || (e.Type == 0 && dir.TryStat(e.Name, out var es) && StMode.IsDirectory(es.Mode)))
                    subdirectories.Enqueue(e.Name);
                else dir.Unlink(e.Name);
            }
        }
        catch
        {
            dir.Dispose();
            throw;
        }
        levels.Add(new RemovalLevel(name, (ulong)Libc.MakeDev(st.DevMajor, st.DevMinor), st.Ino, subdirectories));
        return dir;
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) Libc.Close(fd);
    }
}

/// <summary>One readdir entry; Type is the DT_* value, Offset the cookie to resume after it.</summary>
public readonly record struct DirectoryEntry(string Name, ulong Ino, byte Type, long Offset);

/// <summary>st_mode helpers.</summary>
public static class StMode
{
    public static uint Type(uint mode) => mode & Libc.S_IFMT;
    public static bool IsDirectory(uint mode) => Type(mode) == Libc.S_IFDIR;
    public static bool IsSymlink(uint mode) => Type(mode) == Libc.S_IFLNK;
    public static bool IsRegular(uint mode) => Type(mode) == Libc.S_IFREG;
    public static bool IsDevice(uint mode) => Type(mode) is Libc.S_IFCHR or Libc.S_IFBLK;

    /// <summary>
    /// The placeholder rule (pseudo's): what stands on disk for a recorded object. An ordinary user cannot
    /// mknod devices or bind sockets in an export, so those are empty regular files; the row keeps the type.
    /// </summary>
    public static uint OnDiskType(uint recordedMode) =>
        Type(recordedMode) is Libc.S_IFCHR or Libc.S_IFBLK or Libc.S_IFSOCK ? Libc.S_IFREG : Type(recordedMode);

    /// <summary>Whether the object on disk is what a row with recordedMode stands for (itself, or its placeholder).</summary>
    public static bool Stands(uint recordedMode, uint diskMode) =>
        Type(recordedMode) == Type(diskMode) || OnDiskType(recordedMode) == Type(diskMode);

    /// <summary>
    /// What an unprivileged export keeps on disk (pseudo's PSEUDO_FS_MODE): owner can always read and write
    /// (and search directories); no setuid/setgid, no group/other write. The full mode lives in the DB.
    /// </summary>
    public static uint OnDisk(uint mode, bool isDirectory)
    {
        uint perm = mode & 0x1ff & ~0x12u; // drop g+w, o+w
        perm |= 0x180; // u+rw
        if (isDirectory) perm |= 0x40; // u+x
        return perm | (mode & 0x200 & (isDirectory ? 0x200u : 0u)); // keep sticky on directories only
    }
}

/// <summary>Conversions from statx to the values pseudo keys its rows with.</summary>
public static class StatxExtensions
{
    public static long Dev(this in Statx st) => Libc.MakeDev(st.DevMajor, st.DevMinor);
    public static long Rdev(this in Statx st) => Libc.MakeDev(st.RdevMajor, st.RdevMinor);
    /// <summary>pseudo stores st_ino as signed 64-bit.</summary>
    public static long InoSigned(this in Statx st) => unchecked((long)st.Ino);
}
