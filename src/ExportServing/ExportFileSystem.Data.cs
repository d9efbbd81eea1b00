using System.Runtime.InteropServices;
using System.Text;
using RootfsExport.NineP.Protocol;
using RootfsExport.NineP.Server;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;

namespace RootfsExport.ExportServing;

/// <summary>The export as 9P sees it: reads, writes, directory listings and the requests answered without the database.</summary>
public sealed unsafe partial class ExportFileSystem
{
    public string ReadLink(ExportFid fid)
    {
        var rel = fid.Path;
        if (rel.Length == 0) throw new NinePException(Errno.EINVAL, "not a symlink");
        using var at = Locate(fid);
        var buf = new byte[4096];
        fixed (byte* p = buf)
        {
            nint n = Libc.ReadlinkAt(at.DirFd, at.Name, p, (nuint)buf.Length);
            if (n < 0) throw PosixException.Last("readlink", rel);
            return Encoding.UTF8.GetString(buf, 0, (int)n);
        }
    }

    public FsStats StatFs(ExportFid fid)
    {
        if (Libc.Fstatfs(_rootFd, out var s) != 0) throw PosixException.Last("statfs");
        return new FsStats((uint)s.Type, (uint)s.Bsize, s.Blocks, s.Bfree, s.Bavail, s.Files, s.Ffree, s.Fsid, (uint)s.Namelen);
    }

    /// <summary>Locks are the board's business (the kernel keeps them per mount): every request succeeds.</summary>
    public byte Lock(ExportFid fid, in LockRange range, uint flags) => LockValues.Success;

    public LockRange GetLock(ExportFid fid, in LockRange range) => range with { Type = LockValues.Unlock };

    /// <summary>Reads file data into dest by pread; returns the byte count.</summary>
    public int Read(ExportFid fid, ulong offset, Span<byte> dest)
    {
        if (fid.Fd < 0) throw new NinePException(Errno.EBADF, "fid not open");
        fixed (byte* p = dest) return Transfer(fid, offset, p, dest.Length, write: false);
    }

    public uint Write(ExportFid fid, ulong offset, ReadOnlySpan<byte> data)
    {
        if (fid.Fd < 0 || !fid.Writable) throw new NinePException(Errno.EBADF, "fid not open for writing");
        fixed (byte* p = data) return (uint)Transfer(fid, offset, p, data.Length, write: true);
    }

    /// <summary>
    /// pread or pwrite until the whole span moved, the file ended, or an error came after some bytes moved (a
    /// short count then, the error is for the client's next request); EINTR retries.
    /// </summary>
    private static int Transfer(ExportFid fid, ulong offset, byte* p, int length, bool write)
    {
        if (offset > long.MaxValue) throw new NinePException(Errno.EINVAL, "offset");
        int fd = fid.Fd, total = 0;
        while (total < length)
        {
            nint r = write ? Libc.Pwrite(fd, p + total, (nuint)(length - total), (long)offset + total)
                : Libc.Pread(fd, p + total, (nuint)(length - total), (long)offset + total);
            if (r < 0)
            {
                int e = Marshal.GetLastPInvokeError();
                if (e == Errno.EINTR) continue;
                // a read stops early only when a non-blocking object (a FIFO) has nothing more for now
                if (total > 0 && (write || e == Errno.EAGAIN)) break;
                throw new PosixException(e, write ? "write" : "read", fid.Path);
            }
            if (r == 0) break; // end of file; a write of 0 bytes would only repeat
            total += (int)r;
        }
        return total;
    }

    public void Fsync(ExportFid fid, bool dataOnly)
    {
        int fd = fid.Fd;
        if (fd < 0) return;
        if ((dataOnly ? Libc.Fdatasync(fd) : Libc.Fsync(fd)) != 0) throw PosixException.Last("fsync", fid.Path);
    }

    /// <summary>The directory's entries with '.' and '..', typed by files.db where its row describes them.</summary>
    public List<DirEntry> ReadDir(ExportFid fid) => Snapshot(fid);

    private List<DirEntry> Snapshot(ExportFid fid)
    {
        var rel = fid.Path;
        int fd = OpenFid(fid, Libc.O_RDONLY | Libc.O_DIRECTORY);
        using var dir = HostDirectory.FromFd(fd);
        var self = StatFd(fd);
        Statx parent;
        if (rel.Length == 0) parent = self;
        else
            using (var at = Locate(fid))
                parent = StatFd(at.DirFd);
        var entries = dir.ReadEntries();
        var result = new List<DirEntry>(entries.Count + 2)
        {
            new(new Qid(QidType.Dir, 0, QidPath(self)), 1, 4, "."),
            new(new Qid(QidType.Dir, 0, QidPath(parent)), 2, 4, ".."),
        };
        var dev = self.Dev();
        foreach (var e in entries)
        {
            var childRel = Child(rel, e.Name);
            uint hostType = (uint)e.Type << 12;
            var row = RowAt(childRel);
            uint type = hostType;
            // DT_UNKNOWN (some file systems): the row's type, unchecked
            if (row != null && (RowDescribes(row.Mode & Libc.S_IFMT, hostType) || e.Type == 0)) type = row.Mode & Libc.S_IFMT;
            ulong qpath = dev == _rootDev ? e.Ino : e.Ino ^ ((ulong)dev << 44);
            result.Add(new DirEntry(new Qid(QidTypeOf(type), 0, qpath), (ulong)result.Count + 1, (byte)(type >> 12), e.Name));
        }
        return result;
    }
}
