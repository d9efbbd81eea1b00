using System.Diagnostics;

namespace RootfsExport.ExportTree;

/// <summary>
/// Where an unpack's time goes, printed to stderr when ROOTFS_EXPORT_TRACE_UNPACK=1: tar parsing (with
/// the wait for decoded data), object creation on disk, files.db work. Off, it costs one branch a call.
/// </summary>
public static class UnpackPhases
{
    public static readonly bool On = Environment.GetEnvironmentVariable("ROOTFS_EXPORT_TRACE_UNPACK") == "1";

    /// <summary>A started measurement (0 when tracing is off).</summary>
    public static long Start() => On ? Stopwatch.GetTimestamp() : 0;

    /// <summary>Adds the time since <paramref name="started"/> to a phase total.</summary>
    public static void Stop(ref long total, long started)
    {
        if (On) Interlocked.Add(ref total, Stopwatch.GetTimestamp() - started);
    }

    public static long Parse, Create, Record, RecordWait, Contents;

    public static void Print(string what, TimeSpan elapsed, params (string Name, long Ticks)[] more)
    {
        if (!On) return;
        static string Ms(long ticks) => $"{Stopwatch.GetElapsedTime(0, ticks).TotalMilliseconds:F0} ms";
        var parts = new List<string> { $"total {elapsed.TotalMilliseconds:F0} ms", $"parse+wait {Ms(Parse)}", $"create {Ms(Create)}",
            $"files.db {Ms(Record)}", $"files.db wait {Ms(RecordWait)}", $"file contents thread {Ms(Contents)}" };
        parts.AddRange(more.Select(m => $"{m.Name} {Ms(m.Ticks)}"));
        Console.Error.WriteLine($"rootfs-export: {what}: {string.Join(", ", parts)}");
    }
}
