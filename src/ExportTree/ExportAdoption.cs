using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportTree;

/// <summary>
/// Records objects our own code wrote into an export outside ExportWriter (boot entries, package-manager
/// state written by other tools) as root-owned with their disk mode, and drops rows whose object is gone,
/// for one subtree; so pseudo never shows them as the build user's and check stays clean.
/// </summary>
public static class ExportAdoption
{
    /// <summary>For a command on its own: nothing to do for a directory that is not an export (yet).</summary>
    public static int Sync(string exportDir, string subtree)
    {
        if (!PseudoState.ForExport(exportDir).Exists) return 0;
        using var export = ExportHandle.OpenForWriting(exportDir);
        return Sync(export, subtree);
    }

    public static int Sync(ExportHandle export, string subtree)
    {
        var sub = ExportPath.Parse(subtree, "subtree").Value;
        var disk = new Dictionary<string, Statx>(StringComparer.Ordinal);
        export.Root.Walk((rel, st) =>
        {
            bool inside = rel == sub || rel.StartsWith(sub + "/", StringComparison.Ordinal);
            if (inside && !FileName.IsRaw(rel)) disk[export.DbPath(rel)] = st;
            return inside || sub.StartsWith(rel + "/", StringComparison.Ordinal);
        });
        int changed = 0;
        export.InTransaction(db =>
        {
            foreach (var row in db.Under(export.DbPath(sub)).Where(r => !disk.ContainsKey(r.Path)))
            {
                db.DeletePath(row.Path);
                changed++;
            }
            foreach (var (path, st) in disk)
            {
                var row = db.GetByPath(path);
                if (row != null && row.Dev == st.Dev() && row.Ino == st.InoSigned()) continue;
                uint perms = row?.Permissions ?? (uint)(st.Mode & 0xfff);
                db.PutNew(new FileRow(path, st.Dev(), st.InoSigned(), row?.Uid ?? 0, row?.Gid ?? 0, (st.Mode & Libc.S_IFMT) | perms, 0));
                changed++;
            }
        });
        return changed;
    }
}
