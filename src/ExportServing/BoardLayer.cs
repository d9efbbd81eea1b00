using RootfsExport.NineP.Protocol;
using RootfsExport.NineP.Server;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportServing;

/// <summary>Which layer holds an object of a board's merged view.</summary>
public enum LayerKind { Absent, Upper, Lower }

/// <summary>
/// One board's copy-on-write layer over the shared export, while it is served: the board's own tree and
/// files.db (pseudo's lock held, so `board reset/commit` cannot change it under us), the rules that merge it with
/// the shared export, and copy-up. A name resolves in the board's layer first: a whiteout there (an empty file
/// recorded as char 0:0, as overlayfs marks one) hides it, an opaque directory (xattr trusted.overlay.opaque=y in
/// the board's files.db) hides everything of the shared export below it, and a name the board's layer lacks is
/// the shared export's. The shared export and its files.db are only ever read from here.
/// </summary>
public sealed partial class BoardLayer : IDisposable
{
    public const string OpaqueXattr = "trusted.overlay.opaque";
    public const string OverlayXattrPrefix = "trusted.overlay.";

    private readonly PseudoState.WriterLock _lock;
    private readonly OwnershipStore _store;
    private readonly HashSet<string> _opaque; // merged-view paths of opaque directories
    private readonly LiveFids _fids = new();
    private long _generation;

    public BoardPaths Paths { get; }
    public string Name => Paths.Board;
    internal ExportFileSystem Lower { get; }
    internal ExportFileSystem Upper { get; private set; } = null!;

    /// <summary>Serializes the board's changes: copy-ups, whiteouts and the operations around them.</summary>
    internal readonly object Changes = new();

    /// <summary>Bumped by every change of which layer holds a name: fids bound before look their object up again.</summary>
    internal long Generation => Volatile.Read(ref _generation);

    private BoardLayer(BoardPaths paths, ExportFileSystem lower, PseudoState.WriterLock writerLock, OwnershipStore store, HashSet<string> opaque)
    {
        Paths = paths;
        Lower = lower;
        _lock = writerLock;
        _store = store;
        _opaque = opaque;
    }

    /// <summary>Opens (creating on first use) the layer of board over the export lower serves.</summary>
    public static BoardLayer Open(ExportFileSystem lower, string board, Action<string>? log = null)
    {
        var paths = BoardPaths.For(lower.ExportPath, board);
        var state = paths.State;
        var writerLock = state.AcquireWriterLock();
        OwnershipStore? store = null;
        try
        {
            var db = FilesDb.Open(state, create: true);
            Directory.CreateDirectory(paths.Upper);
            var upperPath = ExportPaths.Canonical(paths.Upper);
            var opaque = OpaqueDirectories(db, upperPath);
            store = new OwnershipStore(db, log);
            var layer = new BoardLayer(paths, lower, writerLock, store, opaque);
            layer.Upper = new ExportFileSystem(upperPath, store, qidDevice: lower.QidDevice, readUsersFile: layer.ReadMergedFile);
            layer.RecordUpperRoot();
            return layer;
        }
        catch
        {
            store?.Dispose();
            writerLock.Dispose();
            throw;
        }
    }

    private static HashSet<string> OpaqueDirectories(FilesDb db, string upperPath)
    {
        var rows = db.All().GroupBy(r => (r.Dev, r.Ino)).ToDictionary(g => g.Key, g => g.First().Path);
        var set = new HashSet<string>(StringComparer.Ordinal);
        foreach (var x in db.AllXattrs().Where(x => x.Name == OpaqueXattr))
            if (rows.TryGetValue((x.Dev, x.Ino), out var path) && path.StartsWith(upperPath + "/", StringComparison.Ordinal))
                set.Add(path[(upperPath.Length + 1)..]);
        return set;
    }

    /// <summary>The board's root carries the shared root's owner and mode (recorded once).</summary>
    private void RecordUpperRoot()
    {
        var ust = Upper.StatRel("");
        var row = _store.Get(Upper.DbPath(""));
        if (row != null && row.Dev == ust.Dev() && row.Ino == ust.InoSigned()) return;
        var lst = Lower.StatRel("");
        var (mode, uid, gid, _, _) = Lower.Ownership("", lst);
        _store.PutNew(new FileRow(Upper.DbPath(""), ust.Dev(), ust.InoSigned(), uid, gid, mode, 0));
    }

