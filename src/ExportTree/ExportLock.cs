using System.Runtime.InteropServices;
using System.Text;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;

namespace RootfsExport.ExportTree;

/// <summary>
/// The lock of one export, in its parent directory (`.NAME.rfe-lock`; the export and its state directory
/// are swapped by rename, so neither can hold it). Every run that creates, replaces or recovers the export
/// takes it before anything else, so no run removes a staging directory another run is still filling. It
/// is an open-file-description lock: the kernel drops it when the holder dies, however it dies. The holder
/// writes its pid and command line into the file, so a second run can say who it is waiting for.
/// </summary>
public sealed class ExportLock : IDisposable
{
    private int _fd;

    private ExportLock(int fd) => _fd = fd;

    public static string PathFor(string canonicalExport) =>
        Path.Combine(Path.GetDirectoryName(canonicalExport)!, $".{Path.GetFileName(canonicalExport)}.rfe-lock");

    /// <summary>Takes the lock, waiting (and saying once, on <paramref name="waiting"/>, for whom) while another run holds it.</summary>
    public static ExportLock Acquire(string canonicalExport, Action<string>? waiting = null)
    {
        var path = PathFor(canonicalExport);
        int fd = Libc.OpenAt(Libc.AT_FDCWD, path, Libc.O_RDWR | Libc.O_CREAT | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0x1a4);
        if (fd < 0) throw PosixException.Last("open", path);
        var held = new ExportLock(fd);
        try
        {
            if (!held.TryLock(Libc.F_OFD_SETLK))
            {
                (waiting ?? (m => Console.Error.WriteLine($"rootfs-export: {m}")))(
                    $"waiting for {canonicalExport}: {Holder(fd)} is changing it (lock {path})");
                while (!held.TryLock(Libc.F_OFD_SETLKW)) { }
            }
            held.WriteHolder();
            return held;
        }
        catch
        {
            held.Dispose();
            throw;
        }
    }

    /// <summary>F_OFD_SETLK(W) for the whole file; false when another holds it (or a wait was interrupted).</summary>
    private bool TryLock(int command)
    {
        var fl = new Flock { Type = Libc.F_WRLCK, Whence = 0, Start = 0, Len = 0, Pid = 0 };
        if (Libc.FcntlLock(_fd, command, ref fl) == 0) return true;
        int e = Marshal.GetLastPInvokeError();
        if (e is Errno.EAGAIN or Errno.EACCES or Errno.EINTR) return false;
        throw new PosixException(e, "lock", "export lock file");
    }

    private unsafe void WriteHolder()
    {
        var args = Environment.GetCommandLineArgs().Skip(1);
        var text = Encoding.UTF8.GetBytes($"{Environment.ProcessId} rootfs-export {string.Join(' ', args)}\n");
        if (Libc.Ftruncate(_fd, 0) != 0) throw PosixException.Last("truncate", "lock file");
        fixed (byte* p = text) Libc.Pwrite(_fd, p, (nuint)Math.Min(text.Length, 4096), 0);
    }

    /// <summary>"pid N (command)" from what the holder wrote; a bare "another process" when it has not written yet.</summary>
    private static unsafe string Holder(int fd)
    {
        var buf = new byte[4096];
        nint n;
        fixed (byte* p = buf) n = Libc.Pread(fd, p, (nuint)buf.Length, 0);
        var text = n > 0 ? Encoding.UTF8.GetString(buf, 0, (int)n).Trim() : "";
        int space = text.IndexOf(' ');
        if (space <= 0) return "another process";
        var command = text[(space + 1)..];
        if (command.Length > 200) command = command[..200] + "...";
        return $"pid {text[..space]} ({command})";
    }

    public void Dispose()
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd >= 0) Libc.Close(fd); // closing the last fd of the description releases the lock
    }
}
