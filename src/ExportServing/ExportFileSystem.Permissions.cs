using System.Text;
using RootfsExport.NineP.Protocol;
using RootfsExport.NineP.Server;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportServing;

/// <summary>The export as 9P sees it: permission checks for fids attached as a board user other than root (access=user).</summary>
public sealed unsafe partial class ExportFileSystem
{
    /// <summary>etc/passwd or etc/group of the export, for <see cref="BoardUsers"/>; null when absent.</summary>
    internal string? ReadExportFile(string rel)
    {
        int fd;
        try { fd = OpenRel(rel, Libc.O_RDONLY); }
        catch (PosixException) { return null; }
        using var stream = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true), FileAccess.Read, 0);
        var buf = new byte[1 << 20];
        int n = 0, r;
        while (n < buf.Length && (r = stream.Read(buf, n, buf.Length - n)) > 0) n += r;
        return Encoding.UTF8.GetString(buf, 0, n);
    }

    /// <summary>Whether uid gets `want` (MayRead/MayWrite/MayExec) from the owner, group or other bits.</summary>
    private bool Permits(uint uid, FileRow? row, in Statx st, int want) =>
        Permits(uid, row?.Uid ?? st.Uid, row?.Gid ?? st.Gid, EffectiveMode(st, row), want);

    private bool Permits(uint uid, uint owner, uint group, uint mode, int want)
    {
        uint bits = uid == owner ? mode >> 6 : _users.InGroup(uid, group) ? mode >> 3 : mode;
        return ((int)bits & want) == want;
    }

    private static NinePException Denied(string what) => new(Errno.EACCES, $"{what}: permission denied");

    /// <summary>Root may do anything (CAP_DAC_OVERRIDE), so its requests cost no check at all.</summary>
    internal void Require(ExportFid fid, FileRow? row, in Statx st, int want, string what)
    {
        if (fid.Uid != 0 && !Permits(fid.Uid, row, st, want)) throw Denied(what);
    }

    /// <summary>Search (and for a change, write) permission in the directory dir.</summary>
    internal void RequireInDir(ExportFid fid, HostDir dir, int want)
    {
        if (fid.Uid == 0) return;
        // A HostDir is always a directory (opened O_DIRECTORY), so a directory's row decides alone: no statx of
        // it, which was one more system call per Twalk of every non-root client. Only a directory without a
        // row (made on the host behind files.db) is stat'ed for its owner and mode.
        if (_store.Get(DbPath(dir.Rel)) is { } row && (row.Mode & Libc.S_IFMT) == Libc.S_IFDIR)
        {
            if (!Permits(fid.Uid, row.Uid, row.Gid, row.Mode, want)) throw Denied(dir.Rel.Length == 0 ? "/" : dir.Rel);
            return;
        }
        var st = StatFd(dir.Fd);
        Require(fid, RowFor(dir.Rel, st), st, want, dir.Rel.Length == 0 ? "/" : dir.Rel);
    }

    private void RequireOpen(ExportFid fid, in Statx st, uint flags)
    {
        if (fid.Uid == 0) return;
        int want = (flags & 3) switch { 0 => MayRead, 1 => MayWrite, 2 => MayRead | MayWrite, _ => 0 };
        if ((flags & Libc.O_TRUNC) != 0) want |= MayWrite;
        Require(fid, RowFor(fid.Path, st), st, want, fid.Path);
    }

    /// <summary>Removing or replacing name in dir: write and search on dir, and in a sticky directory ownership.</summary>
    internal void RequireMayDelete(ExportFid fid, HostDir dir, string name)
    {
        if (fid.Uid == 0) return;
        var dst = StatFd(dir.Fd);
        var drow = RowFor(dir.Rel, dst);
        Require(fid, drow, dst, MayWrite | MayExec, dir.Rel.Length == 0 ? "/" : dir.Rel);
        if ((EffectiveMode(dst, drow) & S_ISVTX) == 0) return;
        var st = StatAt(dir.Fd, name);
        var row = RowFor(Child(dir.Rel, name), st);
        if (fid.Uid != (row?.Uid ?? st.Uid) && fid.Uid != (drow?.Uid ?? dst.Uid))
            throw new NinePException(Errno.EPERM, $"{name}: sticky directory, not the owner");
    }

    /// <summary>
    /// Owner, group and mode of a new object in dir: the attaching user; a setgid directory's group (and for a
    /// directory its setgid bit), else the gid the client sent: the creating process's fsgid, which only the
    /// board knows (newgrp, setgid programs). The mode is the client's, its umask applied there.
    /// </summary>
    private (uint Uid, uint Gid, uint Mode) NewOwner(ExportFid dfid, HostDir dir, uint gid, uint mode, bool isDir)
    {
        uint uid = dfid.Uid;
        var dst = StatFd(dir.Fd);
        var drow = RowFor(dir.Rel, dst);
        if ((EffectiveMode(dst, drow) & S_ISGID) != 0)
        {
            gid = drow?.Gid ?? dst.Gid;
            if (isDir) mode |= S_ISGID;
            // a file handed a group its creator is not in must not be setgid to it
            if (!isDir && uid != 0 && !_users.InGroup(uid, gid)) mode &= ~S_ISGID;
        }
        return (uid, gid, mode);
    }

    /// <summary>
    /// Tsetattr by a user other than root, by Linux's rules: only the owner changes mode or times, nobody gives a
    /// file away, the owner changes the group to one of theirs; a chmod that sets setgid without that group
    /// drops the bit. Returns what is to be applied.
    /// </summary>
    private SetAttrValues CheckSetAttr(ExportFid fid, FileRow? row, in Statx st, SetAttrMask v, SetAttrValues m)
    {
        uint uid = fid.Uid;
        if (uid == 0) return m;
        uint owner = row?.Uid ?? st.Uid, group = row?.Gid ?? st.Gid;
        bool isOwner = uid == owner;
        if ((v & SetAttrMask.Uid) != 0 && !(isOwner && m.Uid == owner)) throw new NinePException(Errno.EPERM, "chown: not root");
        if ((v & SetAttrMask.Gid) != 0 && !(isOwner && (m.Gid == group || _users.InGroup(uid, m.Gid))))
            throw new NinePException(Errno.EPERM, "chgrp: not the owner or not a member");
        if ((v & SetAttrMask.Mode) != 0)
        {
            if (!isOwner) throw new NinePException(Errno.EPERM, "chmod: not the owner");
            uint newGroup = (v & SetAttrMask.Gid) != 0 ? m.Gid : group;
            if (!IsDir(st) && !_users.InGroup(uid, newGroup)) m = m with { Mode = m.Mode & ~S_ISGID };
        }
        if ((v & SetAttrMask.Size) != 0 && !(fid.Fd >= 0 && fid.Writable)) Require(fid, row, st, MayWrite, fid.Path);
        if ((v & (SetAttrMask.AtimeSet | SetAttrMask.MtimeSet)) != 0 && !isOwner) throw new NinePException(Errno.EPERM, "utimes: not the owner");
        if ((v & (SetAttrMask.Atime | SetAttrMask.Mtime)) != 0 && !isOwner) Require(fid, row, st, MayWrite, fid.Path);
        return m;
    }
}
