using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using RootfsExport.PseudoDb;

namespace RootfsExport.Usb9pBridge.Tests;

/// <summary>An export directory with nothing in it but its root row (0:0 0755) in files.db: what the framing tests serve.</summary>
internal static class EmptyExport
{
    public static void Create(string export)
    {
        Directory.CreateDirectory(export);
        using var db = FilesDb.Open(PseudoState.ForExport(export));
        Libc.StatxAt(Libc.AT_FDCWD, export, Libc.AT_SYMLINK_NOFOLLOW, Libc.STATX_BASIC_STATS, out var st);
        db.InTransaction(() => db.PutNew(new FileRow(ExportPaths.Canonical(export), st.Dev(), st.InoSigned(), 0, 0, 0x41ed, 0)));
    }
}
