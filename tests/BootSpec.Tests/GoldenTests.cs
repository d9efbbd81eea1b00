using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.BootSpec.Tests;

/// <summary>Per transport: the entries `bootspec` writes and the lines `cmdline` prints, against golden files.</summary>
public class GoldenTests
{
    public static TheoryData<string, string[]> Cases => new()
    {
        { "nfs", ["--transport", "nfs", "--server", "192.168.7.1"] },
        { "nfs-appendroot", ["--transport", "nfs", "--server", "192.168.7.1", "--port", "2049", "--appendroot", "--machine-id", "4098b3f648d74c13b1f04ccfba7798e8"] },
        { "tcp", ["--transport", "tcp", "--server", "10.0.2.100"] },
        { "usbg", ["--transport", "usbg", "--udc", "ci_hdrc.0"] },
        { "virtio", ["--transport", "virtio", "--console", "ttyS0,115200", "--msize", "262144"] },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Bootspec_and_cmdline_match_the_golden_files(string name, string[] options)
    {
        using var scratch = new ScratchDir("rfe-golden");
        var export = scratch.Path;
        ExportFixture.Populate(export);
        ExportFixture.HandToTool(export);

        Run.Tool(["bootspec", export, .. options], null).ShouldSucceed();
        var entriesDir = Path.Combine(export, "loader/entries");
        var written = Directory.GetFiles(entriesDir).Select(Path.GetFileName).OrderBy(n => n, StringComparer.Ordinal).ToList();
        var goldenDir = Path.Combine(Golden.Directory(), name);
        if (Environment.GetEnvironmentVariable("REGENERATE_GOLDEN") == "1" && Directory.Exists(goldenDir))
            foreach (var f in Directory.GetFiles(goldenDir, "*.conf")) File.Delete(f);
        foreach (var f in written)
            Golden.Assert(Path.Combine(name, f!), File.ReadAllText(Path.Combine(entriesDir, f!)), export);
        var expected = Directory.GetFiles(goldenDir, "*.conf").Select(Path.GetFileName).OrderBy(n => n, StringComparer.Ordinal).ToList();
        Assert.Equal(expected, written);

        // cmdline prints exactly the line the entries carry (and for nfs the barebox line)
        var cmdlineArgs = options.Where(o => o is not ("--appendroot")).ToList();
        int mid = cmdlineArgs.IndexOf("--machine-id");
        if (mid >= 0) cmdlineArgs.RemoveRange(mid, 2);
        if (name.StartsWith("nfs")) cmdlineArgs.Add("--barebox");
        var r = Run.Tool(["cmdline", export, .. cmdlineArgs], null).ShouldSucceed();
        Golden.Assert(Path.Combine(name, "cmdline.txt"), r.Stdout, export);
        if (name == "usbg") Golden.Assert(Path.Combine(name, "gadget.sh"), r.Stderr, export);
        else Assert.Equal("", r.Stderr);

        // the entries read back by the spec reader carry that same command line
        var entries = BlsEntryFormat.Sorted(BlsEntryFormat.ReadDirectory(entriesDir));
        Assert.Equal(["6.6.1", "6.1.80"], entries.Select(e => e.Version));
        if (!options.Contains("--appendroot"))
            Assert.All(entries, e => Assert.Equal(r.Stdout.Split('\n')[0], e.Options));
    }
}
