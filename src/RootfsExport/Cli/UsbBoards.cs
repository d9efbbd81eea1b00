using System.Text.RegularExpressions;
using RootfsExport.ExportServing;
using RootfsExport.NineP.Transport;
using RootfsExport.Usb9pBridge;

namespace RootfsExport.Cli;

/// <summary>
/// `serve --usb --board PATH-OR-SERIAL=BOARD`: which usb9pfs gadget gets which board's own layer. A TCP board
/// names itself in its aname; a usb board's aname comes from its own command line, so the lab chooses on the
/// host, by the USB port the gadget is plugged into (2-1.1.2, as `usb list` shows) or by its serial. A mapped
/// gadget attaches its board's layer whatever aname it sends (the path part is kept, the board replaced).
/// </summary>
public sealed partial class UsbBoards
{
    private readonly List<(string Key, bool IsPath, string Board)> _map = [];
    private string? _every;

    [GeneratedRegex(@"^\d+-\d+(\.\d+)*$")]
    private static partial Regex PortPath();

    /// <summary>Parses the --board values; a clear error names the value that is wrong.</summary>
    public static UsbBoards Parse(IEnumerable<string> specs)
    {
        var boards = new UsbBoards();
        foreach (var spec in specs)
        {
            int eq = spec.LastIndexOf('=');
            if (eq <= 0 || eq == spec.Length - 1)
                throw new UserFacingException($"--board '{spec}': expected PATH-OR-SERIAL=BOARD, e.g. 2-1.1.2=rock3a (a TCP board attaches aname=<export>@<board> itself)");
            var key = spec[..eq];
            var board = BoardPaths.NameProblem(spec[(eq + 1)..]) is { } why ? throw new UserFacingException($"--board '{spec}': {why}") : spec[(eq + 1)..];
            if (boards._map.Any(m => m.Key == key)) throw new UserFacingException($"--board '{spec}': {key} is given a board twice");
            boards._map.Add((key, PortPath().IsMatch(key), board));
        }
        return boards;
    }

    /// <summary>Every gadget gets this board (dev --usb --board NAME: one board on the line).</summary>
    public static UsbBoards Every(string board) => new() { _every = BoardPaths.CheckName(board) };

    /// <summary>The one board every gadget gets, if that is the mapping (its aname goes into the printed command line).</summary>
    public string? EveryBoard => _every;

    public bool IsEmpty => _every is null && _map.Count == 0;

    /// <summary>The board of the gadget at USB port path with this serial, or null (it attaches what it asks for).</summary>
    public string? BoardFor(string path, string serial) =>
        _every ?? _map.Where(m => m.IsPath ? m.Key == path : serial.Length > 0 && m.Key == serial).Select(m => m.Board).FirstOrDefault();

    /// <summary>The aname a mapped gadget attaches: what it asked for, with its board in place of any it named.</summary>
    public static string AnameFor(string requested, string board) => $"{BoardPaths.SplitAname(requested).Path}@{board}";

    /// <summary>The transport the server gets for a gadget: its own, or one that attaches the gadget's board.</summary>
    public INinePTransport For(UsbgTransport transport, string path, string serial, Action<string>? log = null)
    {
        if (BoardFor(path, serial) is not { } board) return transport;
        log?.Invoke($"{path}: board {board} (its own layer over the export)");
        return new BoardAttach(transport, board);
    }

    /// <summary>What serve prints: one line per mapping.</summary>
    public IEnumerable<string> Describe() => _every is { } b
        ? [$"board {b}: every usb9pfs gadget attaches its layer"]
        : _map.Select(m => $"board {m.Board}: the gadget {(m.IsPath ? "at USB port" : "with serial")} {m.Key}");

    /// <summary>The gadget's own transport, unchanged but for the aname its attach names.</summary>
    private sealed class BoardAttach(UsbgTransport inner, string board) : ISerialNinePTransport, IAttachNaming
    {
        public string Aname(string requested) => AnameFor(requested, board);
        public ValueTask<int> ReadFrameAsync(Memory<byte> buffer, CancellationToken ct) => inner.ReadFrameAsync(buffer, ct);
        public ValueTask WriteFrameAsync(ReadOnlyMemory<byte> frame, CancellationToken ct) => inner.WriteFrameAsync(frame, ct);
        public int ReadFrame(Span<byte> buffer, CancellationToken ct) => inner.ReadFrame(buffer, ct);
        public void WriteFrame(ReadOnlySpan<byte> frame) => inner.WriteFrame(frame);
        public int MaxMessageSize => inner.MaxMessageSize;
        public string Description => $"{inner.Description} (board {board})";
        public ValueTask DisposeAsync() => ValueTask.CompletedTask; // the supervisor disposes the gadget's transport
    }
}
