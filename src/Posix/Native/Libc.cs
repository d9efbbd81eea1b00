using System.Runtime.InteropServices;

namespace RootfsExport.Posix.Native;

// The one interop file: libc calls .NET does not offer. Everything that touches the export goes through
// *at() calls relative to a directory fd with O_NOFOLLOW, so a symlink inside the export can never lead
// us to the host's files. Layouts used here (statx, flock, dirent64) are the Linux 64-bit ones.

[StructLayout(LayoutKind.Sequential)]
public struct StatxTimestamp
{
    public long Sec;
    public uint Nsec;
    public int Reserved;
}

/// <summary>struct statx: one layout on every Linux architecture, unlike struct stat.</summary>
[StructLayout(LayoutKind.Sequential, Size = 256)]
public struct Statx
{
    public uint Mask;
    public uint BlkSize;
    public ulong Attributes;
    public uint Nlink;
    public uint Uid;
    public uint Gid;
    public ushort Mode;
    public ushort Spare0;
    public ulong Ino;
    public ulong Size;
    public ulong Blocks;
    public ulong AttributesMask;
    public StatxTimestamp Atime;
    public StatxTimestamp Btime;
    public StatxTimestamp Ctime;
    public StatxTimestamp Mtime;
    public uint RdevMajor;
    public uint RdevMinor;
    public uint DevMajor;
    public uint DevMinor;
}

[StructLayout(LayoutKind.Sequential)]
public struct Flock
{
    public short Type;
    public short Whence;
    public long Start;
    public long Len;
    public int Pid;
}

[StructLayout(LayoutKind.Sequential)]
public struct Timespec
{
    public long Sec;
    public long Nsec;
}

[StructLayout(LayoutKind.Sequential)]
public unsafe struct StatFs
{
    public long Type;
    public long Bsize;
    public ulong Blocks;
    public ulong Bfree;
    public ulong Bavail;
    public ulong Files;
    public ulong Ffree;
    public ulong Fsid;
    public long Namelen;
    public long Frsize;
    public long Flags;
    public fixed long Spare[4];
}

public static unsafe partial class Libc
{
    private const string Lib = "libc";

    public const int AT_FDCWD = -100;
    public const int AT_SYMLINK_NOFOLLOW = 0x100;
    public const int AT_REMOVEDIR = 0x200;
    public const int AT_SYMLINK_FOLLOW = 0x400;
    public const int AT_EMPTY_PATH = 0x1000;
    public const int AT_STATX_SYNC_AS_STAT = 0;
    public const uint STATX_BASIC_STATS = 0x7ff;

    public const int O_RDONLY = 0, O_WRONLY = 1, O_RDWR = 2, O_ACCMODE = 3;
    public const int O_CREAT = 0x40, O_EXCL = 0x80, O_NOCTTY = 0x100, O_TRUNC = 0x200, O_APPEND = 0x400;
    public const int O_NONBLOCK = 0x800, O_DIRECTORY = 0x10000, O_NOFOLLOW = 0x20000, O_CLOEXEC = 0x80000;
    public const int O_PATH = 0x200000;
    public const int O_DSYNC = 0x1000, O_SYNC = 0x101000, O_LARGEFILE = 0;

    public const int RENAME_NOREPLACE = 1, RENAME_EXCHANGE = 2;

    public const int F_GETLK = 5, F_SETLK = 6, F_SETLKW = 7;
    public const short F_RDLCK = 0, F_WRLCK = 1, F_UNLCK = 2;

    public const uint S_IFMT = 0xF000, S_IFSOCK = 0xC000, S_IFLNK = 0xA000, S_IFREG = 0x8000,
        S_IFBLK = 0x6000, S_IFDIR = 0x4000, S_IFCHR = 0x2000, S_IFIFO = 0x1000;

    public const int XATTR_CREATE = 1, XATTR_REPLACE = 2;

    [LibraryImport(Lib, EntryPoint = "openat", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(FileNameMarshaller))]
    public static partial int OpenAt(int dirfd, string path, int flags, uint mode);

    [LibraryImport(Lib, EntryPoint = "access", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(FileNameMarshaller))]
    private static partial int access(string path, int mode);

    /// <summary>access(2) with the real uid: whether this user may open path (R_OK 4, W_OK 2).</summary>
    public static bool Access(string path, int mode) => access(path, mode) == 0;

