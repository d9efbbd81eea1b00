namespace RootfsExport.Usb9pBridge;

/// <summary>
/// Keeps every matching usb9pfs gadget served: looks for gadgets until stopped, opens each one that appears,
/// runs a session on it (our 9P server, or the forwarder), and when the gadget goes (board reboot, cable,
/// UDC unbound) waits for it to come back. Several gadgets are served at once, one session each. Trouble with
/// one gadget (no permission, claimed elsewhere) is reported once and retried; it never stops the others.
/// </summary>
public sealed class GadgetSupervisor(GadgetFilter filter, Func<UsbgTransport, CancellationToken, Task> session, Action<string> log)
{
    /// <summary>How often the USB device list in sysfs is looked at for gadgets that appeared or went.</summary>
    public TimeSpan ScanInterval { get; init; } = TimeSpan.FromMilliseconds(300);

    /// <summary>A gadget we could not open (no permission yet, claimed elsewhere) is tried again this often.</summary>
    public TimeSpan RetryInterval { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>A full libusb scan also runs this often when sysfs showed no change (sysfs missing, say).</summary>
    public TimeSpan FullScanInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>Where the kernel lists USB devices and interfaces; a change of its entries means a gadget came or went.</summary>
    public string SysfsDevices { get; init; } = "/sys/bus/usb/devices";

    /// <summary>Where libusb finds the device nodes, one directory per bus, one node per address.</summary>
    public string UsbfsRoot { get; init; } = "/dev/bus/usb";

    /// <summary>Runs until the token fires; then lets the running sessions finish and returns.</summary>
    /// <remarks>
    /// The scan loop sleeps on a thread of its own rather than awaiting timers: the sessions do blocking
    /// transfers on their own threads too, so while a board is served nothing wakes the thread pool, whose idle
    /// workers spin (sched_yield) after each wake, taking CPU from the transfers on a small machine.
    /// </remarks>
    public Task RunAsync(CancellationToken ct) =>
        Task.Factory.StartNew(() => Run(ct), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    // the scan loop's state (one RunAsync per supervisor): sessions by gadget path, the last problem told per path
    // (so a retry loop does not flood the log), and what the last scan saw
    private readonly Dictionary<string, (Usb9pfsGadget Gadget, Task<long> Session)> _running = new();
    private readonly ReopenBackoff _backoff = new();
    private readonly Dictionary<string, string> _reported = new();
    private bool _toldWaiting;
    private string? _lastDevices;
    private long _lastScan;

    private void Run(CancellationToken ct)
    {
        try
        {
            while (!ct.IsCancellationRequested)
            {
                long now = Environment.TickCount64;
                bool ended = ReapEnded(now);
                // A libusb scan opens and reads every device's sysfs files: dozens of system calls per device,
                // every ScanInterval, beside the sessions being served. Scan only when something can have changed.
                var devices = DeviceList();
                bool due = _lastDevices is null || devices != _lastDevices || ended || _backoff.AnyDue(now)
                    || (_reported.Count > 0 && now - _lastScan >= RetryInterval.TotalMilliseconds)
                    || now - _lastScan >= FullScanInterval.TotalMilliseconds;
                if (due)
                {
                    _lastDevices = devices;
                    _lastScan = now;
                    OpenAppeared(now, ct);
                }
                ct.WaitHandle.WaitOne(ScanInterval);
            }
        }
        finally
        {
            Task.WhenAll(_running.Values.Select(r => r.Session)).GetAwaiter().GetResult();
        }
    }

    /// <summary>Forgets the sessions that ended; true when there were any.</summary>
    private bool ReapEnded(long now)
    {
        bool ended = false;
        foreach (var (path, (gadget, session)) in _running.Where(kv => kv.Value.Session.IsCompleted).ToList())
        {
            _running.Remove(path);
            _reported.Remove(path);
            _backoff.Ended(gadget, session.Result, now);
            ended = true;
        }
        return ended;
    }

    /// <summary>A libusb scan: starts a session on each matching gadget not yet served (unless it is backing off).</summary>
    private void OpenAppeared(long now, CancellationToken ct)
    {
        IReadOnlyList<Usb9pfsGadget> gadgets;
        using (var host = UsbHost.Create()) gadgets = host.FindGadgets(filter);
        if (gadgets.Count == 0 && _running.Count == 0 && !_toldWaiting)
        {
            log($"waiting for a usb9pfs gadget ({filter}); the board's UDC must be bound before it mounts");
            _toldWaiting = true;
        }
        foreach (var gone in _reported.Keys.Where(p => gadgets.All(g => g.Path != p)).ToList()) _reported.Remove(gone);
        _backoff.Forget(_backoff.Paths.Where(p => gadgets.All(g => g.Path != p)));
        foreach (var g in gadgets.Where(g => !_running.ContainsKey(g.Path) && _backoff.MayOpen(g, now)))
        {
            UsbgLink link;
            try { link = UsbgLink.Open(g); }
            catch (UsbAccessDeniedException e) { Report(g.Path, e.Hint); continue; }
            catch (UsbException e) { Report(g.Path, $"{g.Path}: {e.Message}; retrying"); continue; }
            _toldWaiting = false;
            _reported.Remove(g.Path);
            _running[g.Path] = (g, Serve(link, _backoff.Loud(g), _backoff.FirstEmpty(g), ct));
            _backoff.Opened(g);
        }
    }

    // the sysfs names stay the same when a board re-enumerates on the same port; its usbfs node (the address)
    // does not, and a paused gadget at a new address must be opened at once
    private string DeviceList() => Entries(SysfsDevices) + "\n" + string.Join('\n', Entries(UsbfsRoot).Split('\n').Select(Entries));

    private static string Entries(string dir)
    {
        try { return dir.Length == 0 ? "" : string.Join('\n', Directory.GetFileSystemEntries(dir).Order(StringComparer.Ordinal)); }
        catch (IOException) { return ""; }
        catch (UnauthorizedAccessException) { return ""; }
    }

    private void Report(string path, string problem)
    {
        if (_reported.TryGetValue(path, out var last) && last == problem) return;
        _reported[path] = problem;
        log(problem);
    }

    /// <param name="loud">log the attach and detach (not on a quiet retry of a gadget whose endpoints answered nothing)</param>
    /// <param name="retrying">the last session at this address served nothing: say so if this one does too</param>
    /// <returns>the number of requests served</returns>
    private async Task<long> Serve(UsbgLink link, bool loud, bool retrying, CancellationToken ct)
    {
        var g = link.Gadget;
        if (loud) log($"attached {g}: IN 0x{g.EndpointIn:x2} OUT 0x{g.EndpointOut:x2}, {g.MaxPacketSizeIn}-byte packets");
        var transport = new UsbgTransport(link, link);
        string why = "stopped";
        try
        {
            await using (transport) await session(transport, ct);
        }
        catch (UsbException e) when (e.DeviceGone) { why = "gone"; }
        catch (Exception e) when (e is IOException or InvalidDataException) { why = e.Message; }
        catch (OperationCanceledException) { }
        if (!ct.IsCancellationRequested && why == "stopped") why = "gone";
        if (loud || transport.Requests > 0)
            log($"detached {g.Path} ({why}) after {transport.Requests} requests, {transport.BytesIn} bytes in, {transport.BytesOut} bytes out"
                + (ct.IsCancellationRequested ? "" : "; waiting for it to come back"));
        if (retrying && transport.Requests == 0 && !ct.IsCancellationRequested)
            log($"{g.Path}: its endpoints answer nothing (a board on Linux ≥ 6.12.118 that unmounted keeps them disabled until it re-enumerates); " +
                "trying again every few seconds without logging until it does");
        return transport.Requests;
    }
}
