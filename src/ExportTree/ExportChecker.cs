using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportTree;

public enum ProblemKind
{
    /// <summary>An object on disk has no row: pseudo would show it owned by the build user.</summary>
    MissingRow,
    /// <summary>A row for a path that is gone: pseudo aborts its client when the inode is reused.</summary>
    StaleRow,
    /// <summary>The row's dev/ino is not the object's: pseudo logs "inode mismatch".</summary>
    InodeMismatch,
    /// <summary>Row and disk disagree on dir / symlink / other: pseudo drops such rows.</summary>
    TypeMismatch,
    /// <summary>Two paths share dev/ino in the DB but not on disk: pseudo's "path mismatch" abort.</summary>
    SharedInode,
    /// <summary>The rows are under another directory: the export was moved or renamed.</summary>
    Moved,
    /// <summary>xattr rows of an inode no path refers to.</summary>
    OrphanXattr,
}

public sealed record Problem(ProblemKind Kind, string Path, string Detail);

public sealed record CheckReport(long Objects, long Rows, IReadOnlyList<Problem> Problems, bool Repaired);

/// <summary>
/// Compares files.db with the tree on disk, the checks pseudo's own consistency rules imply (pseudo -C),
/// and with --repair fixes them (pseudo -m for a moved export, re-keying, dropping stale rows).
/// </summary>
public static class ExportChecker
{
    public static CheckReport Check(string exportDir, bool repair)
    {
        var export = ExportPaths.Canonical(exportDir);
        if (!Directory.Exists(export)) throw new UserFacingException($"export '{export}' does not exist");
        var state = new PseudoState(PseudoState.StatePathFor(export));
        if (!state.Exists) throw new UserFacingException($"'{export}' has no pseudo database ({state.FilesDbPath}); create it with 'rootfs-export unpack'");
        using var writeLock = repair ? state.AcquireWriterLock() : null;
        if (!repair) state.EnsureNoLiveServer();
        using var db = FilesDb.Open(state, create: false);

        var disk = ScanDisk(export);
        var problems = new List<Problem>();

        // A moved export: the row with the root's dev/ino has another path.
        var rootSt = disk[""];
        var rootRows = db.GetByDevIno(rootSt.Dev(), rootSt.InoSigned());
        var movedFrom = rootRows.Count == 1 && rootRows[0].Path != export ? rootRows[0].Path : null;
        if (movedFrom != null)
        {
            problems.Add(new Problem(ProblemKind.Moved, export, $"rows are recorded under '{movedFrom}'"));
            if (repair) db.InTransaction(() => db.RenameTree(movedFrom, export));
        }

        var rows = db.Under(export);
        var byPath = new Dictionary<string, FileRow>(StringComparer.Ordinal);
        foreach (var r in rows) byPath.TryAdd(r.Path, r);
        var actions = new List<Action>();

        foreach (var (rel, st) in disk)
        {
            var dbPath = ExportPaths.Join(export, rel);
            if (!byPath.TryGetValue(dbPath, out var row))
            {
                problems.Add(new Problem(ProblemKind.MissingRow, dbPath, "no ownership record"));
                var copy = st;
                actions.Add(() => db.PutLink(new FileRow(dbPath, copy.Dev(), copy.InoSigned(), 0, 0, GuessMode(copy), 0)));
                continue;
            }
            if (!TypesAgree(row.Mode, st.Mode))
            {
                problems.Add(new Problem(ProblemKind.TypeMismatch, dbPath, $"db mode {Convert.ToString(row.Mode, 8)}, disk mode {Convert.ToString(st.Mode, 8)}"));
                var copy = st;
                actions.Add(() => db.PutLink(row with { Dev = copy.Dev(), Ino = copy.InoSigned(), Mode = (copy.Mode & Libc.S_IFMT) | row.Permissions, Rdev = 0 }));
            }
            else if (row.Dev != st.Dev() || row.Ino != st.InoSigned())
            {
                problems.Add(new Problem(ProblemKind.InodeMismatch, dbPath, $"db {row.Dev}:{row.Ino}, disk {st.Dev()}:{st.InoSigned()}"));
                var copy = st;
                actions.Add(() => db.PutLink(row with { Dev = copy.Dev(), Ino = copy.InoSigned() }));
            }
        }
        foreach (var row in rows)
        {
            var rel = row.Path == export ? "" : row.Path[(export.Length + 1)..];
            if (!disk.ContainsKey(rel))
            {
                problems.Add(new Problem(ProblemKind.StaleRow, row.Path, "recorded but not on disk"));
                actions.Add(() => db.DeletePath(row.Path));
            }
        }
        // Rows sharing an inode must be real hard links.
        foreach (var group in rows.GroupBy(r => (r.Dev, r.Ino)).Where(g => g.Count() > 1))
        {
            foreach (var row in group)
            {
                var rel = row.Path == export ? "" : row.Path[(export.Length + 1)..];
                if (disk.TryGetValue(rel, out var st) && (st.Dev() != row.Dev || st.InoSigned() != row.Ino))
                    continue; // reported above as an inode mismatch
                if (disk.TryGetValue(rel, out st) && st.Nlink < 2 && group.Count(r => disk.ContainsKey(r.Path == export ? "" : r.Path[(export.Length + 1)..])) > 1)
                    problems.Add(new Problem(ProblemKind.SharedInode, row.Path, $"shares {row.Dev}:{row.Ino} with {string.Join(", ", group.Where(g => g != row).Select(g => g.Path))} but has one link"));
            }
        }
        var orphan = db.AllXattrs().Where(x => db.GetByDevIno(x.Dev, x.Ino).Count == 0).ToList();
        foreach (var x in orphan) problems.Add(new Problem(ProblemKind.OrphanXattr, $"{x.Dev}:{x.Ino}", x.Name));
        if (orphan.Count > 0) actions.Add(db.ClearUnusedXattrs);

        if (repair && actions.Count > 0) db.InTransaction(() => { foreach (var a in actions) a(); });
        return new CheckReport(disk.Count, rows.Count, problems, repair);
    }

