using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using RootfsExport.Posix;
using RootfsExport.PseudoDb;

namespace RootfsExport.BlockExport;

/// <summary>What serve --nbd runs: one nbdkit per board (its own copy-on-write overlay), or one read-only nbdkit for all.</summary>
public sealed record NbdPlan(string Image, string Export, IPAddress Bind, bool ReadOnly, IReadOnlyList<(string Board, int Port)> Boards, string RunDir)
{
    public string PidFile(string board) => Path.Combine(RunDir, board + ".pid");
    /// <summary>Left by `serve --nbd --reset` before it ends the board's nbdkit: that exit is asked for, not a failure to start.</summary>
    public string ResetMarker(string board) => ResetMarkerOf(PidFile(board));
    internal static string ResetMarkerOf(string pidFile) => pidFile + ".reset";
}

/// <summary>
/// NBD through Debian's nbdkit: the file plugin on the shared image, and for each board the cow filter, which keeps
/// that board's writes in a temporary overlay of its own nbdkit process (the image is never written), and the
/// exportname filter, strict, so a board that dials another board's port is refused instead of sharing its overlay.
/// A board's writes last while its nbdkit runs (across the board's reboots); `--reset BOARD` ends that nbdkit
/// and a fresh one with an empty overlay takes its place.
/// </summary>
public static class NbdServer
{
    public static NbdPlan Plan(string exportDir, string? image, IPAddress bind, int basePort, bool readOnly, IReadOnlyList<string> boards, TextWriter log)
    {
        var export = ExportPaths.Canonical(exportDir);
        var state = PseudoState.ForExport(export);
        var served = image is null ? ImageOf(export, state) : Path.GetFullPath(image);
        var record = ImageRecord.Read(served);
        if (!File.Exists(served)) throw new UserFacingException($"--image {served}: no such file");
        if (record is not null && record.Fingerprint != ExportSurvey.Take(export).Fingerprint)
            log.WriteLine($"note: {served} is older than the export; 'rootfs-export update' or 'image' rebuilds it (a running board keeps the image it booted)");
        if (record?.Verity is not null && !readOnly)
        {
            log.WriteLine("note: the image carries a dm-verity tree: served read-only (a board's writes would break the root hash)");
            readOnly = true;
        }
        var registry = BoardPorts.Register(export, boards.Count > 0 ? boards : [BoardPorts.DefaultBoard]);
        var named = boards.Count > 0 ? boards.Distinct().ToList() : registry.Boards;
        var ports = readOnly ? [(named[0], basePort)] : named.Select(b => (b, registry.PortOf(b, basePort))).ToList();
        foreach (var (board, port) in ports)
        {
            if (port > 65535) throw new UserFacingException($"board {board}: port {port} is above 65535; pass a lower --port");
            if (!IsFree(bind, port)) throw new UserFacingException($"port {port} on {bind} (board {board}) is in use");
        }
        return new NbdPlan(served, export, bind, readOnly, ports, RunDirFor(export));
    }

    /// <summary>Where serve keeps each board's nbdkit pid file: beside the export, which update may replace while serving.</summary>
    public static string RunDirFor(string canonicalExport) => canonicalExport + ".rootfs-export-nbd";

    /// <summary>The one image built from this export (its state lists them), else a clear error.</summary>
    private static string ImageOf(string export, PseudoState state)
    {
        var images = ImageRegistry.Read(export).Images.Where(i => File.Exists(i) && ImageRecord.Read(i)?.Export == export).ToList();
        return images.Count switch
        {
            1 => images[0],
            0 => throw new UserFacingException($"no image of {export} yet: build one with 'rootfs-export image {export} -o rootfs.ext4', or pass --image"),
            _ => throw new UserFacingException($"several images of {export} ({string.Join(", ", images)}): choose one with --image"),
        };
    }