    /// <summary>execve(2): argv and envp each end with a null element. Returns only on failure.</summary>
    [LibraryImport(Lib, EntryPoint = "execve", SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
    public static partial int Execve(string path, string?[] argv, string?[] envp);

    [LibraryImport(Lib, EntryPoint = "close", SetLastError = true)]
    public static partial int Close(int fd);

    [LibraryImport(Lib, EntryPoint = "dup", SetLastError = true)]
    public static partial int Dup(int fd);

    [LibraryImport(Lib, EntryPoint = "statx", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(FileNameMarshaller))]
    public static partial int StatxAt(int dirfd, string path, int flags, uint mask, out Statx buf);

    [LibraryImport(Lib, EntryPoint = "mkdirat", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(FileNameMarshaller))]
    public static partial int MkdirAt(int dirfd, string path, uint mode);

    [LibraryImport(Lib, EntryPoint = "mknodat", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(FileNameMarshaller))]
    public static partial int MknodAt(int dirfd, string path, uint mode, ulong dev);

    [LibraryImport(Lib, EntryPoint = "symlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(FileNameMarshaller))]
    public static partial int SymlinkAt(string target, int newdirfd, string linkpath);

    [LibraryImport(Lib, EntryPoint = "readlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(FileNameMarshaller))]
    public static partial nint ReadlinkAt(int dirfd, string path, byte* buf, nuint bufsiz);

    [LibraryImport(Lib, EntryPoint = "linkat", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(FileNameMarshaller))]
    public static partial int LinkAt(int olddirfd, string oldpath, int newdirfd, string newpath, int flags);

    [LibraryImport(Lib, EntryPoint = "unlinkat", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(FileNameMarshaller))]
    public static partial int UnlinkAt(int dirfd, string path, int flags);

    [LibraryImport(Lib, EntryPoint = "renameat2", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(FileNameMarshaller))]
    public static partial int RenameAt2(int olddirfd, string oldpath, int newdirfd, string newpath, uint flags);

    [LibraryImport(Lib, EntryPoint = "fchmodat", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(FileNameMarshaller))]
    public static partial int FchmodAt(int dirfd, string path, uint mode, int flags);

    /// <summary>With owner and group -1 this changes nothing but the ctime, as any chown does.</summary>
    [LibraryImport(Lib, EntryPoint = "fchownat", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(FileNameMarshaller))]
    public static partial int FchownAt(int dirfd, string path, uint owner, uint group, int flags);

    [LibraryImport(Lib, EntryPoint = "fchmod", SetLastError = true)]
    public static partial int Fchmod(int fd, uint mode);

    [LibraryImport(Lib, EntryPoint = "utimensat", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(FileNameMarshaller))]
    public static partial int UtimensAt(int dirfd, string path, Timespec* times, int flags);

    [LibraryImport(Lib, EntryPoint = "futimens", SetLastError = true)]
    public static partial int Futimens(int fd, Timespec* times);

    [LibraryImport(Lib, EntryPoint = "read", SetLastError = true)]
    public static partial nint Read(int fd, byte* buf, nuint count);

    [LibraryImport(Lib, EntryPoint = "write", SetLastError = true)]
    public static partial nint Write(int fd, byte* buf, nuint count);

    [LibraryImport(Lib, EntryPoint = "pread", SetLastError = true)]
    public static partial nint Pread(int fd, byte* buf, nuint count, long offset);

    [LibraryImport(Lib, EntryPoint = "pwrite", SetLastError = true)]
    public static partial nint Pwrite(int fd, byte* buf, nuint count, long offset);

    [LibraryImport(Lib, EntryPoint = "ftruncate", SetLastError = true)]
    public static partial int Ftruncate(int fd, long length);

    [LibraryImport(Lib, EntryPoint = "fsync", SetLastError = true)]
    public static partial int Fsync(int fd);

    [LibraryImport(Lib, EntryPoint = "fdatasync", SetLastError = true)]
    public static partial int Fdatasync(int fd);

    [LibraryImport(Lib, EntryPoint = "fstatfs", SetLastError = true)]
    public static partial int Fstatfs(int fd, out StatFs buf);

    [LibraryImport(Lib, EntryPoint = "fcntl", SetLastError = true)]
    public static partial int FcntlLock(int fd, int cmd, ref Flock flock);

    [LibraryImport(Lib, EntryPoint = "fdopendir", SetLastError = true)]
    public static partial nint Fdopendir(int fd);

    [LibraryImport(Lib, EntryPoint = "readdir64", SetLastError = true)]
    public static partial byte* Readdir(nint dir);

    [LibraryImport(Lib, EntryPoint = "closedir", SetLastError = true)]
    public static partial int Closedir(nint dir);

    [LibraryImport(Lib, EntryPoint = "rewinddir", SetLastError = true)]
    public static partial void Rewinddir(nint dir);

    [LibraryImport(Lib, EntryPoint = "umask")]
    public static partial uint Umask(uint mask);

    [LibraryImport(Lib, EntryPoint = "isatty")]
    public static partial int Isatty(int fd);

    [LibraryImport(Lib, EntryPoint = "llistxattr", SetLastError = true, StringMarshalling = StringMarshalling.Custom, StringMarshallingCustomType = typeof(FileNameMarshaller))]
    public static partial nint Llistxattr(string path, byte* list, nuint size);

    [LibraryImport(Lib, EntryPoint = "strerror")]
    private static partial nint StrerrorNative(int errnum);

    public static string Strerror(int errno) => Marshal.PtrToStringUTF8(StrerrorNative(errno)) ?? $"errno {errno}";

    /// <summary>glibc makedev(): the dev_t encoding pseudo stores in files.db.</summary>
    public static long MakeDev(uint major, uint minor) =>
        (long)((((ulong)major & 0xfffff000UL) << 32) | (((ulong)major & 0xfffUL) << 8) |
               (((ulong)minor & 0xffffff00UL) << 12) | ((ulong)minor & 0xffUL));

    public static uint Major(long dev) => (uint)((((ulong)dev >> 32) & 0xfffff000UL) | (((ulong)dev >> 8) & 0xfffUL));

    public static uint Minor(long dev) => (uint)((((ulong)dev >> 12) & 0xffffff00UL) | ((ulong)dev & 0xffUL));

    // ---- appended for the 9P server (issue #5) ----

    public const ulong RESOLVE_NO_XDEV = 0x01, RESOLVE_NO_MAGICLINKS = 0x02, RESOLVE_NO_SYMLINKS = 0x04, RESOLVE_BENEATH = 0x08;

    [StructLayout(LayoutKind.Sequential)]
    public struct OpenHow
    {
        public ulong Flags;
        public ulong Mode;
        public ulong Resolve;
    }

    private const long SYS_openat2 = 437; // same number on every Linux architecture

    [LibraryImport(Lib, EntryPoint = "syscall", SetLastError = true)]
    private static partial long SyscallOpenat2(long number, int dirfd, byte* path, OpenHow* how, nuint size);

    /// <summary>
    /// openat2(2): resolves a multi-component path below dirfd with kernel-enforced rules (e.g. RESOLVE_BENEATH |
    /// RESOLVE_NO_SYMLINKS: never leaves dirfd's tree, never follows any symlink). Returns the fd or -1 (errno set).
    /// </summary>
    public static int OpenAt2(int dirfd, string path, int flags, uint mode, ulong resolve)
    {
        var bytes = FileName.ToBytes(path + "\0");
        var how = new OpenHow { Flags = (ulong)(uint)flags, Mode = mode, Resolve = resolve };
        fixed (byte* p = bytes)
            return (int)SyscallOpenat2(SYS_openat2, dirfd, p, &how, (nuint)sizeof(OpenHow));
    }
}

public static partial class Libc
{
    // ---- open file description locks (issue #18): owned by the open file, not the process ----
    public const int F_OFD_GETLK = 36, F_OFD_SETLK = 37, F_OFD_SETLKW = 38;
}

public static partial class Signals
{
    public const int SIGINT = 2, SIGKILL = 9, SIGTERM = 15;

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    public static partial int Kill(int pid, int sig);

    private const nint SIG_DFL = 0, SIG_IGN = 1;

    [LibraryImport("libc", EntryPoint = "sigaction", SetLastError = true)]
    private static unsafe partial int Sigaction(int sig, void* act, void* oldact);

    [LibraryImport("libc", EntryPoint = "signal", SetLastError = true)]
    private static partial nint Signal(int sig, nint handler);

    /// <summary>
    /// A signal this process inherited as ignored (a shell's background job gets SIGINT ignored; `trap '' INT`,
    /// nohup) goes back to its default, so the runtime installs its handler and Ctrl-C/kill -INT reach the
    /// program. A disposition that is not SIG_IGN (a handler the runtime already installed) is left alone.
    /// </summary>
    public static unsafe void UnignoreInherited(int sig)
    {
        // struct sigaction begins with the handler on every Linux libc; 256 bytes hold all of it
        var old = stackalloc nint[32];
        if (Sigaction(sig, null, old) == 0 && old[0] == SIG_IGN) Signal(sig, SIG_DFL);
    }
}
