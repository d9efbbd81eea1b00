namespace RootfsExport.ExportServing;

/// <summary>
/// The fids a layer keeps current. 9P names objects, not paths, so a rename moves every fid on the renamed
/// object or below it to the new path; a detached fid (its name was removed) names no path and stays put.
/// The shared export and each board layer keep one set each.
/// </summary>
/// <remarks>
/// A list threaded through the fids themselves: a kernel client keeps a fid per cached dentry, and a hash set of
/// 400,000 fids (4 clients after a walk of 100,000 files) was a 13 MB array on the large object heap, grown by
/// doubling, every old array garbage until a full GC. Adding and removing are O(1) either way; a rename walks all
/// fids either way.
/// </remarks>
internal sealed class LiveFids
{
    private readonly object _lock = new();
    private ExportFid? _head;

    public ExportFid Add(ExportFid fid)
    {
        lock (_lock)
        {
            if (fid.LiveSet != null) return fid; // tracked already
            fid.LiveSet = this;
            fid.LiveNext = _head;
            if (_head != null) _head.LivePrev = fid;
            _head = fid;
        }
        return fid;
    }

    public void Remove(ExportFid fid)
    {
        lock (_lock)
        {
            if (fid.LiveSet != this) return; // never tracked here, or removed already
            if (fid.LivePrev is { } prev) prev.LiveNext = fid.LiveNext; else _head = fid.LiveNext;
            if (fid.LiveNext is { } next) next.LivePrev = fid.LivePrev;
            fid.LivePrev = fid.LiveNext = null;
            fid.LiveSet = null;
        }
    }

    /// <summary>How many fids the set holds now.</summary>
    public int Count()
    {
        int n = 0;
        lock (_lock)
            for (var f = _head; f != null; f = f.LiveNext) n++;
        return n;
    }

    /// <summary>The fids that still name rel.</summary>
    public List<ExportFid> Naming(string rel)
    {
        var naming = new List<ExportFid>();
        lock (_lock)
            for (var f = _head; f != null; f = f.LiveNext)
                if (f.Path == rel && !f.Detached) naming.Add(f);
        return naming;
    }

    public void Rename(string oldRel, string newRel)
    {
        lock (_lock)
            for (var f = _head; f != null; f = f.LiveNext)
            {
                var p = f.Path;
                if (f.Detached) continue;
                if (p == oldRel) f.Path = newRel;
                else if (oldRel.Length > 0 && p.Length > oldRel.Length && p[oldRel.Length] == '/' && p.StartsWith(oldRel, StringComparison.Ordinal))
                    f.Path = newRel + p[oldRel.Length..];
            }
    }
}
