using System.Text;
using RootfsExport.NineP.Protocol;
using RootfsExport.NineP.Server;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;

namespace RootfsExport.ExportServing;

/// <summary>
/// What the 9P server serves: the shared export for a plain aname (read-write, as it always was), and for an
/// aname "&lt;export&gt;@&lt;board&gt;" that board's merged view (<see cref="BoardLayer"/>), opened on its first attach
/// and kept until the server stops. Fids carry their board, so every request goes to the view it was attached to.
/// </summary>
public sealed class LabFileSystem(ExportFileSystem shared, Action<string>? log = null) : INinePFileSystem<ExportFid>, IDisposable
{
    private readonly Dictionary<string, BoardLayer> _boards = new(StringComparer.Ordinal);

    public ExportFileSystem Shared => shared;

    /// <summary>The layers of the boards attached so far.</summary>
    public IReadOnlyList<BoardLayer> Boards { get { lock (_boards) return _boards.Values.ToList(); } }

    /// <summary>The board's layer, opened on first use.</summary>
    public BoardLayer Board(string name)
    {
        lock (_boards)
        {
            if (_boards.TryGetValue(name, out var layer)) return layer;
            layer = BoardLayer.Open(shared, name, log);
            _boards[name] = layer;
            log?.Invoke($"board {name}: layer {layer.Paths.Upper}");
            return layer;
        }
    }

    /// <summary>
    /// Closes the board's layer (its files.db and lock go) so that `board commit` or `reset` may take it, when the board has
    /// nothing attached; its next attach opens the layer again. Run at the request gate, so no attach comes between.
    /// </summary>
    public void CloseBoard(string name, string forWhat)
    {
        lock (_boards)
        {
            if (!_boards.TryGetValue(name, out var layer)) return;
            if (layer.FidsInUse is var n and > 0)
                throw new UserFacingException($"board {name} is attached to this serve ({n} fid(s) in use): its open files would move under it; " +
                    $"unmount it (or power the board off) and {forWhat} again");
            _boards.Remove(name);
            layer.Dispose();
            log?.Invoke($"board {name}: layer closed");
        }
    }

    public ExportFid Attach(string aname, uint uid, out Qid qid)
    {
        var (path, board) = BoardPaths.SplitAname(aname);
        if (board is null) return shared.Attach(aname, uid, out qid);
        if (BoardPaths.NameProblem(board) is { } why) throw new NinePException(Errno.EINVAL, why);
        var rel = shared.AttachPath(path);
        BoardLayer layer;
        try { layer = Board(board); }
        catch (Exception e) when (e is UserFacingException or PosixException or IOException or UnauthorizedAccessException)
        {
            throw new NinePException(Errno.EIO, $"board {board}: {e.Message}");
        }
        qid = layer.QidOf(rel);
        if (qid.Type != QidType.Dir) throw new NinePException(Errno.ENOTDIR, "aname is not a directory");
        return layer.NewFid(rel, uid);
    }

    public List<Qid> Walk(ExportFid fid, IReadOnlyList<string> names, out ExportFid? walked)
    {
        if (fid.Board is not { } b) return shared.Walk(fid, names, out walked);
        var qids = new List<Qid>(names.Count);
        walked = null;
        var cur = fid.Path;
        var (kind, st) = (LayerKind.Absent, default(Statx)); // the last name's, so each name is resolved once
        long gen = b.Generation; // before the lookups: a change meanwhile makes the new fid look again
        for (int i = 0; i < names.Count; i++)
        {
            try
            {
                if (i == 0) (kind, st) = b.Stat(cur);
                if (!ExportFileSystem.IsDir(st)) throw new NinePException(Errno.ENOTDIR, "walk through a non-directory");
                if (names[i] is not ("." or "..")) b.LayerOf(kind).RequireAt(fid, cur, ExportFileSystem.MayExec);
                cur = names[i] switch { "." => cur, ".." => ExportFileSystem.ParentOf(cur), var n => ExportFileSystem.Child(cur, n) };
                (kind, st) = b.Stat(cur);
                qids.Add(b.LayerOf(kind).QidOf(cur, st));
            }
            catch when (i > 0)
            {
                return qids; // partial walk: no new fid
            }
        }
        walked = names.Count == 0 ? b.NewFid(cur, fid.Uid) : b.NewFid(cur, fid.Uid, kind, gen);
        return qids;
    }

