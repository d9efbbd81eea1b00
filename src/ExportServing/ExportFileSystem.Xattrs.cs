using System.Text;
using RootfsExport.NineP.Server;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;

namespace RootfsExport.ExportServing;

/// <summary>The export as 9P sees it: extended attributes, kept in files.db, never on the host.</summary>
public sealed unsafe partial class ExportFileSystem
{
    public byte[] XattrWalk(ExportFid fid, string name, out ExportFid attrFid)
    {
        var value = XattrGet(fid, name);
        attrFid = Track(new ExportFid(fid.Path, fid.Uid));
        return value;
    }

    private byte[] XattrGet(ExportFid fid, string name)
    {
        var st = StatObject(fid, out bool fromFd);
        var row = ObjectRow(fid, st, fromFd);
        if (name.Length == 0)
        {
            if (row is null) return [];
            var list = new MemoryStream();
            foreach (var n in _store.ListXattrs(row)) { list.Write(Encoding.UTF8.GetBytes(n)); list.WriteByte(0); }
            return list.ToArray();
        }
        return (row is null ? null : _store.GetXattr(row, name)) ?? throw new NinePException(Errno.ENODATA, "no such xattr");
    }

    public void XattrCreate(ExportFid fid, string name, ulong size, uint flags)
    {
        if (fid.Uid != 0 && !name.StartsWith("user.", StringComparison.Ordinal))
            throw new NinePException(Errno.EPERM, "only root sets trusted., security. and system. xattrs");
        StatFid(fid);
    }

    /// <summary>At clunk: the bytes written must match attr_size; an empty value with no data removes the xattr.</summary>
    public void XattrSet(ExportFid fid, string name, byte[] value, uint flags)
    {
        var rel = fid.Path;
        var st = StatFid(fid);
        var row = EnsureRow(rel, st);
        bool exists = _store.GetXattr(row, name) != null;
        if ((flags & Libc.XATTR_CREATE) != 0 && exists) throw new NinePException(Errno.EEXIST, "xattr exists");
        if ((flags & Libc.XATTR_REPLACE) != 0 && !exists) throw new NinePException(Errno.ENODATA, "no such xattr");
        if (value.Length == 0 && (flags & Libc.XATTR_CREATE) == 0)
        {
            // v9fs removexattr = xattrcreate with size 0 (and XATTR_REPLACE from the VFS)
            if (!_store.RemoveXattr(row, name) && (flags & Libc.XATTR_REPLACE) != 0) throw new NinePException(Errno.ENODATA, "no such xattr");
            return;
        }
        _store.SetXattr(row, name, value);
    }
}
