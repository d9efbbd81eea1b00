using Microsoft.Win32.SafeHandles;
using RootfsExport.NineP.Server;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportServing;

/// <summary>Copy-up, whiteouts and opaque directories: how a board's change lands in its own layer.</summary>
public sealed partial class BoardLayer
{
    /// <summary>
    /// Makes rel an object of the board's own layer, its directories first: content, owner, mode, device
    /// number and xattrs as the shared export has them. Reads the shared export through its confined handle
    /// (openat2 RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) and writes only the board's. Caller holds <see cref="Changes"/>.
    /// </summary>
    internal void CopyUp(string rel)
    {
        var kind = Resolve(rel);
        if (kind == LayerKind.Upper) return;
        if (kind == LayerKind.Absent) throw new NinePException(Errno.ENOENT, $"{rel}: no such file");
        CopyUp(ExportFileSystem.ParentOf(rel));
        CopyObject(rel);
        Changed();
    }

    private void CopyObject(string rel)
    {
        var st = Lower.StatRel(rel);
        var (mode, uid, gid, rdev, row) = Lower.Ownership(rel, st);
        var name = ExportFileSystem.NameOf(rel);
        using (var dir = Upper.OpenDir(ExportFileSystem.ParentOf(rel)))
        {
            var parentBefore = ExportFileSystem.StatFd(dir.Fd);
            MakeCopy(rel, st, mode, dir.Fd, name);
            var ust = ExportFileSystem.StatAt(dir.Fd, name);
            var urow = new FileRow(Upper.DbPath(rel), ust.Dev(), ust.InoSigned(), uid, gid, mode, rdev);
            _store.PutNew(urow);
            if (row != null)
                foreach (var x in Lower.Store.ListXattrs(row))
                    if (Lower.Store.GetXattr(row, x) is { } value) _store.SetXattr(urow, x, value);
            KeepTimes(st, dir.Fd, name);
            KeepParentTimes(parentBefore, dir.Fd);
        }
    }

    /// <summary>
    /// A copy-up is no change to the directory holding it: its times go back to what they were (as overlayfs
    /// restores the parent's), so the board (and a later commit) sees them changed only by what it did there.
    /// </summary>
    private static unsafe void KeepParentTimes(in Statx before, int dirFd)
    {
        int fd = Libc.OpenAt(dirFd, ".", Libc.O_RDONLY | Libc.O_DIRECTORY | Libc.O_CLOEXEC, 0); // the O_PATH fd's own directory
        if (fd < 0) return; // best effort, as for the copy's own times
        var times = stackalloc Timespec[2];
        times[0] = new Timespec { Sec = before.Atime.Sec, Nsec = before.Atime.Nsec };
        times[1] = new Timespec { Sec = before.Mtime.Sec, Nsec = before.Mtime.Nsec };
        _ = Libc.Futimens(fd, times);
        Libc.Close(fd);
    }

    private unsafe void MakeCopy(string rel, in Statx st, uint mode, int dirFd, string name)
    {
        int rc;
        switch (st.Mode & Libc.S_IFMT)
        {
            case Libc.S_IFDIR:
                rc = Libc.MkdirAt(dirFd, name, StMode.OnDisk(mode, true));
                break;
            case Libc.S_IFLNK:
                rc = Libc.SymlinkAt(Lower.ReadLinkRel(rel), dirFd, name);
                break;
            case Libc.S_IFIFO:
                rc = Libc.MknodAt(dirFd, name, Libc.S_IFIFO | StMode.OnDisk(mode, false), 0);
                break;
            case Libc.S_IFREG:
                CopyFile(rel, dirFd, name, mode);
                return;
            default: // a host socket or device no board can have made: an empty placeholder, as pseudo keeps them
                rc = Libc.OpenAt(dirFd, name, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0x180);
                if (rc >= 0) rc = Libc.Close(rc);
                break;
        }
        if (rc != 0) throw PosixException.Last("copy-up", rel);
    }

