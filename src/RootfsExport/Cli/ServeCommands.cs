using System.CommandLine;
using System.Net;
using RootfsExport.BootSpec;
using RootfsExport.ExportServing;
using RootfsExport.NineP.Server;
using RootfsExport.NineP.Transport;

namespace RootfsExport.Cli;

/// <summary>`serve`: the export over 9P2000.L (our server) or NFS (unfsd under pseudo), ownership from the pseudo database.</summary>
public static class ServeCommands
{
    public static IEnumerable<Command> Create()
    {
        var export = new Argument<string>("export") { Description = "the export directory (made by rootfs-export unpack/update or runqemu-extract-sdk)" };
        var ninep = new Option<string?>("--9p") { Description = "serve 9P2000.L on tcp:HOST:PORT (default tcp:127.0.0.1:5640) or unix:/path" };
        var trace = new Option<bool>("--trace") { Description = "log every 9P request and reply to stderr" };
        var usb = new Option<bool>("--usb") { Description = "serve 9P2000.L to usb9pfs gadgets (boards with the Linux usbg transport) on this host's USB, in process; re-attaches when a board comes back" };
        var udc = new Option<string>("--udc") { Description = "--usb: the board's UDC name = usb9pfs instance name, for the printed mount line and cmdline", DefaultValueFactory = _ => "ci_hdrc.0" };
        var buflen = new Option<int>("--buflen") { Description = $"--usb: the buflen the board's gadget uses (default {TransportDefaults.UsbgBuflen}), for the printed mount line", DefaultValueFactory = _ => TransportDefaults.UsbgBuflen };
        var gadgets = new GadgetOptions();
        var nfs = new NfsServe();
        var nbd = new NbdServe(nfs.Bind);
        var boards = nbd.Boards; // one --board for both transports that name boards on the host: --nbd and --usb
        var cmd = new Command("serve", "serve an export to a board or guest over 9P2000.L (TCP/unix socket by default, or usb9pfs) or NFS, with the ownership from the pseudo database");
        cmd.Arguments.Add(export);
        cmd.Options.Add(ninep);
        cmd.Options.Add(usb);
        gadgets.AddTo(cmd);
        cmd.Options.Add(udc);
        cmd.Options.Add(buflen);
        cmd.Options.Add(trace);
        nfs.AddTo(cmd);
        nbd.AddTo(cmd);
        cmd.SetAction(async (parseResult, ct) =>
        {
            LongRunningRuntime.Enter();
            var dir = parseResult.GetValue(export)!;
            var boardValues = parseResult.GetValue(boards) ?? [];
            if (boardValues.Length > 0 && !parseResult.GetValue(usb) && !parseResult.GetValue(nbd.Nbd))
                throw new UserFacingException("--board applies to --usb (PATH-OR-SERIAL=BOARD) and --nbd (BOARD); a TCP board attaches aname=<export>@<board> itself (rootfs-export cmdline --board)");
            var usbBoards = parseResult.GetValue(usb) ? UsbBoards.Parse(boardValues) : UsbBoards.Parse([]);
            if (parseResult.GetValue(nbd.Nbd))
            {
                if (parseResult.GetValue(ninep) != null || parseResult.GetValue(usb) || parseResult.GetValue(nfs.Nfs)) throw new UserFacingException("choose one transport: --9p, --usb, --nfs or --nbd");
                return await nbd.RunAsync(parseResult, dir, ct);
            }
            if (parseResult.GetValue(usb))
            {
                if (parseResult.GetValue(ninep) != null || parseResult.GetValue(nfs.Nfs)) throw new UserFacingException("choose one transport: --9p, --usb or --nfs");
                var board = new UsbgEndpoint(parseResult.GetValue(udc)!, "/", Buflen: parseResult.GetValue(buflen));
                board.Validate(); // names the field (udc, buflen)
                return await ServeUsb(dir, gadgets.Filter(parseResult), board, usbBoards, parseResult.GetValue(trace), ct);
            }
            if (parseResult.GetValue(nfs.Nfs))
            {
                if (parseResult.GetValue(ninep) != null) throw new UserFacingException("choose one transport: --9p or --nfs");
                return await nfs.RunAsync(parseResult, dir, ct);
            }
            return await ServeNineP(dir, ListenAddress.Parse(parseResult.GetValue(ninep) ?? $"tcp:127.0.0.1:{TransportDefaults.NinePTcpPort}"),
                parseResult.GetValue(trace), ct);
        });
        yield return cmd;
    }

    private static async Task<int> ServeNineP(string dir, ListenAddress address, bool trace, CancellationToken ct)
    {
        using var server = ExportServer.Open(dir, Options(trace, line => Console.Error.WriteLine(line)));
        using var stop = new StopSignal(ct);
        await Together(stop.Token, t => ListenNinePAsync(server, address, t), t => ControlAsync(server, t));
        Console.WriteLine("stopped; the database is consistent");
        return 0;
    }

