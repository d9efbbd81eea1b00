using System.Net.Sockets;
using System.Text;
using RootfsExport.ExportTree.Build;
using RootfsExport.PseudoDb;

namespace RootfsExport.Cli;

/// <summary>
/// The control socket of a serving process. While `serve` (or `dev`) runs it holds pseudo's lock, so it is the one
/// writer of files.db; a separate `update`, `watch` or `board commit` that finds the socket hands its work over
/// here and prints what comes back. Line protocol: the request as "key value" lines ending with an empty line; the reply as
/// "out TEXT" lines and a final "exit N".
/// </summary>
public static class ServeControl
{
    private const int MaxSocketPath = 107; // sun_path

    /// <summary>Where serve listens: the first of <see cref="SocketPaths"/>.</summary>
    public static string SocketPath(PseudoState state) => SocketPaths(state).First();

    /// <summary>
    /// The places a serve's control socket may be, in the order serve picks them: the user's runtime directory
    /// ($XDG_RUNTIME_DIR, a local tmpfs, when this user may write it: the state directory may be on a share that
    /// refuses sockets, as QEMU's virtio-9p passthrough does), then &lt;state&gt;/rootfs-export.sock, then /tmp
    /// when that path is too long for a socket. `update` and `watch` look in all of them.
    /// </summary>
    public static IEnumerable<string> SocketPaths(PseudoState state)
    {
        var hash = StateDirectoryHash(state.Directory);
        var runtime = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR");
        if (!string.IsNullOrEmpty(runtime) && Path.IsPathRooted(runtime) && Posix.Native.Libc.Access(runtime, 2 | 1))
        {
            var inRuntime = Path.Combine(runtime, $"rootfs-export-{hash}.sock");
            if (Encoding.UTF8.GetByteCount(inRuntime) <= MaxSocketPath) yield return inRuntime;
        }
        var inState = Path.Combine(state.Directory, "rootfs-export.sock");
        if (Encoding.UTF8.GetByteCount(inState) <= MaxSocketPath) yield return inState;
        yield return Path.Combine(Path.GetTempPath(), $"rootfs-export-{hash}.sock");
    }

    /// <summary>
    /// 64-bit FNV-1a of the state directory's path, in hex: a name, not a secret. Every `update` looks for the
    /// socket, and SHA-256 would load OpenSSL (libssl, libcrypto, openssl.cnf) into a no-op update for it.
    /// </summary>
    private static string StateDirectoryHash(string directory)
    {
        ulong h = 14695981039346656037;
        foreach (var b in Encoding.UTF8.GetBytes(directory)) h = (h ^ b) * 1099511628211;
        return h.ToString("x16");
    }

    /// <summary>
    /// Serves update (and `board commit|reset`) requests until cancelled; one at a time (each step serializes with the
    /// boards' requests itself). board is null where the serve has no boards (NFS): a board command is refused there.
    /// </summary>
    public static async Task RunAsync(PseudoState state, Func<UpdateHandover, TextWriter, UpdateOutcome> apply, TextWriter log, CancellationToken cancel,
        Func<BoardHandover, TextWriter, UpdateOutcome>? board = null)
    {
        var path = SocketPath(state);
        if (File.Exists(path)) File.Delete(path); // left by a killed serve: we hold the lock, so no live one owns it
        using var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        // connecting needs write permission: take it from group and other unless the umask already did. Only then,
        // because a chmod of a socket on a QEMU virtio-9p share makes QEMU declare the client compromised and
        // stop serving the whole share (it opens the node to chmod it, and refuses special files).
        if ((File.GetUnixFileMode(path) & (UnixFileMode.GroupWrite | UnixFileMode.OtherWrite)) != 0)
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        listener.Listen(8);
        log.WriteLine($"updates: 'rootfs-export update' and 'watch' hand their work to this process ({path})");
        log.Flush();
        try
        {
            while (!cancel.IsCancellationRequested)
            {
                Socket client;
                try { client = await listener.AcceptAsync(cancel); }
                catch (OperationCanceledException) { break; }
                using (client) await AnswerAsync(client, apply, board, cancel);
            }
        }
        finally
        {
            try { File.Delete(path); } catch (IOException) { }
        }
    }

