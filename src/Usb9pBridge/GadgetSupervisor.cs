namespace RootfsExport.Usb9pBridge;

/// <summary>
/// Keeps every matching usb9pfs gadget served: looks for gadgets until stopped, opens each one that appears,
/// runs a session on it (our 9P server, or the forwarder), and when the gadget goes (board reboot, cable,
/// UDC unbound) waits for it to come back. Several gadgets are served at once, one session each. Trouble with
/// one gadget (no permission, claimed elsewhere) is reported once and retried; it never stops the others.
/// </summary>
public sealed class GadgetSupervisor(GadgetFilter filter, Func<UsbgTransport, CancellationToken, Task> session, Action<string> log)
{
    /// <summary>How often the bus is scanned for gadgets that appeared.</summary>
    public TimeSpan ScanInterval { get; init; } = TimeSpan.FromMilliseconds(300);

    /// <summary>Runs until the token fires; then lets the running sessions finish and returns.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        var running = new Dictionary<string, Task>();
        var reported = new Dictionary<string, string>(); // path → last problem told, so a retry loop does not flood the log
        bool toldWaiting = false;
        try
        {
            while (!ct.IsCancellationRequested)
            {
                foreach (var (path, task) in running.Where(kv => kv.Value.IsCompleted).ToList())
                {
                    running.Remove(path);
                    reported.Remove(path);
                }
                IReadOnlyList<Usb9pfsGadget> gadgets;
                using (var host = UsbHost.Create()) gadgets = host.FindGadgets(filter);
                if (gadgets.Count == 0 && running.Count == 0 && !toldWaiting)
                {
                    log($"waiting for a usb9pfs gadget ({filter}); the board's UDC must be bound before it mounts");
                    toldWaiting = true;
                }
                foreach (var g in gadgets.Where(g => !running.ContainsKey(g.Path)))
                {
                    UsbgLink link;
                    try { link = UsbgLink.Open(g); }
                    catch (UsbAccessDeniedException e) { Report(g.Path, e.Hint); continue; }
                    catch (UsbException e) { Report(g.Path, $"{g.Path}: {e.Message}; retrying"); continue; }
                    toldWaiting = false;
                    running[g.Path] = Task.Run(() => Serve(link, ct), CancellationToken.None);
                }
                try { await Task.Delay(ScanInterval, ct); }
                catch (OperationCanceledException) { break; }
            }
        }
        finally
        {
            await Task.WhenAll(running.Values);
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
