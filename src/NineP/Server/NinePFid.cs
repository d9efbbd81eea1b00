using RootfsExport.NineP.Protocol;

namespace RootfsExport.NineP.Server;

/// <summary>An errno to send back as Rlerror, for failures that are not a libc call.</summary>
public sealed class NinePException(int errno, string message) : Exception(message)
{
    public int Errno { get; } = errno;
}

/// <summary>
/// One fid of a connection. The server keeps what the protocol defines (is it open, and as what; the readdir
/// snapshot; a pending xattr read or write); a file system derives its own per-fid state from it (diod's
/// Npfid.aux), e.g. the path and host descriptor. Reference-counted, so a clunk racing a read on another tag
/// never frees state still in use: <see cref="OnReleased"/> runs with the last reference.
/// </summary>
public abstract class NinePFid
{
    private int _refs = 1;

    /// <summary>
    /// Serializes the open-state changes of this fid (open, create, xattr, readdir snapshot). Made on first use:
    /// most fids are walked, stat'ed and clunked without one (a client may hold hundreds of thousands).
    /// </summary>
    internal object Gate => Extra;

    internal FidOpenState OpenState;
    internal bool OpenForWriting;

    /// <summary>Open directory: the entries readdir serves (cookie = index + 1), taken at offset 0.</summary>
    internal List<DirEntry>? Snapshot
    {
        get => Volatile.Read(ref _extra)?.Snapshot;
        set { if (value != null || Volatile.Read(ref _extra) != null) Extra.Snapshot = value; }
    }

    /// <summary>Result of Txattrwalk: the value (or the NUL-separated name list) read with Tread.</summary>
    internal byte[]? XattrValue
    {
        get => Volatile.Read(ref _extra)?.XattrValue;
        set { if (value != null || Volatile.Read(ref _extra) != null) Extra.XattrValue = value; }
    }

    /// <summary>Pending Txattrcreate: written with Twrite, applied at clunk.</summary>
    internal PendingXattr? XattrWrite
    {
        get => Volatile.Read(ref _extra)?.XattrWrite;
        set { if (value != null || Volatile.Read(ref _extra) != null) Extra.XattrWrite = value; }
    }

    /// <summary>
    /// What only some fids need (an open directory's snapshot, an xattr transfer, the gate), in an object of its own
    /// made on first use: a fid that is walked, stat'ed and clunked carries one null reference for it (4 clients
    /// after a walk of 100,000 files hold 400,000 fids).
    /// </summary>
    private sealed class FidExtra
    {
        public List<DirEntry>? Snapshot;
        public byte[]? XattrValue;
        public PendingXattr? XattrWrite;
    }

    private FidExtra? _extra;
    private FidExtra Extra => Volatile.Read(ref _extra) ?? Interlocked.CompareExchange(ref _extra, new FidExtra(), null) ?? _extra!;

    internal bool IsOpen => OpenState != FidOpenState.None || XattrValue != null || XattrWrite != null;

    public bool TryAddRef()
    {
        while (true)
        {
            int r = Volatile.Read(ref _refs);
            if (r <= 0) return false;
            if (Interlocked.CompareExchange(ref _refs, r + 1, r) == r) return true;
        }
    }

    /// <summary>Drops one reference; the last one frees the fid's state.</summary>
    public void Release()
    {
        if (Interlocked.Decrement(ref _refs) != 0) return;
        Volatile.Write(ref _extra, null);
        OnReleased();
    }

    /// <summary>The last reference went: free the file system's state (close host descriptors).</summary>
    protected abstract void OnReleased();
}

internal enum FidOpenState : byte { None, File, Directory }

internal sealed class PendingXattr(string name, ulong size, uint flags)
{
    public string Name { get; } = name;
    public ulong Size { get; } = size;
    public uint Flags { get; } = flags;
    public readonly MemoryStream Data = new();
}
