using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using RootfsExport.ExportTree.Build;

namespace RootfsExport.FeedWatcher;

/// <summary>
/// Keeps an export current while the developer builds: inotify (FileSystemWatcher) on the feed and image
/// directories, debounced so a bitbake run's burst of files gives one refresh; a half-written package makes
/// the refresh retry; and a unix socket on which the bitbake class (or anyone) says "build-done".
/// </summary>
public sealed class FeedWatch
{
    /// <summary>What a client sends; the reply is "ok\n".</summary>
    public const string BuildDoneMessage = "build-done";

    // sstate hard-links a recipe's packages into the feed (cp -afl), so each appears whole and a recipe's burst
    // lasts milliseconds; 30 ms of quiet ends it. A refresh that lands mid-burst is harmless (the next one applies
    // the rest), and a package still being copied in place (cp -a across file systems) does not parse and is
    // retried as "not ready", never applied half-written: the quiet time only saves work (docs/FEEDS.md).
    public static readonly TimeSpan Quiet = TimeSpan.FromSeconds(0.03);

    /// <summary>A burst that never goes quiet (a long copy, a build writing steadily) still gets a refresh this often.</summary>
    public static readonly TimeSpan MaxBurst = TimeSpan.FromSeconds(3);

    /// <summary>When a package was still being written: look again after this long even without new events.</summary>
    public static readonly TimeSpan NotReadyRetry = TimeSpan.FromSeconds(0.5);

    private readonly BuildLayout _layout;
    private readonly string _image;
    private readonly Func<CancellationToken, Task<bool>> _refresh;
    private readonly TextWriter _log;
    private readonly SemaphoreSlim _wake = new(0);
    private DateTime? _firstEvent;
    // what woke the refresh: every distinct trigger of the debounce window, so a build-done message that
    // arrives together with a file event is still named; a burst of hundreds of packages is counted, not listed
    private readonly List<string> _reasons = [];
    private readonly HashSet<string> _moreReasons = [];
    private const int ReasonsNamed = 3;
    private readonly object _gate = new();

    /// <param name="refresh">one refresh; returns false when it should be retried (packages still being written)</param>
    public FeedWatch(BuildLayout layout, string image, Func<CancellationToken, Task<bool>> refresh, TextWriter log)
    {
        _layout = layout;
        _image = image;
        _refresh = refresh;
        _log = log;
    }

    /// <summary>&lt;build&gt;/.rootfs-export/&lt;image&gt;.sock: one per image, all found by globbing the directory.</summary>
    public static string SocketPath(BuildLayout layout, string image) => Path.Combine(layout.BuildDir, ".rootfs-export", image + ".sock");

    /// <summary>
    /// On a fresh build directory there is no image yet (`watch` first, then bitbake): wait until one is
    /// deployed. Polled: inotify on the build directory would see every file bitbake writes. False: stopped.
    /// </summary>
    public static async Task<bool> WaitForImage(BuildLayout layout, string image, TextWriter log, CancellationToken cancel)
    {
        for (bool told = false; ; told = true)
        {
            try
            {
                layout.FindImageTarball(image);
                if (told) log.WriteLine("image found");
                return true;
            }
            catch (UserFacingException e) when (!told)
            {
                log.WriteLine($"waiting for the image: {e.Message}");
                log.Flush();
            }
            catch (UserFacingException) { }
            try { await Task.Delay(NotReadyRetry, cancel); }
            catch (OperationCanceledException) { return false; }
        }
    }

    public IEnumerable<string> WatchedDirectories()
    {
        if (_layout.Kind == BuildKind.Ptxdist)
            foreach (var (_, dir) in FeedScanner.FeedDirs(_layout)) yield return dir;
        else
            foreach (var kind in new[] { "ipk", "deb", "rpm" })
            {
                // the feed roots, recursively: new arch directories appear while bitbake runs
                var root = Path.Combine(_layout.DeployDir!, kind);
                if (Directory.Exists(root)) yield return root;
            }
        if (Directory.Exists(_layout.ImageDir)) yield return _layout.ImageDir;
    }

    private void Poke(string reason)
    {
        lock (_gate)
        {
            _firstEvent ??= DateTime.UtcNow;
            if (!_reasons.Contains(reason))
            {
                // a build-done message is always named: it is what the build (or a test) waits to see acted on
                if (_reasons.Count < ReasonsNamed || reason.StartsWith("socket:", StringComparison.Ordinal)) _reasons.Add(reason);
                else _moreReasons.Add(reason);
            }
        }
        _wake.Release();
    }