    private static async Task<int> ServeUsb(string dir, RootfsExport.Usb9pBridge.GadgetFilter filter, UsbgEndpoint board, UsbBoards boards, bool trace, CancellationToken ct)
    {
        using var server = ExportServer.Open(dir, Options(trace, UsbCommands.Log));
        using var stop = new StopSignal(ct);
        await Together(stop.Token, t => ServeGadgetsAsync(server, filter, board, t, boards), t => ControlAsync(server, t));
        Console.WriteLine("stopped; the database is consistent");
        return 0;
    }

    /// <summary>Runs the parts of one serving process until stopped; when one ends (a bind error, say) the others are stopped too.</summary>
    internal static async Task Together(CancellationToken stop, params Func<CancellationToken, Task>[] parts)
    {
        using var all = CancellationTokenSource.CreateLinkedTokenSource(stop);
        var tasks = parts.Select(p => Task.Run(() => p(all.Token))).ToList();
        await Task.WhenAny(tasks);
        all.Cancel();
        try { await Task.WhenAll(tasks); }
        catch (OperationCanceledException) when (stop.IsCancellationRequested) { }
    }

    /// <summary>What a board attaches: the export, or with a board name its own layer (&lt;export&gt;@&lt;board&gt;).</summary>
    internal static string Aname(string exportPath, string? board) => board is null ? exportPath : $"{exportPath}@{board}";

    internal static ServerOptions Options(bool trace, Action<string> log) => new() { Trace = trace ? log : null, Log = log };

    /// <summary>Binds, prints the mount line and kernel command line, and serves 9P on the address until stopped.</summary>
    internal static async Task ListenNinePAsync(ExportServer server, ListenAddress address, CancellationToken stop, string? board = null)
    {
        using var listener = ExportServer.Bind(address);
        if (listener.LocalEndPoint is IPEndPoint ep) address = address with { Port = ep.Port };
        var exportPath = server.FileSystem.ExportPath;
        Console.WriteLine($"serving {exportPath} over 9P2000.L on {address}");
        foreach (var line in ClientHints(address, Aname(exportPath, board))) Console.WriteLine(line);
        Console.Out.Flush();
        try { await server.Server.ListenAsync(listener, stop); }
        finally
        {
            if (address.Scheme == "unix") try { File.Delete(address.SocketPath!); } catch (IOException) { }
        }
    }

    internal static async Task ServeGadgetsAsync(ExportServer server, RootfsExport.Usb9pBridge.GadgetFilter filter, UsbgEndpoint board, CancellationToken stop, UsbBoards? boards = null)
    {
        var exportPath = server.FileSystem.ExportPath;
        Console.WriteLine($"serving {exportPath} over 9P2000.L to usb9pfs gadgets ({filter})");
        foreach (var line in UsbCommands.BoardHints(Aname(exportPath, boards?.EveryBoard), board.Udc, board.Buflen)) Console.WriteLine(line);
        foreach (var line in boards?.Describe() ?? []) Console.WriteLine(line);
        Console.Out.Flush();
        // each attach is a fresh 9P connection: the board starts over with Tversion after a reboot. The gadget
        // keeps one request in flight, so each is served in strict ping-pong on a thread of its own.
        await new RootfsExport.Usb9pBridge.GadgetSupervisor(filter, (t, ct) => server.Server.ServeAsync(
            t.Gadget is { } g && boards != null ? boards.For(t, g.Path, g.Serial, UsbCommands.Log) : t, ct), UsbCommands.Log).RunAsync(stop);
    }

    /// <summary>The control socket: `update`, `watch` and `board commit|reset` run elsewhere hand their work to this process, the export's one writer.</summary>
    internal static Task ControlAsync(ExportServer server, CancellationToken stop)
    {
        return ServeControl.RunAsync(server.State, (request, output) => UpdateSteps.RunWhileServing(server, request, output), Console.Out, stop,
            (request, output) => BoardCommands.WhileServing(server, request, output));
    }

    /// <summary>Mount line and kernel command line for this listener, from BootSpec's generator (one source of truth).</summary>
    public static IEnumerable<string> ClientHints(ListenAddress address, string exportPath)
    {
        if (address.Scheme == "unix")
        {
            yield return $"clients: connect to {address.SocketPath} (e.g. socat to a TCP port for a QEMU guestfwd), aname={exportPath}";
            yield break;
        }
        bool wildcard = address.Host is "0.0.0.0" or "::";
        var host = wildcard || !IPAddress.TryParse(address.Host, out var ip) || ip.AddressFamily != System.Net.Sockets.AddressFamily.InterNetwork
            ? IPAddress.Parse("192.168.7.1") : ip;
        var endpoint = new NinePTcpEndpoint(host, exportPath, address.Port);
        if (wildcard) yield return "(listening on all addresses: 192.168.7.1 below stands for the address the board reaches)";
        yield return $"mount:   {endpoint.MountCommand("/mnt")}";
        yield return $"cmdline: {KernelCmdline.For(endpoint, new CmdlineOptions())}";
        if (address.Host is "127.0.0.1" or "::1" or "localhost")
            yield return $"QEMU:    -netdev user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:{address.Port}-cmd:socat STDIO TCP:{address.Host}:{address.Port} (then mount from 10.0.2.100)";
    }
}
