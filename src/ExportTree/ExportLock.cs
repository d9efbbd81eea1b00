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
/// writes its pid and command line into the file, so a second run can say who it is waiting for, and
/// removes the file before it lets go, so nothing stays beside the export; a waiter that then holds the
/// lock of a removed file sees that and starts over on the path's current file.
/// </summary>
public sealed class ExportLock : IDisposable
{
    private int _fd;
    private readonly string _path;

    private ExportLock(int fd, string path)
    {
        _fd = fd;
        _path = path;
    }

    public static string PathFor(string canonicalExport) =>
        Path.Combine(Path.GetDirectoryName(canonicalExport)!, $".{Path.GetFileName(canonicalExport)}.rfe-lock");

    /// <summary>Takes the lock, waiting (and saying once, on <paramref name="waiting"/>, for whom) while another run holds it.</summary>
    public static ExportLock Acquire(string canonicalExport, Action<string>? waiting = null)
    {
        var path = PathFor(canonicalExport);
        bool said = false;
        while (true)
        {
            int fd = Libc.OpenAt(Libc.AT_FDCWD, path, Libc.O_RDWR | Libc.O_CREAT | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0x1a4);
            if (fd < 0) throw PosixException.Last("open", path);
            var held = new ExportLock(fd, path);
            try
            {
                if (!held.TryLock(Libc.F_OFD_SETLK))
                {
                    if (!said)
                        (waiting ?? (m => Console.Error.WriteLine($"rootfs-export: {m}")))(
                            $"waiting for {canonicalExport}: {Holder(fd)} is changing it (lock {path})");
                    said = true;
                    while (!held.TryLock(Libc.F_OFD_SETLKW)) { }
                }
                if (held.IsCurrentFile())
                {
                    held.WriteHolder();
                    return held;
                }
                held.Release(unlink: false); // the holder removed this file as it finished: lock the new one
            }
            catch
            {
                held.Release(unlink: false);
                throw;
            }
        }
    }

    /// <summary>Whether the locked fd is still the file at the path (not one a finished holder removed).</summary>
    private bool IsCurrentFile()
    {
        var mine = Posix.HostDirectory.StatFd(_fd);
        if (Libc.StatxAt(Libc.AT_FDCWD, _path, Libc.AT_SYMLINK_NOFOLLOW, Libc.STATX_BASIC_STATS, out var there) != 0) return false;
        return mine.Ino == there.Ino && mine.DevMajor == there.DevMajor && mine.DevMinor == there.DevMinor;
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

    public void Dispose() => Release(unlink: true);

    /// <summary>Removes the file while still holding its lock (so no one can hold it meanwhile), then closes it.</summary>
    private void Release(bool unlink)
    {
        int fd = Interlocked.Exchange(ref _fd, -1);
        if (fd < 0) return;
        if (unlink) Libc.UnlinkAt(Libc.AT_FDCWD, _path, 0);
        Libc.Close(fd); // closing the last fd of the description releases the lock
    }
}