    private static async Task AnswerAsync(Socket client, Func<UpdateHandover, TextWriter, UpdateOutcome> apply,
        Func<BoardHandover, TextWriter, UpdateOutcome>? board, CancellationToken cancel)
    {
        using var stream = new NetworkStream(client, ownsSocket: false);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        using var writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
        var reply = new ReplyWriter(writer);
        UpdateOutcome outcome;
        try
        {
            var fields = await ReadRequestAsync(reader, cancel);
            string command = One(fields, "command");
            Func<UpdateOutcome> run;
            switch (command)
            {
                case "update":
                    var update = UpdateRequest(fields);
                    run = () => apply(update, reply);
                    break;
                case "board-commit" or "board-reset":
                    if (board is null)
                        throw new UserFacingException("this serve (NFS through unfsd) serves no boards and cannot take a board's commit or reset; stop it first");
                    var handed = new BoardHandover(command["board-".Length..], One(fields, "export"), One(fields, "board"));
                    run = () => board(handed, reply);
                    break;
                default:
                    throw new UserFacingException($"control socket: unknown command '{command}' (this serve knows 'update', 'board-commit' and 'board-reset')");
            }
            reply.Prefix = command.Replace('-', ' ');
            outcome = await Task.Run(run, CancellationToken.None);
        }
        catch (UserFacingException e)
        {
            reply.WriteLine($"rootfs-export: error: {e.Message}");
            outcome = new UpdateOutcome(1, 0);
        }
        catch (Exception e) when (e is IOException or SocketException) { return; } // the client went away; the update (if any) still completed
        try
        {
            reply.Flush();
            writer.WriteLine($"exit {outcome.ExitCode} {outcome.NotReady}");
        }
        catch (Exception e) when (e is IOException or SocketException) { }
    }