    /// <summary>etc/passwd and etc/group as the board sees them, for access=user permission checks.</summary>
    private string? ReadMergedFile(string rel) => Resolve(rel) switch
    {
        LayerKind.Upper => Upper.ReadExportFile(rel),
        LayerKind.Lower => Lower.ReadExportFile(rel),
        _ => null,
    };

    // ---------------- the merged view ----------------

    private FileRow? UpperRow(string rel) => _store.Get(Upper.DbPath(rel));

    /// <summary>overlayfs's whiteout: a character device 0:0 (on disk an empty file, as every device here).</summary>
    public static bool IsWhiteout(FileRow row) => row.Type == FileRow.S_IFCHR && row.Rdev == 0;

    internal ExportFileSystem LayerOf(LayerKind kind) => kind == LayerKind.Upper ? Upper : Lower;

    /// <summary>Which layer holds rel in the board's view.</summary>
    internal LayerKind Resolve(string rel) => Resolve(rel, out _);

    /// <summary>Which layer holds rel; lowerSt is the shared export's stat of it when that is the layer (one statx saved).</summary>
    private LayerKind Resolve(string rel, out Statx lowerSt)
    {
        lowerSt = default;
        if (rel.Length == 0) return LayerKind.Upper;
        bool lowerVisible = true;
        int start = 0;
        while (true)
        {
            int slash = rel.IndexOf('/', start);
            var prefix = slash < 0 ? rel : rel[..slash];
            var row = UpperRow(prefix);
            if (row is null) return lowerVisible && Lower.TryStatRel(rel, out lowerSt) ? LayerKind.Lower : LayerKind.Absent;
            if (IsWhiteout(row)) return LayerKind.Absent;
            if (slash < 0) return LayerKind.Upper;
            if (!row.IsDirectory) return LayerKind.Absent;
            lock (_opaque) lowerVisible &= !_opaque.Contains(prefix);
            start = slash + 1;
        }
    }

    /// <summary>Whether the shared export shows through below the board's directory rel (no opaque directory on the way).</summary>
    internal bool LowerShowsBelow(string rel)
    {
        lock (_opaque)
        {
            if (_opaque.Contains(rel)) return false;
            for (int i = rel.IndexOf('/'); i >= 0; i = rel.IndexOf('/', i + 1))
                if (_opaque.Contains(rel[..i])) return false;
        }
        return true;
    }

    /// <summary>Whether the shared export has an object at rel that the board would see without its own layer's entry.</summary>
    internal bool LowerHasVisible(string rel) => LowerShowsBelow(ExportFileSystem.ParentOf(rel)) && Lower.TryStatRel(rel, out _);

    /// <summary>Stat of rel in the layer holding it; ENOENT when the board does not see it.</summary>
    internal (LayerKind Kind, Statx St) Stat(string rel)
    {
        var kind = Resolve(rel, out var st);
        if (kind == LayerKind.Lower) return (kind, st);
        if (kind == LayerKind.Absent || !Upper.TryStatRel(rel, out st)) throw new NinePException(Errno.ENOENT, $"{rel}: no such file");
        return (kind, st);
    }

    internal Qid QidOf(string rel)
    {
        var (kind, st) = Stat(rel);
        return LayerOf(kind).QidOf(rel, st);
    }

