using RootfsExport.ExportTree;
using RootfsExport.Posix;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportServing;

/// <summary>What a commit merged into the shared export; Resumed names a board whose interrupted commit was finished first.</summary>
public sealed record BoardCommitResult(IReadOnlyList<BoardChange> Changes, string? Resumed);

/// <summary>
/// `board commit`: merges a board's layer into the shared export and drops the layer, as one files.db
/// transaction under the export's writer lock (refused while a serve holds the export or the board).
/// Before the shared export changes, every object the board has is copied into a staging directory inside
/// the export (so a bad layer stops the commit with nothing changed) and a journal names the board; then the
/// staged objects are renamed into place, whiteouts and opaque directories remove what the board deleted, and
/// the rows go into the shared files.db, committed last. The board's layer is only read until then, so a
/// commit that dies part way is finished by the next `board commit` (applying a layer twice gives the same
/// result), and nothing else writes to the export (serve, update, check --repair, ...) while the journal
/// (<see cref="BoardCommitJournal"/>) says a commit is unfinished.
/// </summary>
public static class BoardCommit
{
    private const string TrashPrefix = ".committed-";

    /// <summary>Commits board into the export at exportDir, finishing an interrupted commit first.</summary>
    public static BoardCommitResult Commit(string exportDir, string board)
    {
        var paths = BoardPaths.For(exportDir, board);
        if (paths.State.HeldByThisProcess) throw new UserFacingException($"board {board} is being served by this process; stop serving it first");
        using var export = OpenExport(exportDir);
        string? resumed = null;
        if (ReadJournal(export.State) is { } pending) // a commit that stopped part way is finished first, whichever board it was
        {
            Finish(export, BoardPaths.For(export.Path, pending.Board), pending.Staging);
            resumed = pending.Board;
            if (pending.Board == board) return new BoardCommitResult([], resumed);
        }
        if (!paths.Exists) throw UnknownBoard(export.Path, board);
        using var boardLock = paths.State.AcquireWriterLock(); // before the journal: a board held elsewhere leaves nothing to finish
        var changes = BoardLab.Diff(export.Path, board);
        var staging = StagingName(export, paths);
        new BoardCommitJournal(board, staging).Write(export.State);
        Finish(export, paths, staging);
        return new BoardCommitResult(changes, resumed);
    }

    public static UserFacingException UnknownBoard(string export, string board)
    {
        var known = BoardPaths.Boards(export);
        return new UserFacingException($"board {board} has no layer beside {export} ({(known.Count == 0 ? "no board has one" : "boards: " + string.Join(", ", known))})");
    }

    private static ExportHandle OpenExport(string exportDir)
    {
        try { return ExportHandle.OpenForBoardCommit(exportDir); }
        catch (UserFacingException e) when (Directory.Exists(exportDir) && PseudoState.ForExport(exportDir).Exists)
        {
            throw new UserFacingException($"cannot commit into {exportDir} now: {e.Message} (a commit changes the shared export every board sees; stop the serve first)");
        }
    }

    /// <summary>Applies the board's layer (again, when resuming) and clears it; the journal goes last.</summary>
    private static void Finish(ExportHandle export, BoardPaths paths, string staging)
    {
        using (var boards = HostDirectory.Open(paths.BoardsDir))
        {
            if (boards.TryStat(TrashPrefix + paths.Board, out _)) // the files.db transaction had committed: only the clearing was left
            {
                ClearLayer(boards, paths.Board);
                RemoveStaging(export, staging);
                DeleteJournal(export.State);
                return;
            }
        }
        if (paths.Exists) Apply(export, paths, staging);
        RemoveStaging(export, staging);
        DeleteJournal(export.State);
    }

    private static void Apply(ExportHandle export, BoardPaths paths, string staging)
    {
        using var boardLock = paths.State.AcquireWriterLock(); // a serve holding the board refuses us here, naming itself
        using (var merge = new LayerMerge(export, paths, staging))
        {
            try { merge.Stage(); }
            catch
            {
                merge.Abandon(); // nothing of the shared export was changed yet, and so it stays
                merge.Dispose();
                DeleteJournal(export.State);
                throw;
            }
            try { export.InTransaction(merge.Apply); }
            catch (Exception e) when (e is IOException or UserFacingException or UnauthorizedAccessException)
            {
                throw new UserFacingException($"board commit of {paths.Board} stopped part way ({e.Message}); files.db is unchanged and the board's layer is intact: " +
                    $"run 'rootfs-export board commit {export.Path} {paths.Board}' again to finish it");
            }
        }
        using var boards = HostDirectory.Open(paths.BoardsDir);
        boards.RemoveTree(TrashPrefix + paths.Board);
        HostDirectory.Rename(boards, paths.Board, boards, TrashPrefix + paths.Board); // from here on, a resume only clears
        ClearLayer(boards, paths.Board);
    }

    /// <summary>Moves the board's state directory aside (the board has no layer from then on) and removes both.</summary>
    private static void ClearLayer(HostDirectory boards, string board)
    {
        var trashState = TrashPrefix + board + BoardPaths.StateSuffix;
        if (boards.TryStat(board + BoardPaths.StateSuffix, out _))
        {
            boards.RemoveTree(trashState);
            HostDirectory.Rename(boards, board + BoardPaths.StateSuffix, boards, trashState);
        }
        boards.RemoveTree(trashState);
        boards.RemoveTree(TrashPrefix + board);
    }

    /// <summary>A name at the export's root that neither the shared export nor the board has.</summary>
    private static string StagingName(ExportHandle export, BoardPaths paths)
    {
        using var upper = HostDirectory.Open(paths.Upper);
        for (int i = 0; ; i++)
        {
            var name = i == 0 ? BoardCommitJournal.StagingPrefix : $"{BoardCommitJournal.StagingPrefix}.{i}";
            if (!export.Root.TryStat(name, out _) && !upper.TryStat(name, out _)) return name;
        }
    }

    private static void RemoveStaging(ExportHandle export, string staging) => export.Root.RemoveTree(staging);

    /// <summary>The journal, its board name held to the rules every board name follows.</summary>
    private static BoardCommitJournal? ReadJournal(PseudoState state)
    {
        var journal = BoardCommitJournal.Read(state);
        if (journal != null && BoardPaths.NameProblem(journal.Board) != null) throw BoardCommitJournal.NotAJournal(BoardCommitJournal.PathIn(state));
        return journal;
    }

    private static void DeleteJournal(PseudoState state) => BoardCommitJournal.Delete(state);
}
