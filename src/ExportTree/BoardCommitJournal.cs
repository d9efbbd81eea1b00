using RootfsExport.Posix;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportTree;

/// <summary>
/// The journal of a `board commit` under way, in the export's state directory: the board and the staging
/// directory at the export's root. While it exists, objects of the board may already be renamed into the export
/// with files.db not yet saying so, and only `board commit` may write to the export: it finishes the commit
/// from the board's layer. It lives here, below every engine, so that `update`, `watch`, `serve`, `check` and
/// every other writer refuse the same way, with the same message.
/// </summary>
public sealed record BoardCommitJournal(string Board, string Staging)
{
    public const string FileName = "rootfs-export-board-commit.journal";
    /// <summary>Every staging directory's name starts so (a number follows when the plain name is taken).</summary>
    public const string StagingPrefix = ".rfe-board-commit";

    public static string PathIn(PseudoState state) => Path.Combine(state.Directory, FileName);

    /// <summary>The unfinished commit of the export whose state this is; null when none.</summary>
    public static BoardCommitJournal? Read(PseudoState state)
    {
        var file = PathIn(state);
        if (!File.Exists(file)) return null;
        var lines = File.ReadAllLines(file);
        if (lines.Length < 2 || !IsName(lines[0]) || !lines[1].StartsWith(StagingPrefix, StringComparison.Ordinal) || lines[1].Contains('/'))
            throw NotAJournal(file);
        return new BoardCommitJournal(lines[0], lines[1]);
    }

    /// <summary>Written (and synced) before the shared export changes: from then on a stop leaves something to finish.</summary>
    public void Write(PseudoState state)
    {
        var file = PathIn(state);
        using (var f = new FileStream(file + ".new", FileMode.Create, FileAccess.Write))
        {
            f.Write(System.Text.Encoding.UTF8.GetBytes($"{Board}\n{Staging}\n"));
            f.Flush(flushToDisk: true);
        }
        File.Move(file + ".new", file, overwrite: true);
    }

    /// <summary>Removed last, once files.db and the board's layer say the commit is done.</summary>
    public static void Delete(PseudoState state) => File.Delete(PathIn(state));

    public static UserFacingException NotAJournal(string file) =>
        new($"{file}: not a board commit journal (expected a board name and a staging name); remove it if no commit ran");

    /// <summary>Why nothing but `board commit` may change the export now; null when no commit is unfinished.</summary>
    public static string? Unfinished(string export, PseudoState state) =>
        Read(state) is { } j
            ? $"a commit of board {j.Board} into this export was interrupted (journal {PathIn(state)}); " +
              $"finish it with 'rootfs-export board commit {export} {j.Board}'"
            : null;

    /// <summary>Refuses, naming the journal and the command that finishes the commit, while one is unfinished.</summary>
    public static void EnsureNone(string export, PseudoState state)
    {
        if (Unfinished(export, state) is { } why) throw new UserFacingException($"{export}: {why}");
    }

    // the board name's full rules are the serving side's; a line that is not one name is no journal of ours
    private static bool IsName(string line) => line.Length > 0 && line is not ("." or "..") && !line.Contains('/') && !line.Contains('\0');
}
