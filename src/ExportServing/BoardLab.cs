using RootfsExport.ExportTree;
using RootfsExport.Posix;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportServing;

/// <summary>How a board's changed path relates to the shared export.</summary>
public enum BoardChangeKind { Added, Modified, Deleted }

/// <summary>One path a board changed: its owner and mode as the board sees it (a deletion: the shared export's).</summary>
public sealed record BoardChange(string Path, BoardChangeKind Kind, uint Uid, uint Gid, uint Mode);

/// <summary>
/// The boards of an export, off line: which have a layer, what each changed, and dropping a layer. Read from
/// the layers' files.db; a layer that a serve holds (its pseudo lock) is not reset under it.
/// </summary>
public static class BoardLab
{
    public static List<string> List(string exportDir) => BoardPaths.Boards(exportDir);

    /// <summary>Every path the board changed, in path order; directories copied up only to hold a change are left out.</summary>
    public static List<BoardChange> Diff(string exportDir, string board)
    {
        var paths = BoardPaths.For(exportDir, board);
        if (!paths.Exists) throw new UserFacingException($"board {board} has no layer ({paths.State.FilesDbPath})");
        var upper = ExportPaths.Canonical(paths.Upper);
        using var own = FilesDb.OpenFile(paths.State.FilesDbPath, create: false);
        using var shared = FilesDb.Open(PseudoState.ForExport(exportDir), create: false);
        var opaque = own.AllXattrs().Where(x => x.Name == BoardLayer.OpaqueXattr).Select(x => (x.Dev, x.Ino)).ToHashSet();
        var result = new List<BoardChange>();
        foreach (var row in own.All().Where(r => r.Path.StartsWith(upper + "/", StringComparison.Ordinal)).OrderBy(r => r.Path, StringComparer.Ordinal))
        {
            var rel = row.Path[(upper.Length + 1)..];
            var before = shared.GetByPath(ExportPaths.Join(ExportPaths.Canonical(exportDir), rel));
            if (BoardLayer.IsWhiteout(row))
                result.Add(new BoardChange(rel, BoardChangeKind.Deleted, before?.Uid ?? 0, before?.Gid ?? 0, before?.Mode ?? 0));
            else if (before is null)
                result.Add(new BoardChange(rel, BoardChangeKind.Added, row.Uid, row.Gid, row.Mode));
            else if (!row.IsDirectory || opaque.Contains((row.Dev, row.Ino)) || (row.Uid, row.Gid, row.Mode) != (before.Uid, before.Gid, before.Mode))
                result.Add(new BoardChange(rel, BoardChangeKind.Modified, row.Uid, row.Gid, row.Mode));
        }
        return result;
    }

    /// <summary>Drops the board's layer: it sees the shared export as it is on its next attach. Refused while served.</summary>
    public static bool Reset(string exportDir, string board)
    {
        var paths = BoardPaths.For(exportDir, board);
        if (!Directory.Exists(paths.Upper) && !paths.Exists) return false;
        if (paths.State.HeldByThisProcess) throw new UserFacingException($"board {board} is being served by this process; stop serving it first");
        if (BoardCommitJournal.Unfinished(exportDir, PseudoState.ForExport(exportDir)) is { } why) throw new UserFacingException($"board {board} cannot be reset now: {why}");
        using (paths.State.AcquireWriterLock()) // a serve holding the board refuses us here, naming itself
        using (var boards = HostDirectory.Open(paths.BoardsDir))
        {
            if (boards.TryStat(board, out _)) boards.RemoveTree(board);
            boards.RemoveTree(board + BoardPaths.StateSuffix);
        }
        return true;
    }
}
