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
    /// <summary>A name that is not UTF-8 (made over 9P or NFS): reported, never recorded under a merged name.</summary>
    UnencodableName,
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
        using var handle = repair ? ExportHandle.OpenForWriting(exportDir) : ExportHandle.OpenForReading(exportDir);
        // objects of the board may be in the export without rows until `board commit` finishes: say that, not each of them
        BoardCommitJournal.EnsureNone(handle.Path, handle.State);
        var export = handle.Path;
        var db = handle.Db;
        var problems = new List<Problem>();
        var disk = ScanDisk(handle, problems);
        // A moved export: the row with the root's dev/ino has another path.
        var rootSt = disk[""];
        var rootRows = db.GetByDevIno(rootSt.Dev(), rootSt.InoSigned());
        var movedFrom = rootRows.Count == 1 && rootRows[0].Path != export ? rootRows[0].Path : null;
        if (movedFrom != null)
        {
            problems.Add(new Problem(ProblemKind.Moved, export, $"rows are recorded under '{movedFrom}'"));
            if (repair) handle.InTransaction(d => d.RenameTree(movedFrom, export));
        }

        var rows = db.Under(export);
        var actions = new List<Action>();
        CompareDiskWithRows(db, export, disk, rows, problems, actions);
        CheckSharedInodes(export, disk, rows, problems);
        var orphan = db.AllXattrs().Where(x => db.GetByDevIno(x.Dev, x.Ino).Count == 0).ToList();
        foreach (var x in orphan) problems.Add(new Problem(ProblemKind.OrphanXattr, $"{x.Dev}:{x.Ino}", x.Name));
        if (orphan.Count > 0) actions.Add(db.ClearUnusedXattrs);

        if (repair && actions.Count > 0) handle.InTransaction(_ => { foreach (var a in actions) a(); });
        bool unrepairable = problems.Any(p => p.Kind == ProblemKind.UnencodableName);
        return new CheckReport(disk.Count, rows.Count, problems, repair && !unrepairable);
    }

    private static void CompareDiskWithRows(FilesDb db, string export, Dictionary<string, Statx> disk, List<FileRow> rows, List<Problem> problems, List<Action> actions)
    {
        var byPath = new Dictionary<string, FileRow>(StringComparer.Ordinal);
        foreach (var r in rows) byPath.TryAdd(r.Path, r);
        foreach (var (rel, st) in disk)
        {
            var dbPath = ExportPaths.Join(export, rel);
            var copy = st;
            if (!byPath.TryGetValue(dbPath, out var row))
            {
                problems.Add(new Problem(ProblemKind.MissingRow, dbPath, "no ownership record"));
                actions.Add(() => db.PutLink(new FileRow(dbPath, copy.Dev(), copy.InoSigned(), 0, 0, copy.Mode, 0))); // made behind our back: root's, disk mode
            }
            else if (!StMode.Stands(row.Mode, st.Mode))
            {
                problems.Add(new Problem(ProblemKind.TypeMismatch, dbPath, $"db mode {Convert.ToString(row.Mode, 8)}, disk mode {Convert.ToString(st.Mode, 8)}"));
                actions.Add(() => db.PutLink(row with { Dev = copy.Dev(), Ino = copy.InoSigned(), Mode = (copy.Mode & Libc.S_IFMT) | row.Permissions, Rdev = 0 }));
            }
            else if (row.Dev != st.Dev() || row.Ino != st.InoSigned())
            {
                problems.Add(new Problem(ProblemKind.InodeMismatch, dbPath, $"db {row.Dev}:{row.Ino}, disk {st.Dev()}:{st.InoSigned()}"));
                actions.Add(() => db.PutLink(row with { Dev = copy.Dev(), Ino = copy.InoSigned() }));
            }
        }
        foreach (var row in rows)
        {
            if (disk.ContainsKey(Relative(export, row.Path))) continue;
            problems.Add(new Problem(ProblemKind.StaleRow, row.Path, "recorded but not on disk"));
            actions.Add(() => db.DeletePath(row.Path));
        }
    }

    /// <summary>Rows sharing an inode must be real hard links.</summary>
    private static void CheckSharedInodes(string export, Dictionary<string, Statx> disk, List<FileRow> rows, List<Problem> problems)
    {
        foreach (var group in rows.GroupBy(r => (r.Dev, r.Ino)).Where(g => g.Count() > 1))
        {
            int present = group.Count(r => disk.ContainsKey(Relative(export, r.Path)));
            if (present < 2) continue;
            foreach (var row in group)
            {
                // an inode mismatch is reported above; a lone link sharing a row's inode is pseudo's "path mismatch"
                if (disk.TryGetValue(Relative(export, row.Path), out var st) && st.Dev() == row.Dev && st.InoSigned() == row.Ino && st.Nlink < 2)
                    problems.Add(new Problem(ProblemKind.SharedInode, row.Path, $"shares {row.Dev}:{row.Ino} with {string.Join(", ", group.Where(g => g != row).Select(g => g.Path))} but has one link"));
            }
        }
    }

    private static string Relative(string export, string dbPath) => dbPath == export ? "" : dbPath[(export.Length + 1)..];

    /// <summary>
    /// Every object below the export, keyed by relative path ("" = root), symlinks not followed, in one linear
    /// walk. A name that is not UTF-8 (a board can make one over 9P) is reported and left out with what is
    /// below it: files.db keys rows by text, and decoding would merge 'a\xff' and 'a\xfe' into one row.
    /// </summary>
    public static Dictionary<string, Statx> ScanDisk(ExportHandle export, List<Problem>? problems = null)
    {
        var result = new Dictionary<string, Statx>(StringComparer.Ordinal);
        result[""] = export.Root.StatSelf();
        export.Root.Walk((rel, st) =>
        {
            if (FileName.IsRaw(rel))
            {
                problems?.Add(new Problem(ProblemKind.UnencodableName, export.DbPath(FileName.Shown(rel)),
                    "name is not UTF-8; files.db cannot record it apart from similar names: rename it on the board"));
                return false;
            }
            result[rel] = st;
            return true;
        });
        return result;
    }
}