    public async Task RunAsync(CancellationToken cancel)
    {
        var watchers = StartWatchers();
        var socketPath = SocketPath(_layout, _image);
        using var listener = Listen(socketPath);
        var accept = AcceptLoop(listener, cancel);
        try
        {
            while (!cancel.IsCancellationRequested)
            {
                await _wake.WaitAsync(cancel);
                // debounce: wait until the burst has been quiet for a while
                var burst = Stopwatch.StartNew();
                while (burst.Elapsed < MaxBurst && await _wake.WaitAsync(Quiet, cancel)) { }
                if (!await RefreshOnce(cancel)) { await Task.Delay(NotReadyRetry, cancel); Poke("retry: packages were still being written"); }
            }
        }
        catch (OperationCanceledException) { }
        finally
        {
            foreach (var w in watchers) w.Dispose();
            listener.Close();
            try { File.Delete(socketPath); } catch (IOException) { }
            try { await accept; } catch (Exception) { }
        }
    }

    private List<FileSystemWatcher> StartWatchers()
    {
        var watchers = new List<FileSystemWatcher>();
        foreach (var dir in WatchedDirectories().Distinct())
        {
            var w = new FileSystemWatcher(dir) { IncludeSubdirectories = true, NotifyFilter = NotifyFilters.FileName | NotifyFilters.LastWrite | NotifyFilters.Size | NotifyFilters.DirectoryName };
            w.Created += (_, e) => Poke($"{e.Name} created");
            w.Changed += (_, e) => Poke($"{e.Name} changed");
            w.Renamed += (_, e) => Poke($"{e.Name} renamed");
            w.Deleted += (_, e) => Poke($"{e.Name} deleted");
            w.EnableRaisingEvents = true;
            watchers.Add(w);
            _log.WriteLine($"watching {dir}");
        }
        return watchers;
    }

    /// <summary>The build's socket: a build (or a test) says "build-done" there.</summary>
    private Socket Listen(string socketPath)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(socketPath)!);
        if (File.Exists(socketPath)) File.Delete(socketPath); // left by a killed watch; a live one would hold the export lock in refresh
        var listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        listener.Listen(8);
        _log.WriteLine($"listening on {socketPath} (send \"{BuildDoneMessage}\\n\", reply \"ok\\n\")");
        _log.Flush();
        return listener;
    }

    /// <summary>One refresh for the events gathered so far; false when packages were still being written.</summary>
    private async Task<bool> RefreshOnce(CancellationToken cancel)
    {
        DateTime started;
        string reason;
        lock (_gate)
        {
            started = _firstEvent ?? DateTime.UtcNow;
            reason = string.Join("; ", _reasons) + (_moreReasons.Count > 0 ? $"; {_moreReasons.Count} more" : "");
            _firstEvent = null;
            _reasons.Clear();
            _moreReasons.Clear();
        }
        var clock = Stopwatch.StartNew();
        bool done;
        try
        {
            done = await _refresh(cancel);
        }
        catch (UserFacingException e)
        {
            _log.WriteLine($"refresh failed: {e.Message}");
            done = true;
        }
        _log.WriteLine($"refresh ({reason}) took {clock.Elapsed.TotalSeconds:F2} s, {(DateTime.UtcNow - started).TotalSeconds:F2} s after the first change");
        _log.Flush();
        return done;
    }

    private async Task AcceptLoop(Socket listener, CancellationToken cancel)
    {
        while (!cancel.IsCancellationRequested)
        {
            Socket client;
            try { client = await listener.AcceptAsync(cancel); }
            catch (Exception) { return; }
            _ = Task.Run(async () =>
            {
                using (client)
                {
                    var buffer = new byte[512];
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancel);
                    timeout.CancelAfter(TimeSpan.FromSeconds(5));
                    try
                    {
                        int n = await client.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
                        var line = Encoding.UTF8.GetString(buffer, 0, n).Split('\n')[0].Trim();
                        if (line.StartsWith(BuildDoneMessage))
                        {
                            await client.SendAsync("ok\n"u8.ToArray(), SocketFlags.None, timeout.Token);
                            Poke($"socket: {line}");
                        }
                        else await client.SendAsync(Encoding.UTF8.GetBytes($"error: unknown message '{line}', expected '{BuildDoneMessage}'\n"), SocketFlags.None, timeout.Token);
                    }
                    catch (Exception) { }
                }
            }, cancel);
        }
    }
}
