using System.Text;
using FsCheck;
using FsCheck.Fluent;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.BootSpec.Tests;

public class VersionOrderTests
{
    [Theory]
    [InlineData("11", "11", 0)]
    [InlineData("systemd-123", "systemd-123", 0)]
    [InlineData("bar-123", "foo-123", -1)]
    [InlineData("123a", "123", 1)]
    [InlineData("123.a", "123", 1)]
    [InlineData("123.a", "123.b", -1)]
    [InlineData("123a", "123.a", 1)]
    [InlineData("11α", "11β", 0)]
    [InlineData("A", "a", -1)]
    [InlineData("", "0", -1)]
    [InlineData("0.", "0", 1)]
    [InlineData("0.0", "0", 1)]
    [InlineData("1_", "1", 0)]
    [InlineData("_1", "1", 0)]
    [InlineData("1_", "1.2", -1)]
    [InlineData("1_2_3", "1.3.3", 1)]
    [InlineData("1+2+3", "1.3.3", 1)]
    [InlineData("6.6.10", "6.6.9", 1)]
    [InlineData("6.6.0-rc1", "6.6.0", 1)] // "-" only separates; a longer string is newer
    [InlineData("1.0~rc1", "1.0", -1)]
    [InlineData("6.1.0-18-amd64", "6.1.0-9-amd64", 1)]
    [InlineData("007", "7", 0)]
    public void Spec_examples(string a, string b, int expected)
    {
        Assert.Equal(expected, UapiVersion.Compare(a, b));
        Assert.Equal(-expected, UapiVersion.Compare(b, a));
    }

    /// <summary>Random versions against systemd's own implementation (systemd-analyze compare-versions).</summary>
    [Fact]
    public void Agrees_with_systemd_analyze()
    {
        var analyze = Run.RequirePeer("systemd-analyze");
        var alphabet = "0129aAzZ.-~^_+".ToCharArray();
        var gen = Gen.Elements(alphabet).ArrayOf().Select(cs => new string(cs.Take(8).ToArray()));
        var pairs = Gen.Sample(Gen.Zip(gen, gen), 400).Concat([("", "~"), ("0", "~"), ("1.a", "1.0"), ("1-", "1")]).ToList();
        var script = new StringBuilder();
        foreach (var (a, b) in pairs)
            script.Append($"{analyze} compare-versions -- '{a}' '{b}' >/dev/null; echo $?\n");
        // 404 processes: minutes on a loaded machine, so the bound is wide (this is a bound, not a timing)
        var r = Run.Shell(script.ToString(), timeout: TimeSpan.FromMinutes(10)).ShouldSucceed();
        var codes = r.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(pairs.Count, codes.Length);
        for (int i = 0; i < pairs.Count; i++)
        {
            int expected = codes[i] switch { "0" => 0, "12" => -1, "11" => 1, var c => throw new Exception($"systemd-analyze exit {c}") };
            var (a, b) = pairs[i];
            Assert.True(expected == UapiVersion.Compare(a, b), $"'{a}' vs '{b}': systemd says {expected}, we say {UapiVersion.Compare(a, b)}");
        }
    }

    [Fact]
    public void Is_a_consistent_order()
    {
        var gen = Gen.Elements("0129aZ.-~^_".ToCharArray()).ArrayOf().Select(cs => new string(cs));
        Prop.ForAll(Arb.From(gen), Arb.From(gen), (a, b) => UapiVersion.Compare(a, b) == -UapiVersion.Compare(b, a) && UapiVersion.Compare(a, a) == 0)
            .QuickCheckThrowOnFailure();
    }
}

public class EntryFormatTests
{
    [Fact]
    public void Reader_follows_the_spec_syntax()
    {
        const string text = "# a comment\n\ntitle   Fedora 19 (Rawhide)\nversion\t3.8.0-2.fc19.x86_64\noptions root=UUID=6d33 quiet\n"
                            + "   # indented comment\ninitrd /a/initrd\ninitrd /a/ucode\noptions   rw  \nlinux /a/linux\ndevicetree /a/b.dtb\nfoo bar baz\nlinux-appendroot true\n";
        var e = BlsEntryFormat.Parse(text, "x-3.8.conf");
        Assert.Equal("Fedora 19 (Rawhide)", e.Title);
        Assert.Equal("3.8.0-2.fc19.x86_64", e.Version);
        Assert.Equal("root=UUID=6d33 quiet rw", e.Options);
        Assert.Equal(["/a/initrd", "/a/ucode"], e.Initrd);
        Assert.Equal("/a/linux", e.Linux);
        Assert.Equal("/a/b.dtb", e.Devicetree);
        Assert.True(e.LinuxAppendRoot);
        Assert.Equal([new KeyValuePair<string, string>("foo", "bar baz")], e.Other);
        Assert.False(e.WrittenByUs);
    }

