using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using RootfsExport.Posix;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportTree.Nfs;

/// <summary>What serve --nfs runs: unfsd under pseudo on the export's state.</summary>
public sealed record UnfsdPlan(string Unfsd, PseudoRunner Pseudo, string Export, IPAddress Bind, int Port, bool TcpOnly, string RuntimeDir)
{
    public string ExportsFile => Path.Combine(RuntimeDir, "exports");
    public string PidFile => Path.Combine(RuntimeDir, "unfsd.pid");

    /// <summary>The exports line runqemu-export-rootfs writes: pseudo fakes every owner, so squashing is off.</summary>
    public string ExportsLine => $"{Export} (rw,no_root_squash,no_all_squash,insecure)\n";

    /// <summary>
    /// unfsd's arguments: foreground (-d), no portmapper (-p), NFS and MOUNT on one port (as runqemu does),
    /// bound to one address; UDP stays on unless asked (barebox mounts NFSv3 over UDP).
    /// </summary>
    public IReadOnlyList<string> UnfsdArguments
    {
        get
        {
            var args = new List<string> { Unfsd, "-d", "-p", "-l", Bind.ToString(), "-n", Port.ToString(), "-m", Port.ToString(), "-e", ExportsFile, "-i", PidFile };
            if (TcpOnly) args.Insert(3, "-t");
            return args;
        }
    }
}

/// <summary>
/// NFS serving the OE way (runqemu-export-rootfs): unfsd runs under pseudo with the export's state, so NFS
/// clients see the owners in files.db and what they create is recorded. unfsd enforces no permissions under
/// pseudo: a client's claimed uid is taken as is. Bind to loopback or a private board-facing address only.
/// </summary>
public static class UnfsdServer
{
    public const string MissingUnfsdHelp =
        "unfsd (unfs3) not found. It is in no Debian release; get it from your build:\n" +
        "  OpenEmbedded: bitbake unfs3-native -c addto_recipe_sysroot   (or qemu-helper-native, as runqemu uses)\n" +
        "  PTXdist:      ptxdist images builds host-unfs3 into platform-*/sysroot-host\n" +
        "  or build https://github.com/unfs3/unfs3 (./bootstrap && ./configure && make) and pass --unfsd PATH";

    /// <summary>Finds unfsd: --unfsd, $OECORE_NATIVE_SYSROOT, the OE build's native sysroots, PTXdist's sysroot-host, PATH.</summary>
    public static string? Locate(string? explicitPath, string? buildDir) =>
        Build.HostTools.Locate("unfsd", "unfs3-native", explicitPath, "--unfsd", buildDir);

    /// <summary>A port free for both TCP and UDP on the bind address (unfsd listens on both).</summary>
    public static int FreePort(IPAddress bind, int preferred)
    {
        for (int port = preferred; port < preferred + 200; port++)
            if (IsFree(bind, port)) return port;
        throw new UserFacingException($"no free TCP+UDP port in {preferred}..{preferred + 199} on {bind}; pass --port");
    }

