using RootfsExport.Posix.Native;

namespace RootfsExport.ExportServing;

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