    private void CopyFile(string rel, int dirFd, string name, uint mode)
    {
        int src = Lower.OpenRel(rel, Libc.O_RDONLY);
        using var from = new FileStream(new SafeFileHandle(src, ownsHandle: true), FileAccess.Read, 0);
        int dst = Libc.OpenAt(dirFd, name, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, StMode.OnDisk(mode, false));
        if (dst < 0) throw PosixException.Last("copy-up", rel);
        using var to = new FileStream(new SafeFileHandle(dst, ownsHandle: true), FileAccess.Write, 0);
        from.CopyTo(to, 1 << 20);
    }

    private static unsafe void KeepTimes(in Statx st, int dirFd, string name)
    {
        var times = stackalloc Timespec[2];
        times[0] = new Timespec { Sec = st.Atime.Sec, Nsec = st.Atime.Nsec };
        times[1] = new Timespec { Sec = st.Mtime.Sec, Nsec = st.Mtime.Nsec };
        _ = Libc.UtimensAt(dirFd, name, times, Libc.AT_SYMLINK_NOFOLLOW); // best effort: content and owners are what count
    }

    /// <summary>Hides the shared export's rel from the board: a whiteout in the board's layer (its directory copied up).</summary>
    internal void Whiteout(string rel)
    {
        CopyUp(ExportFileSystem.ParentOf(rel));
        var name = ExportFileSystem.NameOf(rel);
        using var dir = Upper.OpenDir(ExportFileSystem.ParentOf(rel));
        int fd = Libc.OpenAt(dir.Fd, name, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0);
        if (fd < 0) throw PosixException.Last("whiteout", rel);
        Libc.Close(fd);
        var st = ExportFileSystem.StatAt(dir.Fd, name);
        _store.PutNew(new FileRow(Upper.DbPath(rel), st.Dev(), st.InoSigned(), 0, 0, FileRow.S_IFCHR, 0));
        Changed();
    }

    /// <summary>Removes a whiteout at rel (a new object takes the name); whether there was one.</summary>
    internal bool DropWhiteout(string rel)
    {
        if (UpperRow(rel) is not { } row || !IsWhiteout(row)) return false;
        using var dir = Upper.OpenDir(ExportFileSystem.ParentOf(rel));
        if (Libc.UnlinkAt(dir.Fd, ExportFileSystem.NameOf(rel), 0) != 0) throw PosixException.Last("unlink whiteout", rel);
        _store.DeletePath(row.Path);
        Changed();
        return true;
    }

    /// <summary>The whiteouts inside the board's directory rel go (it is being removed or replaced, and is empty to the board).</summary>
    internal void DropWhiteoutsIn(string rel)
    {
        foreach (var e in Upper.ReadDirRel(rel))
            if (e.Name is not ("." or "..")) DropWhiteout(ExportFileSystem.Child(rel, e.Name));
    }

    /// <summary>The board's directory rel hides whatever the shared export has below it (a directory made where one was removed).</summary>
    internal void MarkOpaque(string rel)
    {
        var row = UpperRow(rel) ?? throw new NinePException(Errno.ENOENT, $"{rel}: not in the board's layer");
        _store.SetXattr(row, OpaqueXattr, "y"u8.ToArray());
        lock (_opaque) _opaque.Add(rel);
        Changed();
    }

    /// <summary>A directory of the board's layer went or moved: its opaque marks (and those below it) follow.</summary>
    private void MoveOpaque(string oldRel, string? newRel)
    {
        lock (_opaque)
            foreach (var p in _opaque.Where(p => p == oldRel || p.StartsWith(oldRel + "/", StringComparison.Ordinal)).ToList())
            {
                _opaque.Remove(p);
                if (newRel != null) _opaque.Add(newRel + p[oldRel.Length..]);
            }
    }

    /// <summary>The shared export's directory at rel exists and shows through the board's directory there.</summary>
    internal bool IsMergedDir(string rel) =>
        LowerShowsBelow(rel) && Lower.TryStatRel(rel, out var st) && ExportFileSystem.IsDir(st);
}
