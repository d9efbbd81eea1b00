using System.CommandLine;
using RootfsExport.ExportEngine;
using RootfsExport.ExportServing;
using RootfsExport.PseudoDb;

namespace RootfsExport.Cli;

/// <summary>
/// `board list|diff|reset|commit`: the boards' copy-on-write layers beside an export (issue 23), over
/// ExportServing.BoardLab and BoardCommit. Parses and prints only.
/// </summary>
public static class BoardCommands
{
    public static IEnumerable<Command> Create()
    {
        var board = new Command("board", "The boards' own layers over an export (a board attaches as aname=<export>@<board>): " +
            "list them, show what one changed, throw its changes away, or merge them into the shared export");
        foreach (var sub in new[] { List(), Diff(), Reset(), Commit() }) board.Subcommands.Add(sub);
        yield return board;
    }

    private static Argument<string> ExportArgument() => new("export") { Description = "the shared export directory (as given to serve)" };

    private static Argument<string> BoardArgument() => new("board") { Description = "the board's name, as in aname=<export>@<board>" };

    /// <summary>The export's canonical path; a clear error when it is not an export.</summary>
    private static string RequireExport(string dir)
    {
        var export = ExportPaths.Canonical(dir);
        if (!Directory.Exists(export)) throw new UserFacingException($"export '{export}' does not exist");
        var state = PseudoState.ForExport(export);
        if (!state.Exists) throw new UserFacingException($"'{export}' has no pseudo database ({state.FilesDbPath}); it is not an export made by rootfs-export unpack/update");
        return export;
    }

    private static string RequireBoard(string export, string board)
    {
        if (!BoardPaths.For(export, board).Exists) throw BoardCommit.UnknownBoard(export, board);
        return board;
    }

    private static Command List()
    {
        var export = ExportArgument();
        var cmd = new Command("list", "The boards with a layer beside the export: how many paths each changed, and whether a serve holds it") { export };
        cmd.SetAction(p =>
        {
            var dir = RequireExport(p.GetValue(export)!);
            var boards = BoardLab.List(dir);
            if (boards.Count == 0) Console.WriteLine($"no board has a layer beside {dir}");
            foreach (var name in boards)
            {
                var changes = BoardLab.Diff(dir, name);
                var held = BoardPaths.For(dir, name).State.LiveServerPid() is int pid ? $"served by pid {pid}" : "not served";
                Console.WriteLine($"{name,-20} {Summary(changes),-40} {held}");
            }
            return 0;
        });
        return cmd;
    }

    private static Command Diff()
    {
        var export = ExportArgument();
        var board = BoardArgument();
        var cmd = new Command("diff", "What the board changed against the shared export: each path added, modified or deleted, with owner uid:gid and mode " +
            "(a deletion shows the shared export's owner and mode)") { export, board };
        cmd.SetAction(p =>
        {
            var dir = RequireExport(p.GetValue(export)!);
            var changes = BoardLab.Diff(dir, RequireBoard(dir, p.GetValue(board)!));
            foreach (var c in changes) Console.WriteLine(Line(c));
            if (changes.Count == 0) Console.Error.WriteLine($"board {p.GetValue(board)} changed nothing");
            return 0;
        });
        return cmd;
    }

    private static Command Reset()
    {
        var export = ExportArgument();
        var board = BoardArgument();
        var cmd = new Command("reset", "Throw the board's changes away: its layer is removed and it sees the shared export as it is on its next attach " +
            "(while a serve runs, that serve does it between two requests; refused while the board itself is attached)") { export, board };
        cmd.SetAction(p =>
        {
            var dir = RequireExport(p.GetValue(export)!);
            var name = RequireBoard(dir, p.GetValue(board)!);
            if (ServeControl.TryHandOverBoard(PseudoState.ForExport(dir), new BoardHandover("reset", dir, name), Console.Out) is { } handed)
                return handed.ExitCode;
            var changes = BoardLab.Diff(dir, name);
            BoardLab.Reset(dir, name);
            WriteReset(Console.Out, name, changes);
            return 0;
        });
        return cmd;
    }

