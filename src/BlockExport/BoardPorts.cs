using System.Text.Json;
using System.Text.RegularExpressions;

namespace RootfsExport.BlockExport;

/// <summary>
/// The boards of one export, in the order they were first named (`serve --nbd --board`, `tftp --serial`): board i
/// is served on base port + i, so a board's port, and the command line written for it, stay the same from run to run.
/// Kept beside the export as &lt;export&gt;.rootfs-export-nbd-boards.json (a newer image replaces the export and its
/// state directory; the boards stay).
/// </summary>
public sealed partial record BoardPorts
{
    public static string PathFor(string canonicalExport) => canonicalExport + ".rootfs-export-nbd-boards.json";
    public const string DefaultBoard = "default";
    public List<string> Boards { get; init; } = [];

    public int PortOf(string board, int basePort) => basePort + Boards.IndexOf(board);

    public static string CheckName(string board)
    {
        if (!Name().IsMatch(board)) throw new UserFacingException($"board '{board}': use 1-64 of A-Z a-z 0-9 _ . + - (it is the NBD export name)");
        return board;
    }

    public static BoardPorts Read(string canonicalExport)
    {
        var path = PathFor(canonicalExport);
        if (!File.Exists(path)) return new BoardPorts();
        try { return JsonSerializer.Deserialize(File.ReadAllText(path), BlockExportJson.Default.BoardPorts) ?? new BoardPorts(); }
        catch (JsonException e) { throw new UserFacingException($"{path}: not a board list ({e.Message})"); }
    }

    /// <summary>Adds the boards not known yet (at the end, so no known board's port moves) and saves.</summary>
    public static BoardPorts Register(string canonicalExport, IEnumerable<string> boards)
    {
        var known = Read(canonicalExport);
        var added = boards.Select(CheckName).Where(b => !known.Boards.Contains(b)).Distinct().ToList();
        if (added.Count == 0) return known;
        var updated = new BoardPorts { Boards = [.. known.Boards, .. added] };
        var path = PathFor(canonicalExport);
        File.WriteAllText(path + ".tmp", JsonSerializer.Serialize(updated, BlockExportJson.Default.BoardPorts) + "\n");
        File.Move(path + ".tmp", path, overwrite: true);
        return updated;
    }

    [GeneratedRegex(@"^[A-Za-z0-9_.+-]{1,64}$")]
    private static partial Regex Name();
}
