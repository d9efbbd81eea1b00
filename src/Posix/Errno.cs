using System.Runtime.InteropServices;
using RootfsExport.Posix.Native;

namespace RootfsExport.Posix;

/// <summary>Linux errno values that the export code and the 9P server act on or report.</summary>
public static class Errno
{
    public const int EPERM = 1, ENOENT = 2, EINTR = 4, EIO = 5, ENXIO = 6, E2BIG = 7, EBADF = 9, EAGAIN = 11,
        ENOMEM = 12, EACCES = 13, EFAULT = 14, EBUSY = 16, EEXIST = 17, EXDEV = 18, ENODEV = 19, ENOTDIR = 20,
        EISDIR = 21, EINVAL = 22, EMFILE = 24, EFBIG = 27, ENOSPC = 28, ESPIPE = 29, EROFS = 30, EMLINK = 31,
        ERANGE = 34, ENAMETOOLONG = 36, ENOSYS = 38, ENOTEMPTY = 39, ELOOP = 40, ENODATA = 61,
        EPROTO = 71, EOPNOTSUPP = 95, ENOTSUP = 95;
}

/// <summary>A failed libc call: carries errno so callers (e.g. the 9P server) can pass it on unchanged.</summary>
public sealed class PosixException : IOException
{
    public int Errno { get; }
    public string Operation { get; }
    public string? Path { get; }

    public PosixException(int errno, string operation, string? path)
        : base(path is null ? $"{operation}: {Libc.Strerror(errno)}" : $"{operation} '{path}': {Libc.Strerror(errno)}")
    {
        Errno = errno;
        Operation = operation;
        Path = path;
    }

    /// <summary>Throws for the errno of the last P/Invoke call.</summary>
    public static PosixException Last(string operation, string? path = null) =>
        new(Marshal.GetLastPInvokeError(), operation, path);
}
