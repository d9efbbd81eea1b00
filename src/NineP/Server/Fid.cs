using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using RootfsExport.NineP.Protocol;

namespace RootfsExport.NineP.Server;

/// <summary>An errno to send back as Rlerror, for failures that are not a libc call.</summary>
public sealed class NinePException(int errno, string message) : Exception(message)
{
    public int Errno { get; } = errno;
}

/// <summary>
/// A directory of the export held open (O_PATH) for single-name *at() calls, shared by the fids that reach
/// objects through it and closed with its last user. Rel is the path it was opened at: a fid only uses it while
/// its own path still says the same, so a rename through 9P simply makes the fids below re-resolve.
/// </summary>
public sealed class HostDir : IDisposable
{
    private int _refs = 1;
    private readonly bool _owned;

    public HostDir(int fd, string rel, bool owned = true)
    {
        Fd = fd;
        Rel = rel;
        _owned = owned;
    }

    public int Fd { get; }
    public string Rel { get; }

    public bool TryAddRef()
    {
        if (!_owned) return true;
        while (true)
        {
            int r = Volatile.Read(ref _refs);
            if (r <= 0) return false;
            if (Interlocked.CompareExchange(ref _refs, r + 1, r) == r) return true;
        }
    }

    public void Release()
    {
        if (_owned && Interlocked.Decrement(ref _refs) == 0) Libc.Close(Fd);
    }

    /// <summary>Releases the caller's reference (for `using` on a lease).</summary>
    public void Dispose() => Release();

    /// <summary>Whether this is the directory that holds rel (rel's path up to its last slash).</summary>
    public bool Holds(string rel)
    {
        int slash = rel.LastIndexOf('/');
        return slash < 0 ? Rel.Length == 0 : rel.AsSpan(0, slash).SequenceEqual(Rel);
    }
}

/// <summary>
/// A client's handle: a path inside the export (relative, "" = the export root; kept current across renames)
/// plus what the client opened through it. Host fds are reference-counted so a clunk racing a read on
/// another tag never closes an fd still in use.
/// Besides the path a fid caches the directory its object is in and, for a directory, the directory itself:
/// the kernel walks one name at a time from long-lived directory fids, so a walk or a getattr is then one
/// statx instead of open + statx + close. Objects changed on the host behind the server's back are seen as a
/// process with an open directory sees them (a directory replaced by rename keeps serving the old one).
/// </summary>
public sealed class Fid
{
    private int _refs = 1;
    private volatile string _path;
    private HostDir? _parent, _self;

    public Fid(string path, uint uid)
    {
        _path = path;
        Uid = uid;
    }

    /// <summary>Relative path inside the export; updated by renames of it or of a directory above it.</summary>
    public string Path { get => _path; set => _path = value; }

    /// <summary>The identity the client attached as: owner of the objects created through this fid.</summary>
    public uint Uid { get; }

    public readonly object Gate = new();

    /// <summary>Open regular file (or other non-directory), -1 when not opened.</summary>
    public int Fd = -1;
    public bool Writable;

    /// <summary>Open directory: the snapshot readdir serves (cookie = index + 1).</summary>
    public bool IsOpenDirectory;
    public List<DirEntry>? Snapshot;

    /// <summary>Result of Txattrwalk: the value (or the NUL-separated name list) read with Tread.</summary>
    public byte[]? XattrValue;

    /// <summary>Pending Txattrcreate: applied at clunk.</summary>
    public PendingXattr? XattrWrite;

    public bool IsOpen => Fd >= 0 || IsOpenDirectory || XattrValue != null || XattrWrite != null;

    /// <summary>
    /// Set when the object's name went (unlinked, or replaced by a rename) while this fid named it: the fid then
    /// reaches its object only through <see cref="Fd"/> or <see cref="Pin"/>, never by name, as a process's open
    /// file does. The kernel's fstat of an open, unlinked file arrives on such a fid.
    /// </summary>
    public volatile bool Detached;

    /// <summary>O_PATH fd of the object of a detached fid that was not open, -1 otherwise; closed with the fid.</summary>
    public int Pin = -1;

    /// <summary>A detached object's owner and mode (its database row went with its name), shared by its fids.</summary>
    public OrphanRow? Orphan;

    public bool TryAddRef()
    {
        while (true)
        {
            int r = Volatile.Read(ref _refs);
            if (r <= 0) return false;
            if (Interlocked.CompareExchange(ref _refs, r + 1, r) == r) return true;
        }
    }

    /// <summary>Drops one reference; the last one closes the host fd.</summary>
    public void Release()
    {
        if (Interlocked.Decrement(ref _refs) == 0)
        {
            int fd = Interlocked.Exchange(ref Fd, -1);
            if (fd >= 0) Libc.Close(fd);
            int pin = Interlocked.Exchange(ref Pin, -1);
            if (pin >= 0) Libc.Close(pin);
            Interlocked.Exchange(ref _parent, null)?.Release();
            Interlocked.Exchange(ref _self, null)?.Release();
            Snapshot = null;
            XattrValue = null;
        }
    }

    // A slot emptied and released meanwhile fails TryAddRef: the caller then opens afresh.

    /// <summary>The cached directory holding the object at rel, leased (caller releases), or null.</summary>
    public HostDir? LeaseParent(string rel)
    {
        var d = Volatile.Read(ref _parent);
        return d != null && d.Holds(rel) && d.TryAddRef() ? d : null;
    }

    /// <summary>The cached directory fd of this fid's own directory at rel, leased, or null.</summary>
    public HostDir? LeaseSelf(string rel)
    {
        var d = Volatile.Read(ref _self);
        return d != null && d.Rel == rel && d.TryAddRef() ? d : null;
    }

    /// <summary>Takes over the caller's lease on the directory holding this fid's object (a walk's result).</summary>
    public void AdoptParent(HostDir dir) => Interlocked.Exchange(ref _parent, dir)?.Release();

    /// <summary>Caches dir (the caller's lease stays the caller's) and returns it.</summary>
    public HostDir KeepParent(HostDir dir) => Keep(ref _parent, dir);

    public HostDir KeepSelf(HostDir dir) => Keep(ref _self, dir);

    private static HostDir Keep(ref HostDir? slot, HostDir dir)
    {
        dir.TryAddRef(); // the slot's own reference; cannot fail while the caller holds one
        Interlocked.Exchange(ref slot, dir)?.Release();
        return dir;
    }
}

/// <summary>The row of an object that has no name left in the export: chown/chmod through its fids change it here.</summary>
public sealed class OrphanRow(PseudoDb.FileRow row)
{
    public PseudoDb.FileRow Row { get; set; } = row;
}

public sealed class PendingXattr(string name, ulong size, uint flags)
{
    public string Name { get; } = name;
    public ulong Size { get; } = size;
    public uint Flags { get; } = flags;
    public readonly MemoryStream Data = new();
}