    public static bool IsFree(IPAddress bind, int port)
    {
        try
        {
            using var tcp = new Socket(bind.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            tcp.Bind(new IPEndPoint(bind, port));
            using var udp = new Socket(bind.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            udp.Bind(new IPEndPoint(bind, port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }

    public static UnfsdPlan Plan(string exportDir, string unfsd, PseudoRunner pseudo, IPAddress bind, int? port, bool tcpOnly)
    {
        var export = ExportPaths.Canonical(exportDir);
        var state = new PseudoState(PseudoState.StatePathFor(export));
        if (!Directory.Exists(export) || !state.Exists)
            throw new UserFacingException($"'{export}' is not an export with a pseudo database ({state.FilesDbPath}); create it with 'rootfs-export unpack' or 'update'");
        int chosen = port ?? FreePort(bind, 3049);
        if (port is int p && !IsFree(bind, p)) throw new UserFacingException($"port {p} on {bind} is in use (TCP or UDP)");
        var runtime = Path.Combine(Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR") is { Length: > 0 } x ? x : Path.GetTempPath(),
            $"rootfs-export-nfs-{Environment.ProcessId}");
        return new UnfsdPlan(unfsd, pseudo, export, bind, chosen, tcpOnly, runtime);
    }

    /// <summary>
    /// Runs unfsd under pseudo in the foreground until cancelled or it exits; then stops it and pseudo. A change
    /// posted to <paramref name="changes"/> runs while neither runs: unfsd is stopped and pseudo -S writes its
    /// database out (pseudo holds files.db and its lock while it runs, and keeps rows in memory), the change takes
    /// the lock like any writer, then unfsd starts again on the same port. NFSv3 is stateless and its file handles
    /// name dev/inode, so a board's hard mount retries through the gap and goes on.
    /// </summary>
    public static async Task<int> RunAsync(UnfsdPlan plan, TextWriter log, CancellationToken cancel, HostChanges? changes = null)
    {
        Directory.CreateDirectory(plan.RuntimeDir);
        await File.WriteAllTextAsync(plan.ExportsFile, plan.ExportsLine, CancellationToken.None);
        var env = plan.Pseudo.EnvironmentFor(plan.Export, plan.RuntimeDir + "/");
        try { return await RunUntilStoppedAsync(plan, env, log, cancel, changes); }
        finally { changes?.Close(); }
    }

    private static async Task<int> RunUntilStoppedAsync(UnfsdPlan plan, Dictionary<string, string?> env, TextWriter log, CancellationToken cancel, HostChanges? changes)
    {
        while (true)
        {
            var process = ChildProcess.Start(plan.Pseudo.Binary, plan.UnfsdArguments, env);
            log.WriteLine($"unfsd (pid {process.Id}) under pseudo {plan.Pseudo.Binary}, state {PseudoState.StatePathFor(plan.Export)}");
            HostChanges.Pending? change = null;
            try
            {
                var exited = process.WaitForExitAsync(cancel);
                var next = changes?.NextAsync(cancel) ?? Task.Delay(Timeout.Infinite, cancel).ContinueWith(_ => (HostChanges.Pending?)null, TaskScheduler.Default);
                if (await Task.WhenAny(exited, next) == exited)
                {
                    await exited;
                    log.WriteLine($"unfsd exited with status {process.ExitCode}");
                    return process.ExitCode == 0 ? 0 : 1;
                }
                change = await next;
            }
            catch (OperationCanceledException)
            {
                return 0;
            }
            finally
            {
                Stop(process, plan, log);
                process.Dispose();
            }
            change?.Run();
            if (cancel.IsCancellationRequested) return 0;
        }
    }

    /// <summary>
    /// Stops unfsd, then pseudo -S, so files.db is flushed before anyone reads it. The process we started is
    /// pseudo's launcher, which runs unfsd as its child: unfsd's own pid comes from its pid file (-i), as
    /// runqemu-export-rootfs stops it.
    /// </summary>
    private static void Stop(Process launcher, UnfsdPlan plan, TextWriter log)
    {
        int? unfsdPid = File.Exists(plan.PidFile) && int.TryParse(File.ReadAllText(plan.PidFile).Trim(), out var pid) ? pid : null;
        if (unfsdPid is int u) Signal(u, Posix.Native.Signals.SIGTERM);
        if (!launcher.HasExited) Signal(launcher.Id, Posix.Native.Signals.SIGTERM);
        bool gone = WaitGone(unfsdPid, TimeSpan.FromSeconds(10));
        if (!gone && unfsdPid is int stubborn) { Signal(stubborn, Posix.Native.Signals.SIGKILL); WaitGone(unfsdPid, TimeSpan.FromSeconds(5)); }
        if (!launcher.WaitForExit(5000)) launcher.Kill(entireProcessTree: true);
        launcher.WaitForExit();
        plan.Pseudo.Stop(plan.Export);
        log.WriteLine($"stopped: unfsd ended, pseudo server flushed {PseudoState.StatePathFor(plan.Export)}/files.db");
        try { Directory.Delete(plan.RuntimeDir, recursive: true); } catch (IOException) { }
    }

    private static bool WaitGone(int? pid, TimeSpan limit)
    {
        if (pid is null) return true;
        var until = DateTime.UtcNow + limit;
        while (DateTime.UtcNow < until)
        {
            if (!Directory.Exists($"/proc/{pid}") || File.ReadAllText($"/proc/{pid}/stat").Split(' ')[2] == "Z") return true;
            Thread.Sleep(50);
        }
        return false;
    }

    private static void Signal(int pid, int signal) => Posix.Native.Signals.Kill(pid, signal);
}

/// <summary>Changes of the export to run while unfsd and pseudo are stopped (see <see cref="UnfsdServer.RunAsync"/>).</summary>
public sealed class HostChanges
{
    private readonly System.Threading.Channels.Channel<Pending> _queue = System.Threading.Channels.Channel.CreateUnbounded<Pending>();

    public sealed class Pending(Action change)
    {
        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public void Run()
        {
            try { change(); Done.SetResult(); }
            catch (Exception e) { Done.SetException(e); }
        }
    }

    /// <summary>No more changes: what is still queued fails instead of waiting for ever.</summary>
    internal void Close()
    {
        _queue.Writer.TryComplete();
        while (_queue.Reader.TryRead(out var p)) p.Done.TrySetException(new UserFacingException("the NFS server stopped before the change was made"));
    }

    internal Task<Pending?> NextAsync(CancellationToken cancel) =>
        _queue.Reader.ReadAsync(cancel).AsTask().ContinueWith(t => (Pending?)t.Result, cancel, TaskContinuationOptions.OnlyOnRanToCompletion, TaskScheduler.Default);

    /// <summary>Runs the change in the pause between two unfsd runs and returns its result (or throws its exception).</summary>
    public T Apply<T>(Func<T> change)
    {
        T result = default!;
        var pending = new Pending(() => result = change());
        if (!_queue.Writer.TryWrite(pending)) throw new UserFacingException("the NFS server has stopped; the change was not made");
        pending.Done.Task.GetAwaiter().GetResult();
        return result;
    }
}