    /// <summary>The request's "key value" lines, up to the empty line (10 s at most, 1,000 lines at most).</summary>
    private static async Task<Dictionary<string, List<string>>> ReadRequestAsync(StreamReader reader, CancellationToken cancel)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        var fields = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        for (int n = 0; n < 1000; n++)
        {
            var line = await reader.ReadLineAsync(timeout.Token) ?? throw new UserFacingException("control socket: the request ended early");
            if (line.Length == 0) break;
            int sp = line.IndexOf(' ');
            var (key, value) = sp < 0 ? (line, "") : (line[..sp], line[(sp + 1)..]);
            if (!fields.TryGetValue(key, out var list)) fields[key] = list = [];
            list.Add(value);
        }
        return fields;
    }

    private static string One(Dictionary<string, List<string>> fields, string key) =>
        fields.TryGetValue(key, out var v) && v.Count == 1 ? v[0] : throw new UserFacingException($"control socket: the request lacks '{key}'");

    private static UpdateHandover UpdateRequest(Dictionary<string, List<string>> fields)
    {
        string? Opt(string key) => fields.TryGetValue(key, out var v) && v[0].Length > 0 ? v[0] : null;
        if (!Enum.TryParse<BuildKind>(One(fields, "kind"), out var kind)) throw new UserFacingException($"control socket: unknown build kind '{One(fields, "kind")}'");
        var layout = new BuildLayout(kind, One(fields, "build-dir"), One(fields, "machine"), Opt("deploy-dir"), Opt("platform-dir"));
        return new UpdateHandover(layout, One(fields, "image"), One(fields, "export"), fields.GetValueOrDefault("install") ?? [], fields.ContainsKey("no-feeds"));
    }

    /// <summary>
    /// Hands the update to the serve listening on this state's control socket and copies its output to ours.
    /// Null when no serve listens (then the caller updates by itself, taking the lock as usual).
    /// </summary>
    public static UpdateOutcome? TryHandOver(PseudoState state, UpdateHandover request, TextWriter output) =>
        TryHandOver(state, RequestLines(request), $"Export: {request.Export} is being served: the serving process applies the update",
            "the update", "rootfs-export update", output);

    /// <summary>
    /// Hands `board commit` or `board reset` to the serve of this export, which holds the export and may hold the
    /// board: it acts between two 9P requests when the board has nothing attached. Null when no serve listens.
    /// </summary>
    public static UpdateOutcome? TryHandOverBoard(PseudoState state, BoardHandover request, TextWriter output)
    {
        if ((request.Export + request.Board).Contains('\n')) throw new UserFacingException($"'{request.Export}' or '{request.Board}' contains a newline");
        return TryHandOver(state, [$"command board-{request.Action}", $"export {request.Export}", $"board {request.Board}"],
            $"Export: {request.Export} is being served: the serving process does the {request.Action} of board {request.Board}",
            $"the {request.Action}", $"rootfs-export board {request.Action} {request.Export} {request.Board}", output);
    }

    private static UpdateOutcome? TryHandOver(PseudoState state, IEnumerable<string> request, string announce, string what, string again, TextWriter output)
    {
        using var socket = ConnectToServe(state) ?? WaitForStartingServe(state);
        if (socket == null) return null;
        using var stream = new NetworkStream(socket, ownsSocket: false);
        using (var writer = new StreamWriter(stream, new UTF8Encoding(false), leaveOpen: true) { NewLine = "\n" })
        {
            foreach (var line in request) writer.WriteLine(line);
            writer.WriteLine();
        }
        output.WriteLine(announce);
        using var reader = new StreamReader(stream, Encoding.UTF8);
        while (reader.ReadLine() is { } line)
        {
            if (line.StartsWith("out rootfs-export: error: ", StringComparison.Ordinal)) Console.Error.WriteLine(line[4..]); // the serve refused: an error here too
            else if (line.StartsWith("out ", StringComparison.Ordinal)) output.WriteLine(line[4..]);
            else if (line.Split(' ') is ["exit", var rc, var notReady] && int.TryParse(rc, out var code) && int.TryParse(notReady, out var n))
                return new UpdateOutcome(code, n);
        }
        throw new UserFacingException($"the serving process closed its control socket ({socket.RemoteEndPoint}) before {what} finished; run '{again}' again");
    }

    /// <summary>How long `update` waits for a serve that holds the lock to open its control socket.</summary>
    public static readonly TimeSpan StartingServeWait = TimeSpan.FromSeconds(10);

    /// <summary>
    /// A serve (or dev) takes the export's lock first and opens its control socket a moment later (after loading
    /// files.db). An update in between would get "lock held": while the holder is a serving rootfs-export, wait
    /// (bounded) for its socket. Null when the holder is something else, lets go of the lock, or the wait ends.
    /// </summary>
    private static Socket? WaitForStartingServe(PseudoState state)
    {
        var deadline = Environment.TickCount64 + (long)StartingServeWait.TotalMilliseconds;
        while (state.LiveServerPid() is int pid && IsServingRootfsExport(pid) && Environment.TickCount64 < deadline)
        {
            Thread.Sleep(50);
            if (ConnectToServe(state) is { } socket) return socket;
        }
        return null;
    }

    /// <summary>Whether the process runs `rootfs-export serve` or `dev` (the native program or the .dll under dotnet).</summary>
    internal static bool IsServingRootfsExport(int pid)
    {
        string[] args;
        try { args = File.ReadAllText($"/proc/{pid}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return false; }
        int tool = Array.FindIndex(args, a => Path.GetFileName(a) is "rootfs-export" or "rootfs-export.dll");
        return tool >= 0 && tool + 1 < args.Length && args[tool + 1] is "serve" or "dev";
    }

    /// <summary>A connection to the serve listening at one of this state's socket paths; null when none listens.</summary>
    private static Socket? ConnectToServe(PseudoState state)
    {
        foreach (var path in SocketPaths(state).Where(File.Exists))
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            try { socket.Connect(new UnixDomainSocketEndPoint(path)); return socket; }
            catch (SocketException) { socket.Dispose(); } // a socket file a killed serve left behind
        }
        return null;
    }

    private static IEnumerable<string> RequestLines(UpdateHandover r)
    {
        foreach (var value in new[] { r.Layout.BuildDir, r.Layout.Machine, r.Layout.DeployDir, r.Layout.PlatformDir, r.Image, r.Export }.Concat(r.Install))
            if (value != null && value.Contains('\n')) throw new UserFacingException($"'{value}' contains a newline");
        yield return "command update";
        yield return $"kind {r.Layout.Kind}";
        yield return $"build-dir {r.Layout.BuildDir}";
        yield return $"machine {r.Layout.Machine}";
        yield return $"deploy-dir {r.Layout.DeployDir}";
        yield return $"platform-dir {r.Layout.PlatformDir}";
        yield return $"image {r.Image}";
        yield return $"export {r.Export}";
        foreach (var p in r.Install) yield return $"install {p}";
        if (r.NoFeeds) yield return "no-feeds";
    }

    /// <summary>
    /// Sends each line of what the update (or commit) prints as "out LINE", and shows it on the serving process's console. A
    /// client that went away (Ctrl-C on `update`) must not stop the update half-way: its lines are then dropped.
    /// </summary>
    private sealed class ReplyWriter(StreamWriter socket) : TextWriter
    {
        private readonly StringBuilder _line = new();
        private bool _gone;
        public override Encoding Encoding => Encoding.UTF8;

        /// <summary>What the serving process's console shows before each line ("update", "board commit").</summary>
        public string Prefix { get; set; } = "update";

        public override void Write(char value)
        {
            if (value != '\n')
            {
                _line.Append(value);
                return;
            }
            var text = _line.ToString();
            _line.Clear();
            Console.WriteLine($"{Prefix}: {text}");
            if (_gone) return;
            try { socket.WriteLine("out " + text); }
            catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException) { _gone = true; }
        }

        public override void Flush()
        {
            if (_line.Length > 0) Write('\n');
        }
    }
}

/// <summary>`board commit|reset EXPORT BOARD` handed to the serve of that export; Action is "commit" or "reset".</summary>
public sealed record BoardHandover(string Action, string Export, string Board);
