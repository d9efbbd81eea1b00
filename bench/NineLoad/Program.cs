using System.Net;
using RootfsExport.NineLoad;

const string Usage = """
    nineload: a pipelining 9P2000.L load generator over TCP (works against diod and rootfs-export serve)
      nineload --server HOST:PORT --aname EXPORT walk  [--connections N] [--depth D]
      nineload --server HOST:PORT --aname EXPORT read PATH [--passes P] [--connections N] [--depth D]
      nineload --server HOST:PORT --aname EXPORT write [--dir DIR] [--files K] [--size B] [--keep] [--connections N] [--depth D]
      nineload --server HOST:PORT --aname EXPORT readall [--connections N] [--depth D]   (walk, and read every file once)
      nineload --server HOST:PORT --aname EXPORT touch [--every K] --uid 0   (set the mtime of every K-th file by inode)
      nineload record --listen HOST:PORT --server HOST:PORT --out FILE    (proxies one serial client's run, saving it)
      nineload replay --listen HOST:PORT --in FILE [--connections N]       (answers N such runs from FILE, no work done)
      nineload usb-replay --in FILE                                        (answers a recorded run on a usb9pfs gadget)
    common: --msize M (asked for; default 1048600 = 1 MiB + 24), --uid U --gid G (attach n_uname and the gid of
      new files; default: ours), --timeout S (whole run, default 300), --reply-timeout S (default 30)
    depth = requests in flight per connection (default: walk 32, read 4, write 32)
    Prints one line: items (entries, reads or files), requests, bytes, seconds, items/s, requests/s, MB/s.
    """;

var opts = new Dictionary<string, string>();
var positional = new List<string>();
var flags = new HashSet<string> { "--keep" };
for (int i = 0; i < args.Length; i++)
{
    if (args[i] is "-h" or "--help") { Console.WriteLine(Usage); return 0; }
    if (flags.Contains(args[i])) opts[args[i]] = "1";
    else if (args[i].StartsWith("--", StringComparison.Ordinal))
    {
        if (i + 1 >= args.Length) return Fail($"{args[i]} needs a value");
        opts[args[i]] = args[++i];
    }
    else positional.Add(args[i]);
}
if (positional is ["usb-replay"])
{
    if (!opts.TryGetValue("--in", out var recorded)) return Fail("usb-replay needs --in FILE");
    try { return UsbReplay.Serve(recorded, TimeSpan.FromSeconds(opts.TryGetValue("--timeout", out var w) ? int.Parse(w) : 600)); }
    catch (Exception e) when (e is IOException or InvalidDataException) { return Fail(e.Message); }
}
if (positional is ["record" or "replay"])
{
    var wait = TimeSpan.FromSeconds(opts.TryGetValue("--timeout", out var w) ? int.Parse(w) : 300);
    if (!opts.TryGetValue("--listen", out var listenText) || !IPEndPoint.TryParse(listenText, out var listen))
        return Fail("record and replay need --listen HOST:PORT");
    try
    {
        if (positional[0] == "replay")
            return opts.TryGetValue("--in", out var input) ? Replay.Serve(listen, input, opts.TryGetValue("--connections", out var c) ? int.Parse(c) : 1, wait)
                : Fail("replay needs --in FILE");
        if (!opts.TryGetValue("--server", out var upText) || !IPEndPoint.TryParse(upText, out var up) || !opts.TryGetValue("--out", out var output))
            return Fail("record needs --server HOST:PORT and --out FILE");
        return Replay.Record(listen, up, output, wait);
    }
    catch (Exception e) when (e is IOException or InvalidDataException or TimeoutException or System.Net.Sockets.SocketException)
    {
        return Fail(e.Message);
    }
}
if (positional.Count == 0 || !opts.TryGetValue("--server", out var serverText) || !opts.TryGetValue("--aname", out var aname))
    return Fail("need --server, --aname and a mode (walk, read PATH, write)");
if (!IPEndPoint.TryParse(serverText, out var server) || server.Port == 0) return Fail($"bad --server '{serverText}': expected HOST:PORT");
string mode = positional[0];
int Int(string name, int dflt) => opts.TryGetValue(name, out var v) ? int.Parse(v) : dflt;

var options = new LoadOptions
{
    Server = server,
    Aname = aname,
    Connections = Int("--connections", 1),
    Depth = Int("--depth", mode == "read" ? 4 : 32),
    Msize = (uint)Int("--msize", 1024 * 1024 + 24),
    ReplyTimeout = TimeSpan.FromSeconds(Int("--reply-timeout", 30)),
};
if (opts.ContainsKey("--uid")) options = options with { Uid = (uint)Int("--uid", 0) };
if (opts.ContainsKey("--gid")) options = options with { Gid = (uint)Int("--gid", 0) };
var limit = TimeSpan.FromSeconds(Int("--timeout", 300));
using var cts = new CancellationTokenSource(limit);
// the hard stop, should a server hang in a way no socket notices
using var hardStop = new Timer(_ => { Console.Error.WriteLine($"nineload: gave up after {limit.TotalSeconds + 10:0} s"); Environment.Exit(3); },
    null, limit + TimeSpan.FromSeconds(10), Timeout.InfiniteTimeSpan);
try
{
    var result = mode switch
    {
        "walk" => await Workloads.WalkAsync(options, cts.Token),
        "read" when positional.Count == 2 => await Workloads.ReadAsync(options, positional[1], Int("--passes", 1), cts.Token),
        "write" => await Workloads.WriteAsync(options, opts.GetValueOrDefault("--dir", "/"), Int("--files", 5000), Int("--size", 1024),
            opts.ContainsKey("--keep"), cts.Token),
        "readall" => await Workloads.ReadAllAsync(options, cts.Token),
        "touch" => await Workloads.TouchAsync(options, Int("--every", 20), cts.Token),
        _ => null,
    };
    if (result is null) return Fail($"unknown mode '{string.Join(' ', positional)}'");
    Console.WriteLine(result);
    return 0;
}
catch (OperationCanceledException) when (cts.IsCancellationRequested)
{
    return Fail($"time limit of {limit.TotalSeconds:0} s reached");
}
catch (Exception e) when (e is NineError or IOException or InvalidDataException or TimeoutException or System.Net.Sockets.SocketException)
{
    return Fail(e.Message);
}

static int Fail(string message)
{
    Console.Error.WriteLine($"nineload: {message}");
    return 2;
}
