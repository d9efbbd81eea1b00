namespace RootfsExport.NineP.Server;

/// <summary>
/// With ROOTFS_EXPORT_TRACE_MEMORY=1 in the environment, a serving process writes one line a second to stderr
/// while its memory changes: RSS, the GC heap (live after the last GC, committed, fragmented), the last GC's
/// generation and the heap's generation sizes. For finding what holds memory without a diagnostic tool (the native
/// program has none); off otherwise.
/// </summary>
public static class MemoryTrace
{
    public const string Variable = "ROOTFS_EXPORT_TRACE_MEMORY";

    private static int _started;

    public static void StartIfAsked()
    {
        if (Environment.GetEnvironmentVariable(Variable) != "1" || Interlocked.Exchange(ref _started, 1) != 0) return;
        new Thread(Run) { IsBackground = true, Name = "memory trace" }.Start();
    }

    private static void Run()
    {
        string last = "";
        while (true)
        {
            var line = Line();
            if (line != last) Console.Error.WriteLine($"memory: {line}");
            last = line;
            Thread.Sleep(1000);
        }
    }

    private static string Line()
    {
        var gc = GC.GetGCMemoryInfo();
        var gens = string.Join('/', gc.GenerationInfo.ToArray().Select(g => Mb(g.SizeAfterBytes)));
        return $"rss {Mb(Environment.WorkingSet)} MB, heap {Mb(gc.HeapSizeBytes)} MB (promoted {Mb(gc.PromotedBytes)}, " +
            $"committed {Mb(gc.TotalCommittedBytes)}, fragmented {Mb(gc.FragmentedBytes)}), gen0/1/2/loh/poh after GC {gens} MB, " +
            $"GCs {GC.CollectionCount(0)}/{GC.CollectionCount(1)}/{GC.CollectionCount(2)}, last gen{gc.Generation}, " +
            $"allocated {Mb(GC.GetTotalAllocatedBytes())} MB";
    }

    private static long Mb(long bytes) => bytes >> 20;
}
