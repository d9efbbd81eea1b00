using RootfsExport.NineP.Server;
using RootfsExport.Posix.Native;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportServing;

/// <summary>
/// A fid's state in the export: a path inside the export (relative, "" = the export root; kept current across
/// renames), the attaching user, and the host descriptor of what the client opened through it.
/// Besides the path a fid caches the directory its object is in and, for a directory, the directory itself:
/// the kernel walks one name at a time from long-lived directory fids, so a walk or a getattr is then one
/// statx instead of open + statx + close. Objects changed on the host behind the server's back are seen as a
/// process with an open directory sees them (a directory replaced by rename keeps serving the old one).
/// </summary>
public sealed class ExportFid : NinePFid
{
    private volatile string _path;
    private HostDir? _parent, _self;

    /// <summary>The layer's <see cref="LiveFids"/> this fid is in, and its neighbours there (guarded by that set's lock).</summary>
    internal LiveFids? LiveSet;
    internal ExportFid? LivePrev, LiveNext;

    public ExportFid(string path, uint uid)
    {
        _path = path;
        Uid = uid;
    }

    /// <summary>Relative path inside the export; updated by renames of it or of a directory above it.</summary>
    public string Path { get => _path; set => _path = value; }

    /// <summary>The identity the client attached as: owner of the objects created through this fid.</summary>
    public uint Uid { get; }

    /// <summary>Open regular file (or other non-directory), -1 when not opened.</summary>
    public int Fd = -1;
    public bool Writable;

    /// <summary>
    /// Set when the object's name went (unlinked, or replaced by a rename) while this fid named it: the fid then
    /// reaches its object only through <see cref="Fd"/> or <see cref="Pin"/>, never by name, as a process's open
    /// file does. The kernel's fstat of an open, unlinked file arrives on such a fid.
    /// </summary>
    public volatile bool Detached;

    /// <summary>O_PATH fd of the object of a detached fid that was not open, -1 otherwise; closed with the fid.</summary>
    public int Pin
    {
        get => Volatile.Read(ref _gone)?.Pin ?? -1;
        set { if (value >= 0 || Volatile.Read(ref _gone) != null) Gone.Pin = value; }
    }

    /// <summary>A detached object's owner and mode (its database row went with its name), shared by its fids.</summary>
    public OrphanRow? Orphan
    {
        get => Volatile.Read(ref _gone)?.Orphan;
        set { if (value != null || Volatile.Read(ref _gone) != null) Gone.Orphan = value; }
    }

    // Pin and Orphan, made when the fid's name goes: most fids never lose theirs
    private sealed class GoneState
    {
        public int Pin = -1;
        public OrphanRow? Orphan;
    }

    private GoneState? _gone;
    private GoneState Gone => Volatile.Read(ref _gone) ?? Interlocked.CompareExchange(ref _gone, new GoneState(), null) ?? _gone!;

    /// <summary>A board's fid: the board whose merged view <see cref="Path"/> names an object of, else null.</summary>
    public BoardLayer? Board { get => Volatile.Read(ref _binding)?.Board; init { if (value != null) Binding.Board = value; } }

    /// <summary>
    /// A board's fid: the fid of its object in the layer that holds it (the board's own or the shared export),
    /// taken at <see cref="LayerGeneration"/>; looked up again once the board's layer changed. Kept in an object
    /// of its own, made on first use: a fid of the shared export (a kernel client keeps one per cached dentry,
    /// hundreds of thousands) carries one null reference for it instead of five fields and a lock object.
    /// </summary>
    internal ExportFid? Inner { get => Volatile.Read(ref _binding)?.Inner; set => Binding.Inner = value; }
    internal object BindingLock => Binding;
    internal ExportFileSystem? InnerLayer { get => Volatile.Read(ref _binding)?.InnerLayer; set => Binding.InnerLayer = value; }
    internal long LayerGeneration { get => Volatile.Read(ref _binding)?.LayerGeneration ?? -1; set => Binding.LayerGeneration = value; }

    private BoardBinding? _binding;
    private BoardBinding Binding => Volatile.Read(ref _binding) ?? Interlocked.CompareExchange(ref _binding, new BoardBinding(), null) ?? _binding!;

    private sealed class BoardBinding
    {
        public ExportFid? Inner;
        public ExportFileSystem? InnerLayer;
        public long LayerGeneration = -1;
        public BoardLayer? Board;
    }

    /// <summary>The last reference went: the host fds and cached directories close.</summary>
    protected override void OnReleased()
    {
        if (Volatile.Read(ref _binding) is { } b && Interlocked.Exchange(ref b.Inner, null) is { } inner)
        {
            b.InnerLayer?.Clunk(inner);
            inner.Release();
        }
        int fd = Interlocked.Exchange(ref Fd, -1);
        if (fd >= 0) Libc.Close(fd);
        int pin = Volatile.Read(ref _gone) is { } gone ? Interlocked.Exchange(ref gone.Pin, -1) : -1;
        if (pin >= 0) Libc.Close(pin);
        Interlocked.Exchange(ref _parent, null)?.Release();
        Interlocked.Exchange(ref _self, null)?.Release();
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
public sealed class OrphanRow(FileRow row)
{
    public FileRow Row { get; set; } = row;
}
