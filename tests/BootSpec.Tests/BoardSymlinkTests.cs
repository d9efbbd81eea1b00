using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.BootSpec.Tests;

/// <summary>
/// The board is root on its side and writes the export over 9P, so any path bootspec touches may be a
/// symlink it made, pointing at the host user's files. For each such path in turn: bootspec neither reads
/// nor writes outside the export (canary files outside, compared byte for byte; their text never shows up
/// in what bootspec writes or returns).
/// </summary>
public sealed class BoardSymlinkTests
{
    private const string Secret = "CANARY-7f3a host secret";
    private static BootSpecRequest Tcp => new() { Transport = "tcp", Server = "10.0.2.100" };

    private sealed class Setup : IDisposable
    {
        public readonly ScratchDir Export = new();
        public readonly ScratchDir Outside = new();

        public Setup()
        {
            ExportFixture.Populate(Export.Path);
            // what a board could aim at: a secret file, a directory of them, an os-release and kernels of the host's
            ExportFixture.File(Outside.Path, "id_rsa", Secret);
            ExportFixture.File(Outside.Path, "os-release", $"PRETTY_NAME=\"{Secret}\"\n");
            ExportFixture.File(Outside.Path, "Image-9.9.9", Secret);
            ExportFixture.File(Outside.Path, "entries/x.conf", $"title {Secret}\n");
            ExportFixture.File(Outside.Path, "rootfs-export.json", Secret);
            ExportFixture.File(Outside.Path, "modules/9.9.9/secret.ko", Secret);
        }

        /// <summary>Replaces an export path by a symlink to target (absolute, as a board would write it).</summary>
        public void Plant(string rel, string target)
        {
            var p = Path.Combine(Export.Path, rel);
            Directory.CreateDirectory(Path.GetDirectoryName(p)!);
            if (Directory.Exists(p) && new DirectoryInfo(p).LinkTarget is null) Directory.Delete(p, true);
            else if (File.Exists(p) || new FileInfo(p).LinkTarget is not null) File.Delete(p);
            File.CreateSymbolicLink(p, target);
        }

        public Dictionary<string, byte[]> Snapshot() =>
            Directory.EnumerateFileSystemEntries(Outside.Path, "*", SearchOption.AllDirectories)
                .ToDictionary(p => p, p => File.Exists(p) ? File.ReadAllBytes(p) : []);

        /// <summary>No file the export holds (not following symlinks) contains the canary text.</summary>
        public void AssertNoSecretInside()
        {
            var leaked = Run.Program("grep", "-rl", "--no-messages", Secret, Export.Path).Stdout.Trim();
            Assert.Equal("", leaked);
        }

        public void Dispose() { Export.Dispose(); Outside.Dispose(); }
    }

    public static TheoryData<string, string> Plantings => new()
    {
        { "loader", "" },
        { "loader/entries", "entries" },
        { "loader/rootfs-export.json", "rootfs-export.json" },
        { "loader/entries/poky-6.6.1.conf", "id_rsa" },
        { "loader/entries.srel", "id_rsa" },
        { "boot", "" },
        { "boot/Image-6.6.1", "Image-9.9.9" },
        { "boot/initramfs-6.6.1.cpio.gz", "id_rsa" },
        { "etc/os-release", "os-release" },
        { "usr/lib/os-release", "os-release" },
        { "etc", "" },
        { "lib/modules", "modules" },
    };

    [Theory]
    [MemberData(nameof(Plantings))]
    public void Bootspec_never_reads_or_writes_through_a_board_made_symlink(string rel, string target)
    {
        using var s = new Setup();
        if (rel.StartsWith("loader/")) BootEntries.Write(s.Export.Path, Tcp); // a second run meets the planted link
        s.Plant(rel, Path.Combine(s.Outside.Path, target));
        var before = s.Snapshot();
        BootEntriesResult? result = null;
        try
        {
            result = BootEntries.Write(s.Export.Path, Tcp);
            BootEntries.Refresh(s.Export.Path);
        }
        catch (BootSpecException) { } // refusing is fine; following is not
        Assert.Equal(before, s.Snapshot());
        s.AssertNoSecretInside();
        if (result != null)
            Assert.DoesNotContain(result.Plan.Entries, e => BlsEntryFormat.Format(e).Contains("CANARY") || e.Linux?.Contains("9.9.9") == true);
    }

    [Fact]
    public async Task A_loader_directory_swapped_for_a_symlink_while_bootspec_writes_never_leads_outside()
    {
        using var s = new Setup();
        var entries = Path.Combine(s.Export.Path, "loader/entries");
        BootEntries.Write(s.Export.Path, Tcp);
        var before = s.Snapshot();
        using var stop = new CancellationTokenSource();
        var flipper = Task.Run(() =>
        {
            // the board's side: loader/entries becomes a symlink to the host directory and back, again and again
            var aside = Path.Combine(s.Export.Path, "loader/entries.real");
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    Directory.Move(entries, aside);
                    File.CreateSymbolicLink(entries, Path.Combine(s.Outside.Path, "entries"));
                    Thread.Yield();
                    File.Delete(entries);
                    Directory.Move(aside, entries);
                }
                catch (IOException) { }
            }
        });
        var until = DateTime.UtcNow.AddSeconds(2);
        int runs = 0;
        while (DateTime.UtcNow < until)
        {
            try { BootEntries.Write(s.Export.Path, Tcp with { Append = $"run={runs}" }); }
            catch (Exception e) when (e is BootSpecException or IOException) { }
            runs++;
        }
        stop.Cancel();
        await flipper;
        Assert.True(runs > 10);
        Assert.Equal(before, s.Snapshot());
    }
}