    public void Clunk(ExportFid fid)
    {
        if (fid.Board is { } b) b.Forget(fid); // its inner fid goes with its last reference
        else shared.Clunk(fid);
    }

    public Attributes GetAttr(ExportFid fid, AttrMask request) => fid.Board is { } b ? OnInner(b, fid, (l, f) => l.GetAttr(f, request)) : shared.GetAttr(fid, request);

    public string ReadLink(ExportFid fid) => fid.Board is { } b ? OnInner(b, fid, (l, f) => l.ReadLink(f)) : shared.ReadLink(fid);

    public FsStats StatFs(ExportFid fid) => fid.Board is null ? shared.StatFs(fid) : shared.StatFs(fid);

    public int Read(ExportFid fid, ulong offset, Span<byte> dest)
    {
        if (fid.Board is not { } b) return shared.Read(fid, offset, dest);
        var (inner, layer) = b.Lease(fid);
        try { return layer.Read(inner, offset, dest); }
        finally { inner.Release(); }
    }

    public uint Write(ExportFid fid, ulong offset, ReadOnlySpan<byte> data)
    {
        if (fid.Board is not { } b) return shared.Write(fid, offset, data);
        var (inner, layer) = b.Lease(fid);
        try
        {
            if (layer != b.Upper) throw new NinePException(Errno.EBADF, "fid not open for writing"); // never the shared export
            return layer.Write(inner, offset, data);
        }
        finally { inner.Release(); }
    }

    public void Fsync(ExportFid fid, bool dataOnly)
    {
        if (fid.Board is not { } b) { shared.Fsync(fid, dataOnly); return; }
        OnInner(b, fid, (l, f) => { if (l == b.Upper) l.Fsync(f, dataOnly); return 0; });
    }

    public List<DirEntry> ReadDir(ExportFid fid) => fid.Board is { } b ? b.ReadDir(fid.Path) : shared.ReadDir(fid);

    public byte Lock(ExportFid fid, in LockRange range, uint flags) => LockValues.Success;

    public LockRange GetLock(ExportFid fid, in LockRange range) => range with { Type = LockValues.Unlock };

    /// <summary>Tlopen: opening for writing or truncating copies the object up first.</summary>
    public Qid Open(ExportFid fid, uint flags)
    {
        if (fid.Board is not { } b) return shared.Open(fid, flags);
        if ((flags & 3) != Libc.O_RDONLY || (flags & Libc.O_TRUNC) != 0)
        {
            var (kind, st) = b.Stat(fid.Path);
            if (!ExportFileSystem.IsDir(st) && kind == LayerKind.Lower)
                lock (b.Changes) b.CopyUp(fid.Path);
        }
        return OnInner(b, fid, (l, f) => l.Open(f, flags));
    }

    public void SetAttr(ExportFid fid, SetAttrMask valid, in SetAttrValues values)
    {
        if (fid.Board is not { } b) { shared.SetAttr(fid, valid, values); return; }
        lock (b.Changes)
        {
            using var own = b.LeaseUpper(fid);
            b.Upper.SetAttr(own.Fid, valid, values);
        }
    }

    // ---------------- xattrs: the overlay's own (trusted.overlay.*) are neither shown nor settable ----------------

    public byte[] XattrWalk(ExportFid fid, string name, out ExportFid attrFid)
    {
        if (fid.Board is not { } b) return shared.XattrWalk(fid, name, out attrFid);
        if (name.StartsWith(BoardLayer.OverlayXattrPrefix, StringComparison.Ordinal)) throw new NinePException(Errno.ENODATA, "no such xattr");
        var value = OnInner(b, fid, (l, f) =>
        {
            var v = l.XattrWalk(f, name, out var inner);
            l.Clunk(inner);
            inner.Release();
            return v;
        });
        attrFid = b.NewFid(fid.Path, fid.Uid);
        return name.Length == 0 ? WithoutOverlayNames(value) : value;
    }

    private static byte[] WithoutOverlayNames(byte[] list)
    {
        var names = Encoding.UTF8.GetString(list).Split('\0', StringSplitOptions.RemoveEmptyEntries)
            .Where(n => !n.StartsWith(BoardLayer.OverlayXattrPrefix, StringComparison.Ordinal));
        return Encoding.UTF8.GetBytes(string.Concat(names.Select(n => n + "\0")));
    }

