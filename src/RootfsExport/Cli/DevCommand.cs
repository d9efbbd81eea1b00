using System.CommandLine;
using RootfsExport.BootSpec;
using RootfsExport.FeedWatcher;
using RootfsExport.ExportServing;
using RootfsExport.NineP.Server;
using RootfsExport.NineP.Transport;

namespace RootfsExport.Cli;

/// <summary>
/// `dev`: the whole loop in one process. Updates the export once, serves it, and applies every package the build
/// drops (or a build-done message) while serving: this process holds the export's lock, so it is its one writer,
/// and the board's requests pause for the moment an update takes. Ctrl-C/SIGTERM stops all of it with files.db
/// committed.
/// </summary>
public static class DevCommand
{
    public static Command Create()
    {
        var image = new Argument<string>("image") { Description = "image recipe name, e.g. core-image-minimal" };
        var build = FoundationCommands.BuildOptions.Create();
        var ninep = new Option<string?>("--9p") { Description = "serve 9P2000.L on tcp:HOST:PORT (default tcp:127.0.0.1:5640) or unix:/path" };
        var usb = new Option<bool>("--usb") { Description = "serve 9P2000.L to usb9pfs gadgets on this host's USB instead" };
        var udc = new Option<string>("--udc") { Description = "--usb: the board's UDC name, for the printed command line", DefaultValueFactory = _ => "ci_hdrc.0" };
        var buflen = new Option<int>("--buflen") { Description = $"--usb: the board gadget's buflen (default {TransportDefaults.UsbgBuflen})", DefaultValueFactory = _ => TransportDefaults.UsbgBuflen };
        var trace = new Option<bool>("--trace") { Description = "log every 9P request and reply to stderr" };
        var board = new Option<string?>("--board") { Description = "9P: the board's name: the printed command line attaches aname=<export>@<board>, its own copy-on-write layer (see rootfs-export board)" };
        var gadgets = new GadgetOptions();
        var nfs = new NfsServe(withBuildDir: false);
        var cmd = new Command("dev", "The development loop: update the export, serve it to the board, and apply every package the build drops while serving " +
            "(the board sees it within seconds, no remount); prints the board's command line; Ctrl-C stops")
        {
            image, ninep, usb, udc, buflen, trace, board,
        };
        build.AddTo(cmd);
        gadgets.AddTo(cmd);
        nfs.AddTo(cmd);
        cmd.SetAction(async (parse, ct) =>
        {
            LongRunningRuntime.Enter();
            int transports = (parse.GetValue(ninep) != null ? 1 : 0) + (parse.GetValue(usb) ? 1 : 0) + (parse.GetValue(nfs.Nfs) ? 1 : 0);
            if (transports > 1) throw new UserFacingException("choose one transport: --9p, --usb or --nfs");
            var boardName = parse.GetValue(board) is { } b ? BoardPaths.CheckName(b) : null;
            if (boardName != null && parse.GetValue(nfs.Nfs)) throw new UserFacingException("--board: a board's own layer is served over 9P (--9p or --usb), not NFS");
            var name = parse.GetValue(image)!;
            var (layout, export) = build.Resolve(parse, name);
            var request = new UpdateHandover(layout, name, export, [], NoFeeds: false);
            Console.WriteLine($"Build: {layout.BuildDir} (MACHINE {layout.Machine})");
            UpdateSteps.Run(request, Console.Out, serving: false);
            using var stop = new StopSignal(ct);
            if (parse.GetValue(nfs.Nfs)) return await nfs.RunDevAsync(parse, request, stop.Token);

            bool isUsb = parse.GetValue(usb);
            using var server = ExportServer.Open(export, ServeCommands.Options(parse.GetValue(trace), isUsb ? UsbCommands.Log : line => Console.Error.WriteLine(line)));
            Func<CancellationToken, Task> serve = isUsb
                ? t => ServeCommands.ServeGadgetsAsync(server, gadgets.Filter(parse), Board(parse.GetValue(udc)!, parse.GetValue(buflen)), t,
                    boardName is null ? null : UsbBoards.Every(boardName))
                : t => ServeCommands.ListenNinePAsync(server, ListenAddress.Parse(parse.GetValue(ninep) ?? $"tcp:127.0.0.1:{TransportDefaults.NinePTcpPort}"), t, boardName);
            var watch = new FeedWatch(layout, name, _ => Task.FromResult(UpdateSteps.RunWhileServing(server, request, Console.Out).NotReady == 0), Console.Out);
            await ServeCommands.Together(stop.Token, serve, t => ServeCommands.ControlAsync(server, t), watch.RunAsync);
            Console.WriteLine("stopped; the database is consistent");
            return 0;
        });
        return cmd;
    }

    private static UsbgEndpoint Board(string udc, int buflen)
    {
        var board = new UsbgEndpoint(udc, "/", Buflen: buflen);
        board.Validate(); // names the field (udc, buflen)
        return board;
    }
}
