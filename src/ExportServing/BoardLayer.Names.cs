using RootfsExport.NineP.Protocol;
using RootfsExport.NineP.Server;
using RootfsExport.Posix;

namespace RootfsExport.ExportServing;

/// <summary>A board's creations, links, renames and deletions: all in its own layer, whiteouts for the shared export's names.</summary>
public sealed partial class BoardLayer
{
    /// <summary>
    /// A new name in the board's directory dirRel: refused when the board sees one there; a whiteout there
    /// makes way (and is put back when the creation fails).
    /// </summary>
    private bool ClaimName(string dirRel, string name)
    {
        var rel = ExportFileSystem.Child(dirRel, name);
        if (Resolve(rel) != LayerKind.Absent) throw new NinePException(Errno.EEXIST, $"{name}: file exists");
        CopyUp(dirRel);
        return DropWhiteout(rel);
    }

    /// <summary>Tlcreate: the directory fid becomes the new file, open, bound to the board's object.</summary>
    internal Qid Create(ExportFid dir, string name, uint flags, uint mode, uint gid)
    {
        lock (Changes)
        {
            var dirRel = dir.Path;
            bool hid = ClaimName(dirRel, name);
            var own = Upper.Track(new ExportFid(dirRel, dir.Uid));
            try
            {
                var qid = Upper.Create(own, name, flags, mode, gid);
                Changed();
                lock (dir.BindingLock)
                {
                    dir.Path = own.Path;
                    Rebind(dir, own, Upper, Generation);
                }
                return qid;
            }
            catch
            {
                Upper.Clunk(own);
                own.Release();
                if (hid) Whiteout(ExportFileSystem.Child(dirRel, name));
                throw;
            }
        }
    }

    /// <summary>Tmkdir, Tsymlink, Tmknod: made in the board's directory; a directory made where one was removed is opaque.</summary>
    internal Qid Make(ExportFid dir, string name, Func<ExportFileSystem, ExportFid, Qid> make, bool isDir)
    {
        lock (Changes)
        {
            var rel = ExportFileSystem.Child(dir.Path, name);
            bool hid = ClaimName(dir.Path, name);
            Qid qid;
            using (var own = UpperFid(dir.Path, dir.Uid))
            {
                try { qid = make(Upper, own.Fid); }
                catch
                {
                    if (hid) Whiteout(rel);
                    throw;
                }
            }
            Changed();
            if (isDir && hid) MarkOpaque(rel);
            return qid;
        }
    }

    internal void Link(ExportFid dir, ExportFid target, string name)
    {
        lock (Changes)
        {
            var rel = ExportFileSystem.Child(dir.Path, name);
            using var from = LeaseUpper(target);
            bool hid = ClaimName(dir.Path, name);
            using var to = UpperFid(dir.Path, dir.Uid);
            try { Upper.Link(to.Fid, from.Fid, name); }
            catch
            {
                if (hid) Whiteout(rel);
                throw;
            }
            Changed();
        }
    }

    /// <summary>
    /// Unlink or rmdir of name in the board's directory dirRel: the board's own object goes, and a whiteout
    /// hides the shared export's. A directory must look empty to the board.
    /// </summary>
    internal void Delete(ExportFid who, string dirRel, string name, bool isDir)
    {
        lock (Changes)
        {
            var rel = ExportFileSystem.Child(dirRel, name);
            var (kind, st) = Stat(rel);
            if (isDir != ExportFileSystem.IsDir(st)) throw new NinePException(isDir ? Errno.ENOTDIR : Errno.EISDIR, rel);
            if (isDir && !IsEmptyDir(rel)) throw new NinePException(Errno.ENOTEMPTY, $"{rel}: directory not empty");
            bool shared = LowerHasVisible(rel);
            using var dir = UpperFid(dirRel, who.Uid);
            if (kind == LayerKind.Upper)
            {
                if (isDir) DropWhiteoutsIn(rel);
                Upper.UnlinkAt(dir.Fid, name, isDir ? Posix.Native.Libc.AT_REMOVEDIR : 0u);
                if (isDir) MoveOpaque(rel, null);
            }
            else
                using (var held = Upper.OpenDir(dirRel))
                    Upper.RequireInDir(who, held, ExportFileSystem.MayWrite | ExportFileSystem.MayExec);
            if (shared) Whiteout(rel);
            Changed();
        }
    }

    /// <summary>
    /// A rename in the board's view. A directory the shared export also has is refused with EXDEV, as overlayfs
    /// refuses it without redirects: mv then copies and deletes. A directory moved onto a name the shared export
    /// has becomes opaque; the shared export's old name is hidden by a whiteout.
    /// </summary>
    internal void Rename(ExportFid who, string oldDir, string oldName, string newDir, string newName)
    {
        lock (Changes)
        {
            var oldRel = ExportFileSystem.Child(oldDir, oldName);
            var newRel = ExportFileSystem.Child(newDir, newName);
            if (oldRel == newRel) return;
            var (kind, st) = Stat(oldRel);
            bool isDir = ExportFileSystem.IsDir(st);
            if (isDir && (kind == LayerKind.Lower || IsMergedDir(oldRel))) throw new NinePException(Errno.EXDEV, $"{oldRel}: a directory of the shared export");
            if (isDir && (newRel + "/").StartsWith(oldRel + "/", StringComparison.Ordinal)) throw new NinePException(Errno.EINVAL, "rename into itself");
            CheckRenameTarget(newRel, isDir);
            bool oldShared = LowerHasVisible(oldRel), newShared = LowerHasVisible(newRel);
            CopyUp(oldRel);
            using var from = UpperFid(oldDir, who.Uid);
            using var to = UpperFid(newDir, who.Uid);
            bool hid = DropWhiteout(newRel);
            try { Upper.RenameAt(from.Fid, oldName, to.Fid, newName); }
            catch
            {
                if (hid) Whiteout(newRel);
                throw;
            }
            if (isDir) MoveOpaque(oldRel, newRel);
            if (isDir && newShared) MarkOpaque(newRel);
            if (oldShared) Whiteout(oldRel);
            _fids.Rename(oldRel, newRel);
            Changed();
        }
    }

    /// <summary>What a rename may replace: a non-directory by a non-directory, an empty directory by a directory.</summary>
    private void CheckRenameTarget(string newRel, bool isDir)
    {
        var kind = Resolve(newRel);
        if (kind == LayerKind.Absent) return;
        var (_, st) = Stat(newRel);
        bool targetIsDir = ExportFileSystem.IsDir(st);
        if (targetIsDir && !isDir) throw new NinePException(Errno.EISDIR, newRel);
        if (!targetIsDir && isDir) throw new NinePException(Errno.ENOTDIR, newRel);
        if (!targetIsDir) return;
        if (!IsEmptyDir(newRel)) throw new NinePException(Errno.ENOTEMPTY, $"{newRel}: directory not empty");
        if (kind == LayerKind.Upper) DropWhiteoutsIn(newRel);
    }
}
