namespace RootfsExport.NineP.Server;

/// <summary>
/// Ticks after every request that may have changed the export (on any connection of any server in this
/// process) and after every host-side change run through <see cref="RequestGate.Exclusive{T}"/>. A file system
/// may answer a request from what it saw for an earlier one only while the clock has not moved since it
/// looked: then nothing served here changed the export in between.
/// </summary>
public static class ChangeClock
{
    private static long _ticks;

    /// <summary>Read before looking at the export: a change that completes after this moves the clock.</summary>
    public static long Now => Volatile.Read(ref _ticks);

    /// <summary>Called once a change is complete (or failed part-way).</summary>
    public static void Tick() => Interlocked.Increment(ref _ticks);
}
