using RootfsExport.ExportTree;

namespace RootfsExport.FeedWatcher;

/// <summary>
/// Whether a package's files are the ones the export already has. Used for a same-version candidate of an
/// installed package when no hash of it is recorded yet (the first update after an image): mtimes cannot
/// tell (a package restored from sstate is older than the image), the content can.
/// </summary>
public static class PackageContent
{
    /// <summary>
    /// True when a regular file of the package (conffiles aside: those may be the user's) is missing from the
    /// export or differs from it; sizes are compared first, bytes only when they agree.
    /// </summary>
    public static bool DiffersFromExport(string packagePath, PackageState state, OwnerNames owners)
    {
        var pkg = PackageFile.Read(packagePath);
        var conffiles = pkg.Conffiles.ToHashSet(StringComparer.Ordinal);
        bool differs = false;
        pkg.ReadData(m =>
        {
            if (differs || !m.Type.IsFile()) { m.Data.CopyTo(Stream.Null); return; }
            var path = ExportPath.Parse(m.Name, $"{Path.GetFileName(packagePath)}: data entry");
            if (conffiles.Contains("/" + path.Value)) { m.Data.CopyTo(Stream.Null); return; }
            using var disk = state.Tree.OpenRead(state.Tree.Resolve(path.Value, followLast: true));
            differs = disk is null || disk.Length != m.Size || !SameBytes(disk, m.Data);
            m.Data.CopyTo(Stream.Null);
        }, owners.Resolve);
        return differs;
    }

    private static bool SameBytes(Stream a, Stream b)
    {
        var x = new byte[1 << 16];
        var y = new byte[1 << 16];
        while (true)
        {
            int n = a.ReadAtLeast(x, x.Length, throwOnEndOfStream: false);
            int m = b.ReadAtLeast(y, n == 0 ? 1 : n, throwOnEndOfStream: false);
            if (n != m) return false;
            if (n == 0) return true;
            if (!x.AsSpan(0, n).SequenceEqual(y.AsSpan(0, m))) return false;
        }
    }
}
