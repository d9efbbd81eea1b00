using RootfsExport.NineP.Protocol;
using RootfsExport.NineP.Server;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportServing;

/// <summary>The export as 9P sees it: Tgetattr and Tsetattr.</summary>
public sealed unsafe partial class ExportFileSystem
{
    private const long UtimeNow = (1L << 30) - 1, UtimeOmit = (1L << 30) - 2; // utimensat's UTIME_NOW, UTIME_OMIT

    public Attributes GetAttr(ExportFid fid, AttrMask request)
    {
        bool fromFd = false;
        var st = RecentWalk.Take(fid, out var walkedSt) ? walkedSt : StatObject(fid, out fromFd);
        var row = ObjectRow(fid, st, fromFd);
        uint mode = EffectiveMode(st, row);
        return new Attributes(
            AttrMask.Basic, new Qid(QidTypeOf(mode), 0, QidPath(st)), mode,
            row?.Uid ?? st.Uid, row?.Gid ?? st.Gid, st.Nlink,
            row != null ? KernelDev(row.Rdev) : KernelDev(st.Rdev()),
            st.Size, st.BlkSize, st.Blocks,
            (ulong)st.Atime.Sec, st.Atime.Nsec, (ulong)st.Mtime.Sec, st.Mtime.Nsec, (ulong)st.Ctime.Sec, st.Ctime.Nsec,
            0, 0, 0, 0);
    }

    /// <summary>
    /// The stat the last Twalk on this thread took of the object its new fid names. A client looking a name up
    /// sends Twalk and then Tgetattr of the new fid (v9fs's lookup, diodls), microseconds apart: that Tgetattr
    /// is answered from the walk's stat instead of a second statx, provided it is the very fid, nothing was
    /// changed through the server since the walk looked (<see cref="ChangeClock"/>) and at most
    /// <see cref="MaxAgeMs"/> passed (a bound on what a change on the host behind the server's back can hide).
    /// Used once. One per thread: a connection's read loop serves its metadata requests on its own thread.
    /// </summary>
    private sealed class RecentWalk
    {
        public const double MaxAgeMs = 1;
        private static readonly long MaxAgeTicks = (long)(System.Diagnostics.Stopwatch.Frequency * MaxAgeMs / 1000);
        [ThreadStatic] private static RecentWalk? t_last;
        private ExportFid? _fid;
        private Statx _st;
        private long _clock, _at;

        public static void Remember(ExportFid fid, in Statx st, long clock)
        {
            var r = t_last ??= new RecentWalk();
            r._fid = fid;
            r._st = st;
            r._clock = clock;
            r._at = System.Diagnostics.Stopwatch.GetTimestamp();
        }

        public static bool Take(ExportFid fid, out Statx st)
        {
            st = default;
            if (t_last is not { } r || r._fid != fid) return false;
            r._fid = null;
            if (r._clock != ChangeClock.Now || System.Diagnostics.Stopwatch.GetTimestamp() - r._at > MaxAgeTicks) return false;
            if (fid.Detached || fid.Fd >= 0 || fid.Pin >= 0) return false;
            st = r._st;
            return true;
        }
    }

    /// <summary>
    /// The fid's open fd, or the fd that pins its object since its name went; -1 when the fid reaches its object
    /// by name. Either fd stays valid while the caller holds its reference on the fid.
    /// </summary>
    private static int ObjectFd(ExportFid fid) => fid.Fd >= 0 ? fid.Fd : fid.Pin;

    /// <summary>The fid's object: through its fd when it has one (so an open, unlinked file still answers), else by name.</summary>
    private Statx StatObject(ExportFid fid, out bool fromFd)
    {
        int fd = ObjectFd(fid);
        fromFd = fd >= 0;
        return fromFd ? StatFd(fd) : StatFid(fid);
    }

    /// <summary>
    /// The row describing the object stat'ed through the fid: its name's row while the name is its own, else a
    /// row of another link of the inode, else the row it had when its name went.
    /// </summary>
    private FileRow? ObjectRow(ExportFid fid, in Statx st, bool fromFd)
    {
        if (!fid.Detached)
        {
            var row = RowFor(fid.Path, st);
            if (!fromFd || row is null || (row.Dev == st.Dev() && row.Ino == st.InoSigned())) return row;
        }
        var link = _store.ByInode(st.Dev(), st.InoSigned());
        if (link != null && EffectiveMode(st, link) == link.Mode) return link;
        return fid.Orphan?.Row;
    }

    /// <summary>/proc's name for an fd: reaches exactly the object the fd holds (O_PATH fds cannot be fchmod'ed).</summary>
    private static string ProcFd(int fd) => $"/proc/self/fd/{fd}";

