namespace RootfsExport.ExportServing;

/// <summary>
/// The fids a layer keeps current. 9P names objects, not paths, so a rename moves every fid on the renamed
/// object or below it to the new path; a detached fid (its name was removed) names no path and stays put.
/// The shared export and each board layer keep one set each.
/// </summary>
internal sealed class LiveFids
{
    private readonly HashSet<ExportFid> _fids = new();

    public ExportFid Add(ExportFid fid)
    {
        lock (_fids) _fids.Add(fid);
        return fid;
    }

    public void Remove(ExportFid fid) { lock (_fids) _fids.Remove(fid); }

    /// <summary>The fids that still name rel.</summary>
    public List<ExportFid> Naming(string rel)
    {
        lock (_fids) return _fids.Where(f => f.Path == rel && !f.Detached).ToList();
    }

    public void Rename(string oldRel, string newRel)
    {
        lock (_fids)
            foreach (var f in _fids)
            {
                var p = f.Path;
                if (f.Detached) continue;
                if (p == oldRel) f.Path = newRel;
                else if (oldRel.Length > 0 && p.Length > oldRel.Length && p[oldRel.Length] == '/' && p.StartsWith(oldRel, StringComparison.Ordinal))
                    f.Path = newRel + p[oldRel.Length..];
            }
    }
}
