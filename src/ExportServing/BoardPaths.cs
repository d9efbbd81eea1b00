using System.Text.RegularExpressions;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportServing;

/// <summary>
/// Where a board's copy-on-write layer lives beside the export it overlays: its tree at
/// <c>&lt;export&gt;.boards/&lt;board&gt;/</c> and its pseudo state (files.db, pseudo.lock) at
/// <c>&lt;export&gt;.boards/&lt;board&gt;.pseudo_state/</c>, pseudo's layout for the layer as a tree of its own.
/// </summary>
public sealed partial record BoardPaths(string Export, string Board)
{
    public const string StateSuffix = ".pseudo_state";

    [GeneratedRegex("^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    private static partial Regex NamePattern();

    /// <summary>Why a board name is refused, or null for a good one.</summary>
    public static string? NameProblem(string name) =>
        !NamePattern().IsMatch(name) ? $"board name '{name}' must match [A-Za-z0-9][A-Za-z0-9._-]{{0,63}}"
        : name.EndsWith(StateSuffix, StringComparison.Ordinal) ? $"board name '{name}' ends in {StateSuffix}, the name of a board's state directory"
        : null;

    public static string CheckName(string name) => NameProblem(name) is { } why ? throw new UserFacingException(why) : name;

    /// <summary>The layers of the export at exportDir (its canonical path) for board.</summary>
    public static BoardPaths For(string exportDir, string board) => new(ExportPaths.Canonical(exportDir), CheckName(board));

    public string BoardsDir => Export + ".boards";
    public string Upper => Path.Combine(BoardsDir, Board);
    public PseudoState State => new(Path.Combine(BoardsDir, Board + StateSuffix));
    public bool Exists => State.Exists;

    /// <summary>The boards that have a layer beside the export, by name.</summary>
    public static List<string> Boards(string exportDir)
    {
        var dir = ExportPaths.Canonical(exportDir) + ".boards";
        if (!Directory.Exists(dir)) return [];
        return Directory.EnumerateDirectories(dir).Select(Path.GetFileName).OfType<string>()
            .Where(n => n.EndsWith(StateSuffix, StringComparison.Ordinal))
            .Select(n => n[..^StateSuffix.Length]).Where(n => NameProblem(n) is null).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>
    /// An aname that names a board: "&lt;path&gt;@&lt;board&gt;" (the part after the last '@', when it has no '/').
    /// Returns the path part and the board, or the aname and null.
    /// </summary>
    public static (string Path, string? Board) SplitAname(string aname)
    {
        int at = aname.LastIndexOf('@');
        if (at < 0 || aname.IndexOf('/', at) >= 0) return (aname, null);
        return (aname[..at], aname[(at + 1)..]);
    }
}