    public void SetAttr(ExportFid fid, SetAttrMask v, in SetAttrValues values)
    {
        int fd = ObjectFd(fid);
        using var at = fd >= 0 ? default : Locate(fid);
        var st = fd >= 0 ? StatFd(fd) : Stat(at);
        var m = CheckSetAttr(fid, ObjectRow(fid, st, fd >= 0), st, v, values);
        if ((v & (SetAttrMask.Mode | SetAttrMask.Uid | SetAttrMask.Gid)) != 0) SetOwnership(fid, st, v, m, fd, at);
        if ((v & SetAttrMask.Size) != 0) Truncate(fid, st, m.Size, fd);
        if ((v & (SetAttrMask.Atime | SetAttrMask.Mtime)) != 0) SetTimes(fid, st, v, m, fd, at);
        // Every chown changes the ctime, even one to the same owner (the client sends CTIME alone for
        // chown(-1, -1)); the owner lives in the DB only, so touch the host inode's ctime with a chown that
        // changes nothing else. Best effort: the change itself is already recorded.
        if ((v & (SetAttrMask.Mode | SetAttrMask.Uid | SetAttrMask.Gid | SetAttrMask.Ctime)) != 0)
            _ = fd >= 0 ? Libc.FchownAt(fd, "", uint.MaxValue, uint.MaxValue, Libc.AT_EMPTY_PATH)
                : at.IsRoot ? Libc.FchownAt(_rootFd, "", uint.MaxValue, uint.MaxValue, Libc.AT_EMPTY_PATH)
                : Libc.FchownAt(at.DirFd, at.Name, uint.MaxValue, uint.MaxValue, Libc.AT_SYMLINK_NOFOLLOW);
    }

    private void SetOwnership(ExportFid fid, in Statx st, SetAttrMask v, in SetAttrValues m, int fd, in Place at)
    {
        var row = ObjectRow(fid, st, fd >= 0) ?? EnsureRow(fid.Path, st);
        uint uid = (v & SetAttrMask.Uid) != 0 ? m.Uid : row.Uid;
        uint gid = (v & SetAttrMask.Gid) != 0 ? m.Gid : row.Gid;
        uint mode = (v & SetAttrMask.Mode) != 0 ? m.Mode & 0xfff : row.Mode & 0xfff;
        if (fid.Orphan is { } orphan && ReferenceEquals(orphan.Row, row))
            orphan.Row = row with { Uid = uid, Gid = gid, Mode = (row.Mode & Libc.S_IFMT) | mode }; // no name: nothing to record
        else
            _store.UpdateOwnership(row, uid, gid, mode);
        if ((v & SetAttrMask.Mode) == 0 || (st.Mode & Libc.S_IFMT) == Libc.S_IFLNK) return;
        uint onDisk = StMode.OnDisk(mode, IsDir(st));
        // NOFOLLOW: a symlink swapped in since the stat must not redirect the chmod
        int rc = fd >= 0 ? (fd == fid.Fd ? Libc.Fchmod(fd, onDisk) : Libc.FchmodAt(Libc.AT_FDCWD, ProcFd(fd), onDisk, 0))
            : at.IsRoot ? Libc.Fchmod(_rootFd, onDisk) : Libc.FchmodAt(at.DirFd, at.Name, onDisk, Libc.AT_SYMLINK_NOFOLLOW);
        if (rc != 0) throw PosixException.Last("chmod", fid.Path);
    }

    private void Truncate(ExportFid fid, in Statx st, ulong size, int fd)
    {
        if (IsDir(st)) throw new NinePException(Errno.EISDIR, "truncate a directory");
        if ((st.Mode & Libc.S_IFMT) != Libc.S_IFREG) throw new NinePException(Errno.EINVAL, "truncate a special file");
        if (size > long.MaxValue) throw new NinePException(Errno.EFBIG, "size");
        bool ownFd = !(fid.Fd >= 0 && fid.Writable);
        int w = !ownFd ? fid.Fd
            : fd >= 0 ? Libc.OpenAt(Libc.AT_FDCWD, ProcFd(fd), Libc.O_WRONLY | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0)
            : OpenFid(fid, Libc.O_WRONLY);
        if (w < 0) throw PosixException.Last("open", fid.Path);
        try { if (Libc.Ftruncate(w, (long)size) != 0) throw PosixException.Last("truncate", fid.Path); }
        finally { if (ownFd) Libc.Close(w); }
    }

    private void SetTimes(ExportFid fid, in Statx st, SetAttrMask v, in SetAttrValues m, int fd, in Place at)
    {
        var times = stackalloc Timespec[2];
        times[0] = TimeFor(v, SetAttrMask.Atime, SetAttrMask.AtimeSet, m.AtimeSec, m.AtimeNsec);
        times[1] = TimeFor(v, SetAttrMask.Mtime, SetAttrMask.MtimeSet, m.MtimeSec, m.MtimeNsec);
        int rc;
        if (fd >= 0)
        {
            // through /proc a symlink would be followed: a symlink whose name went keeps its times
            if ((st.Mode & Libc.S_IFMT) == Libc.S_IFLNK) return;
            rc = Libc.UtimensAt(Libc.AT_FDCWD, ProcFd(fd), times, 0);
        }
        else rc = at.IsRoot ? Libc.Futimens(_rootFd, times) : Libc.UtimensAt(at.DirFd, at.Name, times, Libc.AT_SYMLINK_NOFOLLOW);
        if (rc != 0) throw PosixException.Last("utimensat", fid.Path);
    }

    private static Timespec TimeFor(SetAttrMask v, SetAttrMask bit, SetAttrMask setBit, ulong sec, ulong nsec)
    {
        if ((v & bit) == 0) return new Timespec { Sec = 0, Nsec = UtimeOmit };
        if ((v & setBit) == 0) return new Timespec { Sec = 0, Nsec = UtimeNow };
        if (nsec >= 1_000_000_000) throw new NinePException(Errno.EINVAL, "nanoseconds out of range");
        return new Timespec { Sec = (long)sec, Nsec = (long)nsec };
    }
}
