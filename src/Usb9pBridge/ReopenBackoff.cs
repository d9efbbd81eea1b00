namespace RootfsExport.Usb9pBridge;

/// <summary>
/// When to open a gadget again after a session on it ended without a single request. A board on Linux ≥ 6.12.118
/// that unmounted keeps its gadget enumerated at the same address with the endpoints disabled until it
/// re-enumerates (docs/USB9PFS.md): every transfer fails at once, so opening it on every scan would log an
/// attach and a detach about once a second for as long as the board stays unmounted. Instead the pause doubles
/// from <see cref="First"/> to <see cref="Max"/> (bounded: a board that comes back without re-enumerating is
/// served again within Max) and only the first empty session at an address is logged. A new address (the board
/// re-enumerated: the only way such a board can mount again) or a session that served requests starts over.
/// </summary>
public sealed class ReopenBackoff
{
    public TimeSpan First { get; init; } = TimeSpan.FromSeconds(1);
    public TimeSpan Max { get; init; } = TimeSpan.FromSeconds(8);

    private sealed record Pause(int Bus, int Address, int EmptySessions, long NotBefore, bool Waiting = true);
    private readonly Dictionary<string, Pause> _paused = new(StringComparer.Ordinal);

    /// <summary>A session on the gadget ended after this many requests, at time <paramref name="now"/> (ms).</summary>
    public void Ended(Usb9pfsGadget g, long requests, long now)
    {
        if (requests > 0 || Fresh(g)) _paused.Remove(g.Path);
        if (requests > 0) return;
        int empty = _paused.TryGetValue(g.Path, out var p) ? p.EmptySessions + 1 : 1;
        var pause = Math.Min(First.TotalMilliseconds * Math.Pow(2, Math.Min(empty - 1, 30)), Max.TotalMilliseconds);
        _paused[g.Path] = new Pause(g.Bus, g.Address, empty, now + (long)pause);
    }

    /// <summary>Whether the gadget found by a scan may be opened now.</summary>
    public bool MayOpen(Usb9pfsGadget g, long now) => Fresh(g) || now >= _paused[g.Path].NotBefore;

    /// <summary>The gadget is being opened again: its pause no longer makes a scan due.</summary>
    public void Opened(Usb9pfsGadget g)
    {
        if (!Fresh(g)) _paused[g.Path] = _paused[g.Path] with { Waiting = false };
    }

    /// <summary>Whether an attach or detach of this gadget is worth logging: not a quiet retry at the same address.</summary>
    public bool Loud(Usb9pfsGadget g) => Fresh(g) || _paused[g.Path].EmptySessions < 2;

    /// <summary>Whether this gadget just ended its first empty session at this address (the moment to say why it goes quiet).</summary>
    public bool FirstEmpty(Usb9pfsGadget g) => !Fresh(g) && _paused[g.Path].EmptySessions == 1;

    /// <summary>Whether a paused gadget's pause is over (a scan is due even if nothing changed in sysfs).</summary>
    public bool AnyDue(long now) => _paused.Values.Any(p => p.Waiting && now >= p.NotBefore);

    /// <summary>The scan no longer sees these gadgets: forget them (they come back at a new address).</summary>
    public void Forget(IEnumerable<string> paths)
    {
        foreach (var path in paths.ToList()) _paused.Remove(path);
    }

    public IEnumerable<string> Paths => _paused.Keys;

    private bool Fresh(Usb9pfsGadget g) => !_paused.TryGetValue(g.Path, out var p) || p.Bus != g.Bus || p.Address != g.Address;
}