    [Fact]
    public void Round_trips_through_writer_and_reader()
    {
        var e = new BootEntry
        {
            FileName = "rootfs-export-m-6.6.1.conf", Title = "Poky 5.0 (m)", Version = "6.6.1", MachineId = "4098b3f648d74c13b1f04ccfba7798e8",
            SortKey = "poky", Linux = "/boot/Image-6.6.1", Initrd = ["/boot/initramfs.cpio.gz"], Devicetree = "/boot/b.dtb",
            LinuxAppendRoot = true, Options = "console=ttyS0,115200 rw", WrittenByUs = true,
        };
        var back = BlsEntryFormat.Parse(BlsEntryFormat.Format(e), e.FileName);
        Assert.Equal(e with { Initrd = back.Initrd, Other = back.Other }, back);
        Assert.Equal(e.Initrd, back.Initrd);
        Assert.StartsWith(BlsEntryFormat.Marker, BlsEntryFormat.Format(e));
    }

    [Fact]
    public void Sorting_follows_the_spec()
    {
        BootEntry E(string file, string? key = null, string? mid = null, string? version = null) =>
            new() { FileName = file, SortKey = key, MachineId = mid, Version = version, Linux = "/l" };
        var entries = new[]
        {
            E("zz-bad+0-3.conf", "a", version: "9"),       // bad: last despite everything
            E("nokey-5.10.conf"),
            E("nokey-5.9.conf"),
            E("b-1.conf", "b", version: "1"),
            E("a-old.conf", "a", "m2", "6.1.80"),
            E("a-new.conf", "a", "m2", "6.6.1"),
            E("a-nomid.conf", "a", null, "1"),              // empty machine-id sorts lower
            E("a-m1.conf", "a", "m1", "1"),
            E("counting+2-1.conf", "c", version: "1"),      // indeterminate: sorted normally
        };
        var sorted = BlsEntryFormat.Sorted(entries.Reverse()).Select(e => e.FileName);
        Assert.Equal(["a-nomid.conf", "a-m1.conf", "a-new.conf", "a-old.conf", "b-1.conf", "counting+2-1.conf",
            "nokey-5.10.conf", "nokey-5.9.conf", "zz-bad+0-3.conf"], sorted);
    }

    [Theory]
    [InlineData("qemuarm64", "6.6.1", "rootfs-export-qemuarm64-6.6.1.conf")]
    [InlineData("my board", "6.6.1 (x)", "rootfs-export-my_board-6.6.1__x_.conf")]
    [InlineData("m", "6.6.0+", "rootfs-export-m-6.6.0+.conf")]
    [InlineData("m", "6.6.0+12", "rootfs-export-m-6.6.0_12.conf")]
    [InlineData("m", "6.6.0+1-2", "rootfs-export-m-6.6.0_1-2.conf")]
    [InlineData("ä/ö", "1", "rootfs-export-___-1.conf")]
    public void File_names_use_the_spec_character_set(string token, string version, string expected)
    {
        var name = BlsFileName.For(token, version);
        Assert.Equal(expected, name);
        Assert.True(BlsFileName.IsValid(name));
        Assert.Null(BlsFileName.Counter(name));
    }

    [Fact]
    public void File_names_stay_within_255_characters()
    {
        var name = BlsFileName.For("m", new string('9', 400));
        Assert.Equal(255, name.Length);
        Assert.EndsWith(".conf", name);
    }

    [Fact]
    public void Boot_counter_is_read_from_the_name()
    {
        Assert.Equal((3, 0), BlsFileName.Counter("x+3.conf"));
        Assert.Equal((0, 2), BlsFileName.Counter("x+0-2.conf"));
        Assert.True(new BootEntry { FileName = "x+0-2.conf" }.IsBad);
        Assert.Equal("x", BlsFileName.Identity("x+0-2.conf"));
    }
}