    public void XattrCreate(ExportFid fid, string name, ulong size, uint flags)
    {
        if (fid.Board is not { } b) { shared.XattrCreate(fid, name, size, flags); return; }
        if (name.StartsWith(BoardLayer.OverlayXattrPrefix, StringComparison.Ordinal)) throw new NinePException(Errno.EPERM, "the overlay's own xattr");
        OnInner(b, fid, (l, f) => { l.XattrCreate(f, name, size, flags); return 0; });
    }

    public void XattrSet(ExportFid fid, string name, byte[] value, uint flags)
    {
        if (fid.Board is not { } b) { shared.XattrSet(fid, name, value, flags); return; }
        lock (b.Changes)
        {
            using var own = b.LeaseUpper(fid);
            b.Upper.XattrSet(own.Fid, name, value, flags);
        }
    }

    // ---------------- names: the board's layer changes, the shared export never does ----------------

    public Qid Create(ExportFid dir, string name, uint flags, uint mode, uint gid) =>
        dir.Board is { } b ? b.Create(dir, name, flags, mode, gid) : shared.Create(dir, name, flags, mode, gid);

    public Qid Mkdir(ExportFid dir, string name, uint mode, uint gid) =>
        dir.Board is { } b ? b.Make(dir, name, (u, f) => u.Mkdir(f, name, mode, gid), isDir: true) : shared.Mkdir(dir, name, mode, gid);

    public Qid Symlink(ExportFid dir, string name, string target, uint gid) =>
        dir.Board is { } b ? b.Make(dir, name, (u, f) => u.Symlink(f, name, target, gid), isDir: false) : shared.Symlink(dir, name, target, gid);

    public Qid Mknod(ExportFid dir, string name, uint mode, uint major, uint minor, uint gid)
    {
        if (dir.Board is not { } b) return shared.Mknod(dir, name, mode, major, minor, gid);
        if ((mode & Libc.S_IFMT) == Libc.S_IFCHR && major == 0 && minor == 0)
            throw new NinePException(Errno.EPERM, "character device 0:0 is how a board's layer marks a deletion");
        return b.Make(dir, name, (u, f) => u.Mknod(f, name, mode, major, minor, gid), isDir: false);
    }

    public void Link(ExportFid dir, ExportFid target, string name)
    {
        if (dir.Board is not { } b) { shared.Link(dir, target, name); return; }
        if (target.Board != b) throw new NinePException(Errno.EXDEV, "link across boards");
        b.Link(dir, target, name);
    }

    public void Rename(ExportFid fid, ExportFid newDir, string newName)
    {
        if (fid.Board is not { } b) { shared.Rename(fid, newDir, newName); return; }
        if (fid.Path.Length == 0) throw new NinePException(Errno.EBUSY, "rename the export root");
        b.Rename(fid, ExportFileSystem.ParentOf(fid.Path), ExportFileSystem.NameOf(fid.Path), SameBoard(b, newDir).Path, newName);
    }

    public void RenameAt(ExportFid oldDir, string oldName, ExportFid newDir, string newName)
    {
        if (oldDir.Board is not { } b) { shared.RenameAt(oldDir, oldName, newDir, newName); return; }
        b.Rename(oldDir, oldDir.Path, oldName, SameBoard(b, newDir).Path, newName);
    }

    private static ExportFid SameBoard(BoardLayer b, ExportFid other) =>
        other.Board == b ? other : throw new NinePException(Errno.EXDEV, "rename across boards");

    public void UnlinkAt(ExportFid dir, string name, uint flags)
    {
        if (dir.Board is not { } b) { shared.UnlinkAt(dir, name, flags); return; }
        b.Delete(dir, dir.Path, name, (flags & Libc.AT_REMOVEDIR) != 0);
    }

    public void Remove(ExportFid fid)
    {
        if (fid.Board is not { } b) { shared.Remove(fid); return; }
        if (fid.Path.Length == 0) throw new NinePException(Errno.EBUSY, "remove the export root");
        var (_, st) = b.Stat(fid.Path);
        b.Delete(fid, ExportFileSystem.ParentOf(fid.Path), ExportFileSystem.NameOf(fid.Path), ExportFileSystem.IsDir(st));
    }

    private static T OnInner<T>(BoardLayer b, ExportFid fid, Func<ExportFileSystem, ExportFid, T> op)
    {
        var (inner, layer) = b.Lease(fid);
        try { return op(layer, inner); }
        finally { inner.Release(); }
    }

    public void Dispose()
    {
        lock (_boards)
        {
            foreach (var b in _boards.Values) b.Dispose();
            _boards.Clear();
        }
    }
}