    private static Command Commit()
    {
        var export = ExportArgument();
        var board = BoardArgument();
        var cmd = new Command("commit", "Merge the board's changes into the shared export (files, owners, modes, xattrs, deletions) as one files.db transaction, " +
            "then drop its layer; while a serve runs, that serve does it between two requests (refused while the board itself is attached)") { export, board };
        cmd.SetAction(p =>
        {
            var dir = RequireExport(p.GetValue(export)!);
            var name = p.GetValue(board)!;
            if (BoardPaths.NameProblem(name) is null // a bad name is refused by the commit itself, with the rules
                && ServeControl.TryHandOverBoard(PseudoState.ForExport(dir), new BoardHandover("commit", dir, name), Console.Out) is { } handed)
                return handed.ExitCode;
            WriteCommit(Console.Out, dir, name, BoardCommit.Commit(dir, name));
            return 0;
        });
        return cmd;
    }

    /// <summary>`board commit` or `board reset` handed over by another process: run by the serve holding the export.</summary>
    internal static UpdateOutcome WhileServing(ExportServer server, BoardHandover request, TextWriter output)
    {
        var served = server.RequireServes(request.Export);
        if (BoardPaths.NameProblem(request.Board) is { } why) throw new UserFacingException(why);
        switch (request.Action)
        {
            case "commit": WriteCommit(output, served, request.Board, server.CommitBoard(request.Board)); break;
            case "reset": WriteReset(output, request.Board, server.ResetBoard(request.Board)); break;
            default: throw new UserFacingException($"control socket: unknown board action '{request.Action}'");
        }
        return new UpdateOutcome(0, 0);
    }

    private static void WriteReset(TextWriter output, string name, IReadOnlyList<BoardChange> changes) =>
        output.WriteLine($"board {name} reset: dropped {Summary(changes)}; it sees the shared export on its next attach");

    private static void WriteCommit(TextWriter output, string dir, string name, BoardCommitResult result)
    {
        if (result.Resumed is { } resumed) output.WriteLine($"finished the interrupted commit of board {resumed} first");
        if (result.Resumed == name) return;
        foreach (var c in result.Changes) output.WriteLine(Line(c));
        output.WriteLine($"committed board {name} into {dir}: {Summary(result.Changes)}; its layer is dropped");
    }

    private static string Line(BoardChange c) =>
        $"{c.Kind.ToString().ToLowerInvariant(),-9} {ModeString(c.Mode)} {c.Uid}:{c.Gid} /{c.Path}";

    private static string Summary(IReadOnlyList<BoardChange> changes)
    {
        if (changes.Count == 0) return "no changes";
        int Count(BoardChangeKind k) => changes.Count(c => c.Kind == k);
        return $"{changes.Count} change(s): {Count(BoardChangeKind.Added)} added, {Count(BoardChangeKind.Modified)} modified, {Count(BoardChangeKind.Deleted)} deleted";
    }

    /// <summary>ls -l's mode column: the type letter, then rwx with setuid, setgid and sticky shown as s/S and t/T.</summary>
    internal static string ModeString(uint mode)
    {
        char type = (mode & 0xF000) switch
        {
            0x4000 => 'd', 0xA000 => 'l', 0x2000 => 'c', 0x6000 => 'b', 0x1000 => 'p', 0xC000 => 's', _ => '-',
        };
        var s = new char[10];
        s[0] = type;
        const string rwx = "rwxrwxrwx";
        for (int i = 0; i < 9; i++) s[i + 1] = (mode & (1u << (8 - i))) != 0 ? rwx[i] : '-';
        if ((mode & 0x800) != 0) s[3] = s[3] == 'x' ? 's' : 'S';
        if ((mode & 0x400) != 0) s[6] = s[6] == 'x' ? 's' : 'S';
        if ((mode & 0x200) != 0) s[9] = s[9] == 'x' ? 't' : 'T';
        return new string(s);
    }
}