    /// <summary>Device rows sit on placeholder files, socket rows too; otherwise dir/symlink/fifo/file must agree.</summary>
    private static bool TypesAgree(uint dbMode, uint diskMode)
    {
        uint db = dbMode & Libc.S_IFMT, disk = diskMode & Libc.S_IFMT;
        if (db == disk) return true;
        return disk == Libc.S_IFREG && db is Libc.S_IFCHR or Libc.S_IFBLK or Libc.S_IFSOCK;
    }

    private static uint GuessMode(in Statx st) => st.Mode; // objects made behind our back: root-owned, disk mode

    /// <summary>Every object below the export, keyed by relative path ("" = root), symlinks not followed.</summary>
    public static Dictionary<string, Statx> ScanDisk(string export)
    {
        var result = new Dictionary<string, Statx>(StringComparer.Ordinal);
        using var root = HostDirectory.Open(export);
        result[""] = root.StatSelf();
        Walk(root, "", result);
        return result;
    }

    private static void Walk(HostDirectory dir, string rel, Dictionary<string, Statx> into)
    {
        foreach (var e in dir.ReadEntries())
        {
            var childRel = rel.Length == 0 ? e.Name : rel + "/" + e.Name;
            if (!dir.TryStat(e.Name, out var st)) continue;
            into[childRel] = st;
            if (StMode.IsDirectory(st.Mode))
            {
                using var sub = dir.OpenDirectory(e.Name);
                Walk(sub, childRel, into);
            }
        }
    }
}

/// <summary>
/// Records objects our own code wrote into an export outside ExportWriter (boot entries, package-manager
/// state written by other tools) as root-owned with their disk mode, and drops rows whose object is gone,
/// for one subtree; so pseudo never shows them as the build user's and check stays clean.
/// </summary>
public static class ExportAdoption
{
    public static int Sync(string exportDir, string subtree)
    {
        var export = ExportPaths.Canonical(exportDir);
        var state = new PseudoState(PseudoState.StatePathFor(export));
        if (!state.Exists) return 0;
        var rel = ExportPath.Parse(subtree, "subtree");
        using var writeLock = state.AcquireWriterLock();
        using var db = FilesDb.Open(state, create: false);
        var disk = ExportChecker.ScanDisk(export)
            .Where(e => e.Key == rel.Value || e.Key.StartsWith(rel.Value + "/", StringComparison.Ordinal))
            .ToDictionary(e => ExportPaths.Join(export, e.Key), e => e.Value);
        int changed = 0;
        db.InTransaction(() =>
        {
            var root = ExportPaths.Join(export, rel.Value);
            foreach (var row in db.Under(root).Where(r => !disk.ContainsKey(r.Path)))
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
