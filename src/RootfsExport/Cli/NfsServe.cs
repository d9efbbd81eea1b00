using System.CommandLine;
using System.Net;
using RootfsExport.BootSpec;
using RootfsExport.ExportTree;
using RootfsExport.ExportTree.Nfs;
using RootfsExport.FeedWatcher;

namespace RootfsExport.Cli;

/// <summary>serve --nfs: unfsd under pseudo on the export's state, as runqemu-export-rootfs does, set up for you.</summary>
public sealed class NfsServe
{
    public Option<bool> Nfs { get; } = new("--nfs") { Description = "serve over NFSv3 with unfsd running under pseudo (OE's runqemu-export-rootfs way)" };
    public Option<FileInfo?> Unfsd { get; } = new("--unfsd") { Description = "unfsd binary (default: OE/PTXdist native sysroots, then PATH)" };
    public Option<FileInfo?> Pseudo { get; } = new("--pseudo") { Description = "pseudo binary (default: OE native sysroots, then PATH)" };
    public Option<string> Bind { get; } = new("--bind") { Description = "address unfsd listens on (default 127.0.0.1; give the board-facing address to serve a board)", DefaultValueFactory = _ => "127.0.0.1" };
    public Option<int?> Port { get; } = new("--nfs-port") { Description = "port for NFS and MOUNT, TCP and UDP (default: the first free from 3049)" };
    public Option<bool> TcpOnly { get; } = new("--tcp-only") { Description = "no UDP listener (barebox needs UDP)" };
    public Option<DirectoryInfo?> BuildDir { get; } = new("--build-dir") { Description = "OE build or PTXdist BSP to search for unfsd and pseudo (default $BUILDDIR)" };

    private readonly bool _withBuildDir;

    /// <param name="withBuildDir">false where the command has its own --build-dir (dev): unfsd and pseudo are then searched in that build</param>
    public NfsServe(bool withBuildDir = true) => _withBuildDir = withBuildDir;

    public void AddTo(Command cmd)
    {
        foreach (var o in new Option[] { Nfs, Unfsd, Pseudo, Bind, Port, TcpOnly }) cmd.Options.Add(o);
        if (_withBuildDir) cmd.Options.Add(BuildDir);
    }

    public async Task<int> RunAsync(ParseResult parse, string exportDir, CancellationToken cancel)
    {
        using var stop = new StopSignal(cancel);
        return await RunAsync(parse, exportDir, parse.GetValue(BuildDir)?.FullName, null, stop.Token);
    }

    /// <summary>`dev --nfs`: the same server, and the build's feeds watched and applied in the pauses between two unfsd runs.</summary>
    public Task<int> RunDevAsync(ParseResult parse, UpdateHandover request, CancellationToken cancel) =>
        RunAsync(parse, request.Export, request.Layout.BuildDir, request, cancel);

    private async Task<int> RunAsync(ParseResult parse, string exportDir, string? buildDir, UpdateHandover? watched, CancellationToken cancel)
    {
        var unfsd = UnfsdServer.Locate(parse.GetValue(Unfsd)?.FullName, buildDir) ?? throw new UserFacingException(UnfsdServer.MissingUnfsdHelp);
        var pseudo = PseudoRunner.Locate(parse.GetValue(Pseudo)?.FullName, buildDir);
        if (!IPAddress.TryParse(parse.GetValue(Bind), out var bind)) throw new UserFacingException($"--bind: '{parse.GetValue(Bind)}' is not an IP address");
        var plan = UnfsdServer.Plan(exportDir, unfsd, pseudo, bind, parse.GetValue(Port), parse.GetValue(TcpOnly));

        var clientHost = bind.Equals(IPAddress.Any) || bind.Equals(IPAddress.IPv6Any) ? IPAddress.Parse("192.168.7.1") : bind;
        var endpoint = new NfsEndpoint(clientHost, plan.Export, plan.Port);
        Console.WriteLine($"serving {plan.Export} over NFSv3 on {bind}:{plan.Port} ({(plan.TcpOnly ? "TCP" : "TCP and UDP")}), NFS and MOUNT on one port");
        Console.WriteLine($"cmdline: {KernelCmdline.For(endpoint, new CmdlineOptions())}");
        if (BareboxLine.For(endpoint) is { } barebox) Console.WriteLine($"barebox: {barebox}");
        Console.WriteLine($"test:    nfs-ls 'nfs://{bind}{plan.Export}/?nfsport={plan.Port}&mountport={plan.Port}'");
        Console.WriteLine("note:    unfsd under pseudo enforces no permissions; files created over NFS take the uid the client claims. Serve loopback or a private board network only.");

        var changes = new HostChanges();
        UpdateOutcome Apply(UpdateHandover request, TextWriter output) => changes.Apply(() => UpdateSteps.Run(request, output, serving: true));
        var state = PseudoDb.PseudoState.ForExport(plan.Export);
        Console.WriteLine("updates: unfsd and pseudo pause while one is applied (files.db flushed, updated, unfsd started again on the same port)");
        Console.Out.Flush();

        int rc = 0;
        var parts = new List<Func<CancellationToken, Task>>
        {
            async t => rc = await UnfsdServer.RunAsync(plan, Console.Out, t, changes),
            t => ServeControl.RunAsync(state, Apply, Console.Out, t),
        };
        if (watched != null)
            parts.Add(new FeedWatch(watched.Layout, watched.Image, _ => Task.FromResult(Apply(watched, Console.Out).NotReady == 0), Console.Out).RunAsync);
        await ServeCommands.Together(cancel, parts.ToArray());
        return rc;
    }
}