    public static bool IsFree(IPAddress bind, int port)
    {
        try
        {
            using var tcp = new Socket(bind.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            tcp.Bind(new IPEndPoint(bind, port));
            return true;
        }
        catch (SocketException) { return false; }
    }

    /// <summary>nbdkit's arguments for one board (or, read-only, for all: any export name is answered).</summary>
    /// <param name="image">the path nbdkit opens: serve's own open descriptor of the image (see <see cref="RunAsync"/>)</param>
    public static IReadOnlyList<string> Arguments(NbdPlan plan, string board, int port, string image)
    {
        var args = new List<string> { "--foreground", "--exit-with-parent", "-i", plan.Bind.ToString(), "-p", port.ToString(CultureInfo.InvariantCulture),
            "-P", plan.PidFile(board), "-e", board };
        if (plan.ReadOnly) args.AddRange(["-r", "file", $"file={image}"]);
        else args.AddRange(["--filter=exportname", "--filter=cow", "file", $"file={image}", $"exportname={board}", "exportname-strict=true"]);
        return args;
    }

    /// <summary>
    /// Runs every board's nbdkit until stopped; one that ends (a reset) is started again with an empty overlay.
    /// nbdkit's file plugin opens the file again for each connection (by its real path), and update renames a
    /// rebuilt image over the old one: a board reconnecting after that would read new blocks under its old
    /// overlay. So nbdkit is given a hard link of its own to the image (beside it, removed when serve stops):
    /// every board reads the image serve started with.
    /// </summary>
    public static async Task RunAsync(NbdPlan plan, TextWriter log, CancellationToken stop)
    {
        Directory.CreateDirectory(plan.RunDir);
        foreach (var (board, _) in plan.Boards) File.Delete(plan.ResetMarker(board)); // a reset of an earlier serve's nbdkit
        var nbdkit = HostPrograms.Require("nbdkit", "nbdkit");
        var image = PinImage(plan.Image);
        try
        {
            using var all = CancellationTokenSource.CreateLinkedTokenSource(stop);
            var boards = plan.Boards.Select(b => OnOwnThread(() => Supervise(nbdkit, plan, b.Board, b.Port, image, log, all.Token))).ToList();
            var first = await Task.WhenAny(boards);
            all.Cancel();
            await Task.WhenAll(boards.Select(t => t.ContinueWith(_ => { }, TaskScheduler.Default)));
            if (first.IsFaulted) throw first.Exception!.InnerException!;
        }
        finally
        {
            File.Delete(image);
        }
    }

    /// <summary>.NAME.served-PID beside the image, a hard link; links of serves that are gone are removed first.</summary>
    private static string PinImage(string image)
    {
        var dir = Path.GetDirectoryName(image)!;
        var name = Path.GetFileName(image);
        foreach (var stale in Directory.EnumerateFiles(dir, $".{name}.served-*"))
            if (int.TryParse(stale[(stale.LastIndexOf('-') + 1)..], out var pid) && !Directory.Exists($"/proc/{pid}")) File.Delete(stale);
        var pinned = $".{name}.served-{Environment.ProcessId}";
        using var handle = HostDirectory.Open(dir);
        if (handle.TryStat(pinned, out _)) handle.Unlink(pinned);
        HostDirectory.Link(handle, name, handle, pinned);
        return Path.Combine(dir, pinned);
    }

    /// <summary>
    /// nbdkit's --exit-with-parent is PR_SET_PDEATHSIG, which Linux ties to the thread that forked it, not to the
    /// process: started from a thread-pool thread, nbdkit got SIGTERM when the pool retired that thread and answered a
    /// connected board ESHUTDOWN. So each board's nbdkit is started and waited for on a thread that outlives it.
    /// </summary>
    private static Task OnOwnThread(Action body)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try { body(); done.SetResult(); }
            catch (Exception e) { done.SetException(e); }
        }) { IsBackground = true, Name = "nbdkit supervisor" };
        thread.Start();
        return done.Task;
    }

    private static void Supervise(string nbdkit, NbdPlan plan, string board, int port, string image, TextWriter log, CancellationToken stop)
    {
        while (!stop.IsCancellationRequested)
        {
            var started = Stopwatch.StartNew();
            using var process = ChildProcess.Start(nbdkit, Arguments(plan, board, port, image));
            try
            {
                while (!process.WaitForExit(250))
                    if (stop.IsCancellationRequested) { Stop(process); return; }
            }
            finally { File.Delete(plan.PidFile(board)); }
            bool asked = File.Exists(plan.ResetMarker(board));
            File.Delete(plan.ResetMarker(board));
            if (!asked && started.Elapsed < TimeSpan.FromSeconds(3)) // a reset soon after the start is not a failure to start
                throw new UserFacingException($"nbdkit for board {board} on port {port} exited with status {process.ExitCode} right after starting (see its message above)");
            lock (log) log.WriteLine($"board {board}: nbdkit ended (status {process.ExitCode}); started again with an empty overlay");
        }
    }

    private static void Stop(Process process)
    {
        if (process.HasExited) return;
        Posix.Native.Signals.Kill(process.Id, Posix.Native.Signals.SIGTERM);
        if (!process.WaitForExit(5000)) process.Kill();
        process.WaitForExit();
    }

    /// <summary>
    /// Drops a board's overlay on the running serve of this export: its nbdkit (found by the pid file serve keeps,
    /// checked to be that nbdkit) is ended and serve starts a fresh one. False when no serve runs that board.
    /// </summary>
    public static bool Reset(string exportDir, string board)
    {
        var export = ExportPaths.Canonical(exportDir);
        var pidFile = Path.Combine(RunDirFor(export), BoardPorts.CheckName(board) + ".pid");
        if (!File.Exists(pidFile) || !int.TryParse(File.ReadAllText(pidFile).Trim(), out var pid)) return false;
        var cmdline = File.Exists($"/proc/{pid}/cmdline") ? File.ReadAllText($"/proc/{pid}/cmdline") : "";
        if (!cmdline.StartsWith("nbdkit\0", StringComparison.Ordinal) && !cmdline.Contains("/nbdkit\0", StringComparison.Ordinal)) return false;
        if (!cmdline.Contains(pidFile + "\0", StringComparison.Ordinal)) return false;
        File.WriteAllText(NbdPlan.ResetMarkerOf(pidFile), ""); // serve restarts this nbdkit however soon after its start it ends
        Posix.Native.Signals.Kill(pid, Posix.Native.Signals.SIGTERM);
        return true;
    }
}
