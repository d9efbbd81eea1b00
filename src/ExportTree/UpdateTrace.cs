using System.Diagnostics;

namespace RootfsExport.ExportTree;

/// <summary>
/// Where an update's time goes, printed to stderr when ROOTFS_EXPORT_TRACE_UPDATE=1: one line per step with the
/// milliseconds since the process started (from /proc/self/stat, so the runtime's own start-up shows as the
/// first step) and since the step before. Off, a step costs one branch.
/// </summary>
public static class UpdateTrace
{
    public static readonly bool On = Environment.GetEnvironmentVariable("ROOTFS_EXPORT_TRACE_UPDATE") == "1";
    private static readonly double StartedMs = On ? ProcessAgeMs() : 0;
    private static readonly long Origin = Stopwatch.GetTimestamp();
    private static double _lastMs = StartedMs;

    /// <summary>Marks the end of a step.</summary>
    public static void Step(string name)
    {
        if (!On) return;
        var ms = StartedMs + Stopwatch.GetElapsedTime(Origin).TotalMilliseconds;
        lock (typeof(UpdateTrace))
        {
            Console.Error.WriteLine($"update trace: {ms,7:F1} ms  +{ms - _lastMs,6:F1} ms  {name}");
            _lastMs = ms;
        }
    }

    /// <summary>How long ago the process was started (exec'd), in ms: /proc/self/stat's start time against /proc/uptime.</summary>
    private static double ProcessAgeMs()
    {
        try
        {
            var stat = File.ReadAllText("/proc/self/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            double startTicks = double.Parse(fields[19], System.Globalization.CultureInfo.InvariantCulture); // field 22: starttime
            double uptime = double.Parse(File.ReadAllText("/proc/uptime").Split(' ')[0], System.Globalization.CultureInfo.InvariantCulture);
            return Math.Max(0, uptime * 1000 - startTicks * 10); // clock ticks are 10 ms (USER_HZ 100)
        }
        catch (Exception e) when (e is IOException or FormatException or IndexOutOfRangeException)
        {
            return 0;
        }
    }
}
