using RootfsExport.Posix;

namespace RootfsExport.NineP.Server;

/// <summary>
/// The fids of one connection: each holds a reference on its fid object while it is in the table, a request
/// leases one for its duration, and a fid leaving the table is clunked in the file system.
/// </summary>
internal sealed class FidTable<TFid>(INinePFileSystem<TFid> fs) where TFid : NinePFid
{
    private readonly Dictionary<uint, TFid> _fids = new();

    public bool Contains(uint id)
    {
        lock (_fids) return _fids.ContainsKey(id);
    }


    public TFid Acquire(uint id)
    {
        lock (_fids)
            if (_fids.TryGetValue(id, out var f) && f.TryAddRef()) return f;
        throw new NinePException(Errno.EBADF, $"unknown fid {id}");
    }

    public void Add(uint id, TFid fid)
    {
        lock (_fids)
        {
            if (!_fids.ContainsKey(id)) { _fids[id] = fid; return; }
        }
        Drop(fid);
        throw new NinePException(Errno.EBADF, $"fid {id} in use");
    }

    /// <summary>Replaces (or adds) a fid: walk with newfid == fid.</summary>
    public void Replace(uint id, TFid fid)
    {
        TFid? old;
        lock (_fids) { _fids.TryGetValue(id, out old); _fids[id] = fid; }
        if (old != null) Drop(old);
    }

    /// <summary>Takes a fid out of the table; the caller releases its reference.</summary>
    public TFid Remove(uint id)
    {
        TFid? f;
        lock (_fids) if (!_fids.Remove(id, out f)) throw new NinePException(Errno.EBADF, "unknown fid");
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
        List<TFid> all;
        lock (_fids) { all = _fids.Values.ToList(); _fids.Clear(); }
        foreach (var f in all) Drop(f);
    }
}

/// <summary>A request's reference on a fid; disposing it releases the reference.</summary>
internal readonly struct FidLease<TFid>(TFid fid) : IDisposable where TFid : NinePFid
{
    public TFid Fid => fid;
    public void Dispose() => fid.Release();
}