    /// <summary>The directory rel as the board lists it: its own entries over the shared export's, whiteouts hidden.</summary>
    internal List<DirEntry> ReadDir(string rel)
    {
        var kind = Resolve(rel);
        if (kind == LayerKind.Absent) throw new NinePException(Errno.ENOENT, $"{rel}: no such directory");
        var own = LayerOf(kind).ReadDirRel(rel);
        if (kind == LayerKind.Lower) return own;
        var result = new List<DirEntry>(own.Count);
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var e in own)
        {
            names.Add(e.Name);
            if (e.Name is "." or ".." || UpperRow(ExportFileSystem.Child(rel, e.Name)) is not { } row || !IsWhiteout(row)) result.Add(e);
        }
        if (LowerShowsBelow(rel) && Lower.TryStatRel(rel, out var lst) && ExportFileSystem.IsDir(lst))
            result.AddRange(Lower.ReadDirRel(rel).Where(e => !names.Contains(e.Name)));
        for (int i = 0; i < result.Count; i++) result[i] = result[i] with { Offset = (ulong)i + 1 };
        return result;
    }

    /// <summary>Whether the board's directory rel lists nothing but '.' and '..'.</summary>
    internal bool IsEmptyDir(string rel) => ReadDir(rel).All(e => e.Name is "." or "..");

    // ---------------- fids ----------------

    internal ExportFid NewFid(string rel, uint uid) => _fids.Add(new ExportFid(rel, uid) { Board = this });

    /// <summary>
    /// A new fid for rel already bound to the layer a walk found it in, as of generation gen (read before that
    /// lookup): its first Tgetattr or Tlopen need not look it up again. A change since then rebinds it as usual.
    /// </summary>
    internal ExportFid NewFid(string rel, uint uid, LayerKind kind, long gen)
    {
        var fid = NewFid(rel, uid);
        var layer = LayerOf(kind);
        lock (fid.BindingLock) Rebind(fid, layer.Track(new ExportFid(rel, uid)), layer, gen);
        return fid;
    }

    internal void Forget(ExportFid fid) => _fids.Remove(fid);

    /// <summary>The board's fids in use: none once every connection it attached on has clunked them or gone.</summary>
    internal int FidsInUse => _fids.Count();

    /// <summary>A fid of the object fid names in the layer holding it now, leased (caller releases).</summary>
    internal (ExportFid Fid, ExportFileSystem Layer) Lease(ExportFid fid)
    {
        long gen = Generation;
        lock (fid.BindingLock)
        {
            var inner = fid.Inner;
            if (inner != null && (fid.LayerGeneration == gen || inner.Fd >= 0 || inner.Detached) && inner.TryAddRef()) return (inner, fid.InnerLayer!);
            var kind = Resolve(fid.Path);
            if (kind == LayerKind.Absent) throw new NinePException(Errno.ENOENT, $"{fid.Path}: no such file");
            var layer = LayerOf(kind);
            var bound = layer.Track(new ExportFid(fid.Path, fid.Uid));
            bound.TryAddRef(); // the caller's lease
            Rebind(fid, bound, layer, gen);
            return (bound, layer);
        }
    }

    private static void Rebind(ExportFid fid, ExportFid inner, ExportFileSystem layer, long gen)
    {
        var old = fid.Inner;
        var oldLayer = fid.InnerLayer;
        fid.Inner = inner;
        fid.InnerLayer = layer;
        fid.LayerGeneration = gen;
        if (old != null)
        {
            oldLayer?.Clunk(old);
            old.Release();
        }
    }

    /// <summary>
    /// A fid of the object fid names in the board's own layer, copied up first, leased: what every change goes
    /// through, so no change can reach the shared export. Caller holds <see cref="Changes"/>.
    /// </summary>
    internal UpperLease LeaseUpper(ExportFid fid)
    {
        CopyUp(fid.Path);
        var (inner, layer) = Lease(fid);
        if (layer == Upper) return new UpperLease(inner, Upper, own: false);
        inner.Release(); // open on the shared export's object before the copy-up: this change uses a fid of its own
        return UpperFid(fid.Path, fid.Uid);
    }

    /// <summary>A fid of the board's own object at rel (copied up first) for one change.</summary>
    internal UpperLease UpperFid(string rel, uint uid)
    {
        CopyUp(rel);
        return new UpperLease(Upper.Track(new ExportFid(rel, uid)), Upper, own: true);
    }

    internal void Changed() => Interlocked.Increment(ref _generation);

    public void Dispose()
    {
        Upper?.Dispose();
        _store.Dispose();
        _lock.Dispose();
    }
}

/// <summary>A fid in the board's own layer for one change: released (and, when made for it, clunked) at the end.</summary>
internal readonly struct UpperLease(ExportFid fid, ExportFileSystem upper, bool own) : IDisposable
{
    public ExportFid Fid => fid;

    public void Dispose()
    {
        if (own) upper.Clunk(fid);
        fid.Release();
    }
}
