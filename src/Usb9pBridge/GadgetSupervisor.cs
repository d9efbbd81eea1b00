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

    /// <summary>Runs until the token fires; then lets the running sessions finish and returns.</summary>
    /// <remarks>
    /// The scan loop sleeps on a thread of its own rather than awaiting timers: the sessions do blocking
    /// transfers on their own threads too, so while a board is served nothing wakes the thread pool, whose idle
    /// workers spin (sched_yield) after each wake, taking CPU from the transfers on a small machine.
    /// </remarks>
    public Task RunAsync(CancellationToken ct) =>
        Task.Factory.StartNew(() => Run(ct), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);

    private void Run(CancellationToken ct)
    {
        var running = new Dictionary<string, Task>();
        var reported = new Dictionary<string, string>(); // path → last problem told, so a retry loop does not flood the log
        bool toldWaiting = false;
        string? lastDevices = null;
        long lastScan = 0;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                bool ended = false;
                foreach (var (path, task) in running.Where(kv => kv.Value.IsCompleted).ToList())
                {
                    running.Remove(path);
                    reported.Remove(path);
                    ended = true;
                }
                // A libusb scan opens and reads every device's sysfs files: dozens of system calls per device,
                // every ScanInterval, beside the sessions being served. Scan only when something can have changed.
                var devices = DeviceList();
                long now = Environment.TickCount64;
                bool due = lastDevices is null || devices != lastDevices || ended
                    || (reported.Count > 0 && now - lastScan >= RetryInterval.TotalMilliseconds)
                    || now - lastScan >= FullScanInterval.TotalMilliseconds;
                if (due)
                {
                    lastDevices = devices;
                    lastScan = now;
                    IReadOnlyList<Usb9pfsGadget> gadgets;
                    using (var host = UsbHost.Create()) gadgets = host.FindGadgets(filter);
                    if (gadgets.Count == 0 && running.Count == 0 && !toldWaiting)
                    {
                        log($"waiting for a usb9pfs gadget ({filter}); the board's UDC must be bound before it mounts");
                        toldWaiting = true;
                    }
                    foreach (var gone in reported.Keys.Where(p => gadgets.All(g => g.Path != p)).ToList()) reported.Remove(gone);
                    foreach (var g in gadgets.Where(g => !running.ContainsKey(g.Path)))
                    {
                        UsbgLink link;
                        try { link = UsbgLink.Open(g); }
                        catch (UsbAccessDeniedException e) { Report(g.Path, e.Hint); continue; }
                        catch (UsbException e) { Report(g.Path, $"{g.Path}: {e.Message}; retrying"); continue; }
                        toldWaiting = false;
                        reported.Remove(g.Path);
                        running[g.Path] = Serve(link, ct);
                    }
                }
                ct.WaitHandle.WaitOne(ScanInterval);
            }
        }
        finally
        {
            Task.WhenAll(running.Values).GetAwaiter().GetResult();
        }

        string DeviceList()
        {
            try { return string.Join('\n', Directory.GetFileSystemEntries(SysfsDevices).Order(StringComparer.Ordinal)); }
            catch (IOException) { return ""; }
            catch (UnauthorizedAccessException) { return ""; }
        }

        void Report(string path, string problem)
        {
            if (reported.TryGetValue(path, out var last) && last == problem) return;
            reported[path] = problem;
            log(problem);
        }
    }

    private async Task Serve(UsbgLink link, CancellationToken ct)
    {
        var g = link.Gadget;
        log($"attached {g}: IN 0x{g.EndpointIn:x2} OUT 0x{g.EndpointOut:x2}, {g.MaxPacketSizeIn}-byte packets");
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
        log($"detached {g.Path} ({why}) after {transport.Requests} requests, {transport.BytesIn} bytes in, {transport.BytesOut} bytes out"
            + (ct.IsCancellationRequested ? "" : "; waiting for it to come back"));
    }
}
