using RootfsExport.Posix;
using RootfsExport.Posix.Native;

namespace RootfsExport.PseudoDb;

/// <summary>
/// pseudo's state directory for an export: <c>&lt;export&gt;/../&lt;basename&gt;.pseudo_state</c>, the location
/// poky's runqemu-extract-sdk/runqemu-export-rootfs use, so real pseudo and unfsd under pseudo share our owners.
/// </summary>
public sealed class PseudoState
{
    public string Directory { get; }
    public string FilesDbPath => Path.Combine(Directory, "files.db");
    public string LogsDbPath => Path.Combine(Directory, "logs.db");
    public string LockPath => Path.Combine(Directory, "pseudo.lock");

    public PseudoState(string directory) => Directory = Path.GetFullPath(directory);

    /// <summary>State directory of an export (its canonical absolute path, as pseudo would resolve it).</summary>
    public static PseudoState ForExport(string exportDir) => new(StatePathFor(ExportPaths.Canonical(exportDir)));

    public static string StatePathFor(string canonicalExport) =>
        Path.Combine(Path.GetDirectoryName(canonicalExport)!, Path.GetFileName(canonicalExport) + ".pseudo_state");

    public bool Exists => File.Exists(FilesDbPath);

    /// <summary>
    /// The pid of a pseudo server holding this state's lock, or null. pseudo keeps an fcntl write lock on
    /// pseudo.lock while it runs; pseudo.pid and the socket stay behind after it exits, so only the lock counts.
    /// </summary>
    public int? LiveServerPid()
    {
        if (HeldByThisProcess) return null; // F_GETLK never reports our own lock, and closing the probe would drop it
        if (!File.Exists(LockPath)) return null;
        int fd = Libc.OpenAt(Libc.AT_FDCWD, LockPath, Libc.O_RDONLY | Libc.O_CLOEXEC, 0);
        if (fd < 0) return null;
        try
        {
            var fl = new Flock { Type = Libc.F_WRLCK, Whence = 0, Start = 0, Len = 0 };
            if (Libc.FcntlLock(fd, Libc.F_GETLK, ref fl) != 0) throw PosixException.Last("fcntl(F_GETLK)", LockPath);
            return fl.Type == Libc.F_UNLCK ? null : fl.Pid;
        }
        finally
        {
            Libc.Close(fd);
        }
    }

    public string StopHint => $"stop it with: PSEUDO_LOCALSTATEDIR={Directory} pseudo -S";

    /// <summary>Throws a user-facing error when a pseudo server is live on this state.</summary>
    public void EnsureNoLiveServer()
    {
        if (LiveServerPid() is int pid)
        {
            var holder = File.Exists($"/proc/{pid}/comm") ? File.ReadAllText($"/proc/{pid}/comm").Trim() : "pseudo";
            throw new UserFacingException(holder.StartsWith("pseudo")
                ? $"a pseudo server (pid {pid}) holds {LockPath}; its database must not be changed behind its back — {StopHint}"
                : $"{LockPath} is held by pid {pid} ({holder}), another writer of this export (a running 'rootfs-export serve'?); stop it first");
        }
    }

    // fcntl locks belong to the process, and closing any fd of the file drops them all: a second open-lock-close
    // of pseudo.lock inside a process that holds it (a serve applying an update) would silently unlock the export.
    // So this process locks each state once and counts its holders.
    private static readonly Dictionary<string, (int Fd, int Holders)> Held = new(StringComparer.Ordinal);

    /// <summary>Whether this process holds the lock (then no one else can, and the file must not be reopened here).</summary>
    public bool HeldByThisProcess
    {
        get { lock (Held) return Held.ContainsKey(LockPath); }
    }

    /// <summary>
    /// Takes pseudo's own lock for the lifetime of the returned object, so no pseudo server starts while we
    /// write (pseudo refuses to start when it cannot lock). Throws if a server already holds it. Within one
    /// process it nests: the lock is released when the last holder is disposed.
    /// </summary>
    public WriterLock AcquireWriterLock()
    {
        lock (Held)
        {
            if (Held.TryGetValue(LockPath, out var held))
            {
                Held[LockPath] = (held.Fd, held.Holders + 1);
                return new WriterLock(LockPath);
            }
            System.IO.Directory.CreateDirectory(Directory);
            int fd = Libc.OpenAt(Libc.AT_FDCWD, LockPath, Libc.O_RDWR | Libc.O_CREAT | Libc.O_CLOEXEC, 0x1a4);
            if (fd < 0) throw PosixException.Last("open", LockPath);
            var fl = new Flock { Type = Libc.F_WRLCK, Whence = 0, Start = 0, Len = 0 };
            if (Libc.FcntlLock(fd, Libc.F_SETLK, ref fl) != 0)
            {
                Libc.Close(fd);
                EnsureNoLiveServer();
                throw new UserFacingException($"{LockPath} is locked by another process; {StopHint}");
            }
            Held[LockPath] = (fd, 1);
            return new WriterLock(LockPath);
        }
    }

    public sealed class WriterLock : IDisposable
    {
        private string? _path;
        internal WriterLock(string path) => _path = path;

        public void Dispose()
        {
            var path = Interlocked.Exchange(ref _path, null);
            if (path is null) return;
            lock (Held)
            {
                var (fd, holders) = Held[path];
                if (holders > 1) { Held[path] = (fd, holders - 1); return; }
                Held.Remove(path);
                Libc.Close(fd); // closing releases the fcntl lock
            }
        }
    }
}

/// <summary>Canonical absolute paths as pseudo records them (readlink -f, no trailing slash).</summary>
public static class ExportPaths
{
    public static string Canonical(string path)
    {
        var full = Path.GetFullPath(path);
        if (full.Length > 1) full = full.TrimEnd('/');
        // Resolve symlinks in existing components (readlink -f); a not-yet-existing tail stays as typed.
        var existing = full;
        var tail = new Stack<string>();
        while (!System.IO.Directory.Exists(existing) && !File.Exists(existing) && existing != "/")
        {
            tail.Push(Path.GetFileName(existing));
            existing = Path.GetDirectoryName(existing)!;
        }
        var resolved = ResolveAll(existing);
        foreach (var part in tail) resolved = Path.Combine(resolved, part);
        return resolved;
    }

    private static string ResolveAll(string path)
    {
        var info = new DirectoryInfo(path);
        var target = info.Exists ? info.ResolveLinkTarget(returnFinalTarget: true) : new FileInfo(path).ResolveLinkTarget(true);
        var result = target?.FullName ?? path;
        var parent = Path.GetDirectoryName(result);
        if (parent is null) return result;
        var canonicalParent = ResolveAll(parent);
        return Path.Combine(canonicalParent, Path.GetFileName(result));
    }

    /// <summary>The DB path of an object at a relative path inside the export ("" = the export root).</summary>
    public static string Join(string canonicalExport, string relative) =>
        relative.Length == 0 ? canonicalExport : canonicalExport == "/" ? "/" + relative : canonicalExport + "/" + relative;
}
