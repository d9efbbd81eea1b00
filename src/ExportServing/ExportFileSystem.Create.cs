using RootfsExport.NineP.Protocol;
using RootfsExport.NineP.Server;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportServing;

/// <summary>The export as 9P sees it: Tlopen and the requests that make a new object (create, mkdir, symlink, mknod, link).</summary>
public sealed unsafe partial class ExportFileSystem
{
    public Qid Open(ExportFid fid, uint flags)
    {
        var rel = fid.Path;
        var st = StatFid(fid);
        RequireOpen(fid, st, flags);
        if (IsDir(st))
        {
            if ((flags & 3) != Libc.O_RDONLY) throw new NinePException(Errno.EISDIR, "open a directory for writing");
        }
        else
        {
            if ((st.Mode & Libc.S_IFMT) == Libc.S_IFLNK) throw new NinePException(Errno.ELOOP, "open a symlink");
            int acc = (int)(flags & 3) == 3 ? Libc.O_RDWR : (int)(flags & 3);
            int extra = (int)flags & (Libc.O_TRUNC | Libc.O_APPEND);
            fid.Fd = OpenFid(fid, acc | extra);
            fid.Writable = acc != Libc.O_RDONLY;
        }
        return QidOf(rel, st);
    }

    public Qid Create(ExportFid fid, string name, uint flags, uint mode, uint gid)
    {
        var dirRel = fid.Path;
        using var dir = DirOf(fid);
        RequireInDir(fid, dir, MayWrite | MayExec);
        (uint uid, gid, mode) = NewOwner(fid, dir, gid, mode, isDir: false);
        int acc = (int)(flags & 3) == 3 ? Libc.O_RDWR : (int)(flags & 3);
        int fd = Libc.OpenAt(dir.Fd, name, acc | ((int)flags & Libc.O_APPEND) | Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW | Libc.O_CLOEXEC,
            StMode.OnDisk(mode, false));
        if (fd < 0) throw PosixException.Last("create", name);
        try
        {
            var st = StatFd(fd);
            var rel = Child(dirRel, name);
            _store.PutNew(new FileRow(DbPath(rel), st.Dev(), st.InoSigned(), uid, gid, Libc.S_IFREG | (mode & 0xfff), 0));
            fid.Fd = fd;
            fid.Writable = acc != Libc.O_RDONLY;
            fid.Path = rel;
            return new Qid(QidType.File, 0, QidPath(st));
        }
        catch
        {
            Libc.Close(fd);
            throw;
        }
    }

    public Qid Mkdir(ExportFid dfid, string name, uint mode, uint gid)
    {
        var rel = Child(dfid.Path, name);
        using var dir = DirOf(dfid);
        RequireInDir(dfid, dir, MayWrite | MayExec);
        (uint uid, gid, mode) = NewOwner(dfid, dir, gid, mode, isDir: true);
        if (Libc.MkdirAt(dir.Fd, name, StMode.OnDisk(mode, true)) != 0) throw PosixException.Last("mkdir", name);
        var st = StatAt(dir.Fd, name);
        _store.PutNew(new FileRow(DbPath(rel), st.Dev(), st.InoSigned(), uid, gid, Libc.S_IFDIR | (mode & 0xfff), 0));
        return new Qid(QidType.Dir, 0, QidPath(st));
    }

    public Qid Symlink(ExportFid dfid, string name, string target, uint gid)
    {
        if (target.Length == 0 || target.Contains('\0')) throw new NinePException(Errno.EINVAL, "bad symlink target");
        var rel = Child(dfid.Path, name);
        using var dir = DirOf(dfid);
        RequireInDir(dfid, dir, MayWrite | MayExec);
        (uint uid, gid, _) = NewOwner(dfid, dir, gid, 0x1ff, isDir: false);
        if (Libc.SymlinkAt(target, dir.Fd, name) != 0) throw PosixException.Last("symlink", name);
        var st = StatAt(dir.Fd, name);
        _store.PutNew(new FileRow(DbPath(rel), st.Dev(), st.InoSigned(), uid, gid, Libc.S_IFLNK | 0x1ff, 0));
        return new Qid(QidType.Symlink, 0, QidPath(st));
    }

    /// <summary>Device nodes and sockets become empty regular files (the DB row carries type and rdev); FIFOs are real.</summary>
    public Qid Mknod(ExportFid dfid, string name, uint mode, uint major, uint minor, uint gid)
    {
        var rel = Child(dfid.Path, name);
        uint type = mode & Libc.S_IFMT;
        if (type == 0) type = Libc.S_IFREG;
        using var dir = DirOf(dfid);
        RequireInDir(dfid, dir, MayWrite | MayExec);
        // device nodes need CAP_MKNOD on the board: only root makes them (FIFOs, sockets and files anyone)
        if (dfid.Uid != 0 && type is Libc.S_IFCHR or Libc.S_IFBLK) throw new NinePException(Errno.EPERM, "mknod of a device by a user");
        (uint uid, gid, mode) = NewOwner(dfid, dir, gid, mode, isDir: false);
        switch (type)
        {
            case Libc.S_IFIFO:
                if (Libc.MknodAt(dir.Fd, name, Libc.S_IFIFO | StMode.OnDisk(mode, false), 0) != 0) throw PosixException.Last("mkfifo", name);
                break;
            case Libc.S_IFCHR or Libc.S_IFBLK or Libc.S_IFSOCK or Libc.S_IFREG:
                int fd = Libc.OpenAt(dir.Fd, name, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, StMode.OnDisk(mode, false));
                if (fd < 0) throw PosixException.Last("mknod", name);
                Libc.Close(fd);
                break;
            default:
                throw new NinePException(Errno.EINVAL, "mknod of a directory or symlink");
        }
        var st = StatAt(dir.Fd, name);
        long rdev = type is Libc.S_IFCHR or Libc.S_IFBLK ? Libc.MakeDev(major, minor) : 0;
        _store.PutNew(new FileRow(DbPath(rel), st.Dev(), st.InoSigned(), uid, gid, type | (mode & 0xfff), rdev));
        return new Qid(QidType.File, 0, QidPath(st));
    }

    public void Link(ExportFid dfid, ExportFid fid, string name)
    {
        var srcRel = fid.Path;
        if (srcRel.Length == 0) throw new NinePException(Errno.EPERM, "link the export root");
        using var from = Locate(fid);
        var st = Stat(from);
        if (IsDir(st)) throw new NinePException(Errno.EPERM, "hard link to a directory");
        var row = EnsureRow(srcRel, st);
        using (var to = DirOf(dfid))
        {
            RequireInDir(dfid, to, MayWrite | MayExec);
            if (Libc.LinkAt(from.DirFd, from.Name, to.Fd, name, 0) != 0) throw PosixException.Last("link", name);
        }
        _store.PutLink(row with { Path = DbPath(Child(dfid.Path, name)) });
    }
}
