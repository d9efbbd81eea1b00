using Microsoft.Win32.SafeHandles;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;

namespace RootfsExport.BootSpec;

/// <summary>
/// Looks at an export as if it were "/": symlinks are resolved component by component with absolute
/// targets restarting at the export root and ".." stopping there, so nothing outside the export is ever
/// reached (the export's /boot/Image -> /boot/Image-6.6.1 means the export's file, not the host's).
/// Every look is an *at() call below the export's directory fd, and every open of a resolved path is
/// openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS): a board that swaps a component for a symlink between
/// the resolving and the opening makes the open fail, it never leads us out of the export.
/// </summary>
public sealed class ExportRoot : IDisposable
{
    private const int MaxLinks = 40; // as the kernel's MAXSYMLINKS
    private const ulong Confined = Libc.RESOLVE_BENEATH | Libc.RESOLVE_NO_SYMLINKS | Libc.RESOLVE_NO_MAGICLINKS;
    private readonly HostDirectory _dir;

    /// <summary>The export directory on the host, absolute, without a trailing '/' (for messages).</summary>
    public string HostPath { get; }

    public ExportRoot(string hostPath)
    {
        var full = Path.GetFullPath(hostPath);
        HostPath = full.Length > 1 ? full.TrimEnd('/') : full;
        _dir = HostDirectory.Open(HostPath);
    }

    /// <summary>The export through a directory fd already open (an ExportHandle's root); the root is duplicated, the caller keeps its own.</summary>
    public ExportRoot(HostDirectory root, string hostPath)
    {
        HostPath = hostPath;
        _dir = root.Duplicate();
    }

    /// <summary>
    /// Resolves a path inside the export ("/etc/os-release", "boot/Image") to its symlink-free form
    /// ("/usr/lib/os-release"), or null when it does not exist or loops.
    /// </summary>
    public string? Resolve(string path)
    {
        var done = new List<string>();
        var todo = new LinkedList<string>(Split(path));
        int links = 0;
        while (todo.First is { } node)
        {
            var c = node.Value;
            todo.RemoveFirst();
            if (c is "" or ".") continue;
            if (c == "..")
            {
                if (done.Count > 0) done.RemoveAt(done.Count - 1);
                continue;
            }
            var (exists, isDir, target) = Look(done, c);
            if (!exists) return null;
            if (target is not null)
            {
                if (++links > MaxLinks) return null;
                if (target.StartsWith('/')) done.Clear();
                foreach (var t in Split(target).Reverse()) todo.AddFirst(t);
                continue;
            }
            if (todo.Any(t => t is not ("" or ".")) && !isDir) return null;
            done.Add(c);
        }
        return "/" + string.Join('/', done);
    }

    /// <summary>lstat of one name in an already resolved directory, and its link target when it is a symlink.</summary>
    private (bool Exists, bool IsDir, string? Target) Look(List<string> dir, string name)
    {
        int fd = OpenResolved("/" + string.Join('/', dir), Libc.O_PATH | Libc.O_DIRECTORY);
        if (fd < 0) return (false, false, null);
        using var parent = HostDirectory.FromFd(fd);
        try
        {
            if (!parent.TryStat(name, out var st)) return (false, false, null);
            return (true, StMode.IsDirectory(st.Mode), StMode.IsSymlink(st.Mode) ? parent.ReadLink(name) : null);
        }
        catch (PosixException) { return (false, false, null); }
    }

    /// <summary>openat2 of a resolved (symlink-free) path below the export; -1 when it is not there any more.</summary>
    private int OpenResolved(string resolved, int flags)
    {
        var rel = resolved.TrimStart('/');
        return Libc.OpenAt2(_dir.Fd, rel.Length == 0 ? "." : rel, flags | Libc.O_CLOEXEC | Libc.O_NOFOLLOW, 0, Confined);
    }

    private Statx? StatResolved(string resolved)
    {
        int fd = OpenResolved(resolved, Libc.O_PATH);
        if (fd < 0) return null;
        try { return HostDirectory.StatFd(fd); }
        catch (PosixException) { return null; }
        finally { Libc.Close(fd); }
    }

    /// <summary>The resolved path if it names a regular file (after resolving links inside the export).</summary>
    public string? ResolveFile(string path)
    {
        var r = Resolve(path);
        return r is not null && StatResolved(r) is { } st && StMode.IsRegular(st.Mode) ? r : null;
    }

    public string? ResolveDirectory(string path)
    {
        var r = Resolve(path);
        return r is not null && StatResolved(r) is { } st && StMode.IsDirectory(st.Mode) ? r : null;
    }

    /// <summary>Names in an in-export directory (resolved first), sorted ordinally; empty when it is missing.</summary>
    public IReadOnlyList<string> List(string dir)
    {
        var r = ResolveDirectory(dir);
        if (r is null) return [];
        int fd = OpenResolved(r, Libc.O_RDONLY | Libc.O_DIRECTORY);
        if (fd < 0) return [];
        using var d = HostDirectory.FromFd(fd);
        try
        {
            var names = d.ReadEntries().Select(e => e.Name).ToList();
            names.Sort(StringComparer.Ordinal);
            return names;
        }
        catch (PosixException) { return []; }
    }

    /// <summary>
    /// Opens a regular file inside the export for reading (resolved first); null when it is missing or not a
    /// regular file. O_NONBLOCK: a FIFO swapped in by the board is refused instead of blocking the open.
    /// </summary>
    public FileStream? OpenRead(string path)
    {
        var r = Resolve(path);
        if (r is null) return null;
        int fd = OpenResolved(r, Libc.O_RDONLY | Libc.O_NONBLOCK);
        if (fd < 0) return null;
        var handle = new SafeFileHandle(fd, ownsHandle: true);
        try
        {
            if (!StMode.IsRegular(HostDirectory.StatFd(fd).Mode)) { handle.Dispose(); return null; }
            return new FileStream(handle, FileAccess.Read, 1 << 16);
        }
        catch
        {
            handle.Dispose();
            throw;
        }
    }

    public string? ReadText(string path, int maxBytes = 1 << 20)
    {
        try
        {
            using var fs = OpenRead(path);
            if (fs is null || fs.Length > maxBytes) return null;
            using var reader = new StreamReader(fs);
            return reader.ReadToEnd();
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    public static string Join(string dir, string name) => dir.EndsWith('/') ? dir + name : dir + "/" + name;

    private static string[] Split(string p) => p.Split('/');

    public void Dispose() => _dir.Dispose();
}
