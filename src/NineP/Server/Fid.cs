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
/// A client's handle: a path inside the export (relative, "" = the export root; kept current across renames)
/// plus what the client opened through it. Host fds are reference-counted so a clunk racing a read on
/// another tag never closes an fd still in use.
/// </summary>
public sealed class Fid
{
    private int _refs = 1;
    private volatile string _path;

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
            Snapshot = null;
            XattrValue = null;
        }
    }
}

public sealed class PendingXattr(string name, ulong size, uint flags)
{
    public string Name { get; } = name;
    public ulong Size { get; } = size;
    public uint Flags { get; } = flags;
    public readonly MemoryStream Data = new();
}
