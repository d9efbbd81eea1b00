using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Tests;

/// <summary>Unpack streams: peak memory does not grow with the archive.</summary>
public sealed class MemoryTests
{
    private static long PeakRssKb(ScratchDir dir, string tar)
    {
        var export = dir["export-" + Path.GetFileNameWithoutExtension(tar)];
        var r = Run.Program("/usr/bin/time", ["-f", "maxrss=%M", "dotnet", ToolCopy.Dll, "unpack", tar, export], asUnprivileged: true).ShouldSucceed();
        var line = r.Stderr.Split('\n').Last(l => l.StartsWith("maxrss="));
        return long.Parse(line["maxrss=".Length..]);
    }

    private static string MakeArchive(ScratchDir dir, string name, int files, int fileSize)
    {
        var tar = dir[name];
        Run.Program("python3", "-c", $$"""
            import tarfile, io, os
            t = tarfile.open('{{tar}}', 'w:gz', format=tarfile.PAX_FORMAT, compresslevel=1)
            blob = os.urandom({{fileSize}})
            for i in range({{files}}):
                info = tarfile.TarInfo(f'usr/lib/f{i:06d}'); info.size = len(blob); info.uid = 0; info.gid = 0
                t.addfile(info, io.BytesIO(blob))
            t.close()
            """).ShouldSucceed();
        Run.Program("chmod", "a+r", tar).ShouldSucceed();
        return tar;
    }

    [Fact]
    public void Peak_memory_is_flat_from_a_small_to_a_ten_times_larger_archive()
    {
        using var dir = new ScratchDir();
        var small = MakeArchive(dir, "small.tar.gz", 2000, 20_000);   // 40 MB
        var large = MakeArchive(dir, "large.tar.gz", 20000, 20_000);  // 400 MB, 10x the entries
        long smallKb = PeakRssKb(dir, small);
        long largeKb = PeakRssKb(dir, large);
        // a runtime with its JIT and SQLite is ~100 MB; ten times the archive may add a little cache, not 10x
        Assert.True(largeKb < smallKb * 1.5 + 20_000, $"peak RSS grew from {smallKb} kB to {largeKb} kB");
    }
}
