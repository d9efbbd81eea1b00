using System.Runtime.InteropServices;
using RootfsExport.NineP.Server;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportServing;

/// <summary>The export as 9P sees it: renames, unlinks and removes, and the fids whose names they take.</summary>
public sealed unsafe partial class ExportFileSystem
{
    /// <summary>Trename: the fid's object into newDir under newName.</summary>
    public void Rename(ExportFid fid, ExportFid newDir, string newName)
    {
        if (fid.Path.Length == 0) throw new NinePException(Errno.EBUSY, "rename the export root");
        using var from = Locate(fid);
        using var to = DirOf(newDir);
        Rename(fid, from.Dir, Child(from.Dir.Rel, from.Name), to, newName);
    }

    /// <summary>Trenameat: oldName in oldDir to newName in newDir.</summary>
    public void RenameAt(ExportFid oldDir, string oldName, ExportFid newDir, string newName)
    {
        using var from = DirOf(oldDir);
        using var to = DirOf(newDir);
        Rename(oldDir, from, Child(from.Rel, oldName), to, newName); // from.Rel: the path of the directory we hold, as Unlink does
    }

    private void Rename(ExportFid who, HostDir from, string oldRel, HostDir to, string newName)
    {
        var newRel = Child(to.Rel, newName);
        if (newRel == oldRel) return;
        bool targetExisted = Libc.StatxAt(to.Fd, newName, Libc.AT_SYMLINK_NOFOLLOW, StatxMask, out _) == 0;
        RequireMayDelete(who, from, NameOf(oldRel));
        if (targetExisted) RequireMayDelete(who, to, newName); else RequireInDir(who, to, MayWrite | MayExec);
        // fids on a replaced target keep reaching the replaced object, as a process's open file does
        var replaced = targetExisted ? PrepareDetach(to, newName, newRel) : null;
        if (Libc.RenameAt2(from.Fd, NameOf(oldRel), to.Fd, newName, 0) != 0)
        {
            int e = Marshal.GetLastPInvokeError();
            replaced?.Abandon();
            throw new PosixException(e, "rename", newName);
        }
        replaced?.Apply();
        _store.Rename(DbPath(oldRel), DbPath(newRel), targetExisted);
        _liveFids.Rename(oldRel, newRel);
    }

    /// <summary>
    /// The fids naming an object whose name an unlink or a rename is about to take: each gets an O_PATH fd of the
    /// object (unless it has it open) and the object's row, shared. Applied only once the operation succeeded.
    /// </summary>
    private sealed class Detachment(List<(ExportFid ExportFid, int Pin)> fids, OrphanRow orphan)
    {
        public void Apply()
        {
            foreach (var (f, pin) in fids)
            {
                f.Orphan = orphan;
                if (pin >= 0) f.Pin = pin;
                f.Detached = true;
                f.Release();
            }
        }

        public void Abandon()
        {
            foreach (var (f, pin) in fids)
            {
                if (pin >= 0) Libc.Close(pin);
                f.Release();
            }
        }
    }

    private Detachment? PrepareDetach(HostDir dir, string name, string rel)
    {
        var naming = _liveFids.Naming(rel);
        if (naming.Count == 0 || Libc.StatxAt(dir.Fd, name, Libc.AT_SYMLINK_NOFOLLOW, StatxMask, out var st) != 0) return null;
        var fids = new List<(ExportFid, int)>(naming.Count);
        foreach (var f in naming)
        {
            if (!f.TryAddRef()) continue; // clunked meanwhile
            int pin = f.Fd >= 0 ? -1 : Libc.OpenAt(dir.Fd, name, Libc.O_PATH | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0);
            if (f.Fd < 0 && pin < 0) { f.Release(); continue; }
            fids.Add((f, pin));
        }
        var row = RowFor(rel, st) ?? new FileRow(DbPath(rel), st.Dev(), st.InoSigned(), st.Uid, st.Gid, st.Mode, 0);
        return new Detachment(fids, new OrphanRow(row));
    }

    public void UnlinkAt(ExportFid dirFid, string name, uint flags)
    {
        using var d = DirOf(dirFid);
        RequireMayDelete(dirFid, d, name);
        Unlink(d, name, (flags & Libc.AT_REMOVEDIR) != 0);
    }

    private void Unlink(HostDir d, string name, bool dir)
    {
        var rel = Child(d.Rel, name);
        var removed = PrepareDetach(d, name, rel);
        if (Libc.UnlinkAt(d.Fd, name, dir ? Libc.AT_REMOVEDIR : 0) != 0)
        {
            int e = Marshal.GetLastPInvokeError();
            removed?.Abandon();
            throw new PosixException(e, dir ? "rmdir" : "unlink", name);
        }
        removed?.Apply();
        var path = DbPath(rel);
        if (dir) _store.DeleteTree(path); else _store.DeletePath(path);
    }

    public void Remove(ExportFid fid)
    {
        if (fid.Path.Length == 0) throw new NinePException(Errno.EBUSY, "remove the export root");
        using var at = Locate(fid);
        RequireMayDelete(fid, at.Dir, at.Name);
        Unlink(at.Dir, at.Name, IsDir(Stat(at)));
    }
}
