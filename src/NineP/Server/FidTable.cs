using RootfsExport.Posix;

namespace RootfsExport.NineP.Server;

/// <summary>
/// The fids of one connection: each holds a reference on its fid object while it is in the table, a request
/// leases one for its duration, and a fid leaving the table is clunked in the file system.
/// </summary>
/// <remarks>
/// Clients number fids densely from 0 (Linux and diod take the lowest free number), and a kernel client keeps
/// one per cached dentry: hundreds of thousands after a walk of a large tree. So the table is pages of 64 slots
/// by number, made when a fid lands in them and dropped when they empty. A dictionary of fids grew by doubling
/// into large-object-heap arrays that stayed as garbage until a full GC (100,000 fids per connection: ~10 MB of
/// arrays each, live and dead); pages are small objects, 9 bytes a fid when dense, and a scattered numbering
/// costs at most one page per fid.
/// </remarks>
internal sealed class FidTable<TFid>(INinePFileSystem<TFid> fs) where TFid : NinePFid
{
    private const int PageBits = 6, PageSize = 1 << PageBits, SlotMask = PageSize - 1;

    private sealed class Page
    {
        public readonly TFid?[] Slots = new TFid?[PageSize];
        public int Used;
    }

    private readonly Dictionary<uint, Page> _pages = new();

    public bool Contains(uint id)
    {
        lock (_pages) return Slot(id) != null;
    }

    public TFid Acquire(uint id)
    {
        lock (_pages)
            if (Slot(id) is { } f && f.TryAddRef()) return f;
        throw new NinePException(Errno.EBADF, $"unknown fid {id}");
    }

    public void Add(uint id, TFid fid)
    {
        lock (_pages)
        {
            if (Slot(id) is null) { Put(id, fid); return; }
        }
        Drop(fid);
        throw new NinePException(Errno.EBADF, $"fid {id} in use");
    }

    /// <summary>Replaces (or adds) a fid: walk with newfid == fid.</summary>
    public void Replace(uint id, TFid fid)
    {
        TFid? old;
        lock (_pages) old = Put(id, fid);
        if (old != null) Drop(old);
    }

    /// <summary>Takes a fid out of the table; the caller releases its reference.</summary>
    public TFid Remove(uint id)
    {
        TFid? f;
        lock (_pages) f = Take(id);
        if (f is null) throw new NinePException(Errno.EBADF, "unknown fid");
        fs.Clunk(f);
        return f;
    }

    /// <summary>A fid leaves the table for good: the file system forgets it, its state goes with its last reference.</summary>
    public void Drop(TFid fid)
    {
        fs.Clunk(fid);
        fid.Release();
    }

    /// <summary>A reference on a fid of the table for the duration of one request.</summary>
    public FidLease<TFid> Lease(uint id) => new(Acquire(id));

    /// <summary>Every fid leaves the table (disconnect, Tversion).</summary>
    public void ClunkAll()
    {
        List<TFid> all = [];
        lock (_pages)
        {
            foreach (var page in _pages.Values)
                foreach (var f in page.Slots)
                    if (f != null) all.Add(f);
            _pages.Clear();
        }
        foreach (var f in all) Drop(f);
    }

    // ---- the pages (callers hold the lock) ----

    private TFid? Slot(uint id) => _pages.TryGetValue(id >> PageBits, out var page) ? page.Slots[id & SlotMask] : null;

    /// <summary>Puts fid in its slot and returns what was there.</summary>
    private TFid? Put(uint id, TFid fid)
    {
        if (!_pages.TryGetValue(id >> PageBits, out var page)) _pages[id >> PageBits] = page = new Page();
        ref var slot = ref page.Slots[id & SlotMask];
        var old = slot;
        slot = fid;
        if (old is null) page.Used++;
        return old;
    }

    private TFid? Take(uint id)
    {
        if (!_pages.TryGetValue(id >> PageBits, out var page)) return null;
        ref var slot = ref page.Slots[id & SlotMask];
        var f = slot;
        if (f is null) return null;
        slot = null;
        if (--page.Used == 0) _pages.Remove(id >> PageBits);
        return f;
    }
}

/// <summary>A request's reference on a fid; disposing it releases the reference.</summary>
internal readonly struct FidLease<TFid>(TFid fid) : IDisposable where TFid : NinePFid
{
    public TFid Fid => fid;
    public void Dispose() => fid.Release();
}
