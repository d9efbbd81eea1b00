using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.FeedWatcher.Tests;

/// <summary>
/// PTXdist: platform-*/packages/*.ipk with platform-*/state/&lt;pkg&gt;.perms giving owners, modes and device nodes;
/// the image keeps opkg state in the legacy usr/lib/opkg. Also the ipk container variants (legacy tar.gz outer,
/// data.tar.xz, data.tar.zst).
/// </summary>
public sealed class PtxdistFeedTests
{
    private sealed class Bsp : IDisposable
    {
        public ScratchDir Dir { get; } = new("rfe-ptx");
        public string Root => Dir["bsp"];
        public string Platform => Path.Combine(Root, "platform-v7a");
        public string Export => Path.Combine(Root, "export", "root-v7a");
        public Dictionary<string, string> Env => new() { ["BUILDDIR"] = Root };

        public Bsp()
        {
            var rootfs = Dir["rootfs"];
            Run.Shell($"""
                set -e
                mkdir -p {Platform}/images {Platform}/packages {Platform}/state {rootfs}/etc {rootfs}/usr/lib/opkg/info {rootfs}/dev
                printf 'root:x:0:0:root:/root:/bin/sh\n' > {rootfs}/etc/passwd
                printf 'Package: base\nVersion: 1.0\nStatus: install ok installed\nArchitecture: armhf\n\n' > {rootfs}/usr/lib/opkg/status
                : > {rootfs}/usr/lib/opkg/info/base.list
                tar --numeric-owner --owner=0 --group=0 -czf {Platform}/images/root.tgz -C {rootfs} .
                """).ShouldSucceed();
        }

        public void Own()
        {
            if (Run.IsRoot) Run.Program("chown", "-R", $"{Run.NobodyId}:{Run.NobodyId}", Root).ShouldSucceed();
        }

        public RunResult Update(params string[] extra) => Run.Tool(["update", "root", .. extra], Env, cwd: Dir.Path);

        public string Row(string relative) =>
            Run.Program("sqlite3", Path.Combine(Export + ".pseudo_state", "files.db"),
                $"SELECT uid, gid, printf('%o', mode), rdev FROM files WHERE path = '{Export}/{relative}'").ShouldSucceed().Stdout.Trim();

        public void Dispose() => Dir.Dispose();
    }

    [Fact]
    public void Perms_give_owners_modes_and_device_nodes_and_legacy_opkg_state_is_kept()
    {
        Run.RequirePeer("sqlite3");
        using var b = new Bsp();
        TestIpk.Write(Path.Combine(b.Platform, "packages/foo_1.0_armhf.ipk"), "Package: foo\nVersion: 1.0\nArchitecture: armhf\nDescription: foo\n",
        [
            new("/usr/bin/foo", "foo binary", 0x1ed),
            new("/var/lib/foo", null, 0x1ed),
            new("/usr/bin/foo-link", null, LinkTo: "foo"),
        ]);
        const char us = '\x1f';
        File.WriteAllText(Path.Combine(b.Platform, "state/foo.perms"),
            $"f{us}/usr/bin/foo{us}0{us}0{us}04755\nd{us}/var/lib/foo{us}1000{us}1000{us}0700\nn{us}/dev/foo0{us}0{us}6{us}0660{us}c{us}10{us}200\n");
        b.Own();
        var output = b.Update("--install", "foo").ShouldSucceed().Stdout;
        Assert.Contains("Build: PTXdist", output);
        Assert.Contains("  foo 1.0", output);
        Assert.Equal("0|0|104755|0", b.Row("usr/bin/foo"));
        Assert.Equal("1000|1000|40700|0", b.Row("var/lib/foo"));
        Assert.Equal("0|6|20660|2760", b.Row("dev/foo0"));
        var status = File.ReadAllText(Path.Combine(b.Export, "usr/lib/opkg/status"));
        Assert.Contains("Package: foo\nVersion: 1.0\nStatus: install ok installed\nArchitecture: armhf\n", status);
        Assert.Contains("/dev/foo0", File.ReadAllText(Path.Combine(b.Export, "usr/lib/opkg/info/foo.list")));
        Assert.False(Directory.Exists(Path.Combine(b.Export, "var/lib/opkg")));
        Assert.Contains("clean:", Run.Tool("check", b.Export).ShouldSucceed().Stdout);
    }

    [Fact]
    public void Perms_naming_a_file_the_package_lacks_is_refused_before_anything_is_written()
    {
        using var b = new Bsp();
        b.Own();
        b.Update().ShouldSucceed();
        TestIpk.Write(Path.Combine(b.Platform, "packages/foo_1.0_armhf.ipk"), "Package: foo\nVersion: 1.0\nArchitecture: armhf\nDescription: foo\n",
            [new("/usr/bin/foo", "foo binary", 0x1ed)]);
        File.WriteAllText(Path.Combine(b.Platform, "state/foo.perms"), string.Join('\u001f', "f", "/usr/bin/not-there", "0", "0", "0755") + "\n");
        b.Own();
        var db = File.ReadAllBytes(Path.Combine(b.Export + ".pseudo_state", "files.db"));
        var r = b.Update("--install", "foo");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("foo_1.0_armhf.ipk: foo.perms lists /usr/bin/not-there, which the package does not contain", r.Stderr);
        Assert.False(File.Exists(Path.Combine(b.Export, "usr/bin/foo")));
        Assert.Equal(db, File.ReadAllBytes(Path.Combine(b.Export + ".pseudo_state", "files.db")));
        Assert.False(File.Exists(Path.Combine(b.Export + ".pseudo_state", "rootfs-export-feed.journal")));
        Assert.Contains("clean:", Run.Tool("check", b.Export).ShouldSucceed().Stdout);
    }

    [Theory]
    [InlineData("gz", true)]
    [InlineData("xz", false)]
    [InlineData("zst", false)]
    public void Ipk_container_variants_are_read(string compression, bool legacy)
    {
        Run.RequirePeer(compression == "zst" ? "zstd" : "xz");
        using var b = new Bsp();
        TestIpk.Write(Path.Combine(b.Platform, "packages/bar_2.0_armhf.ipk"), "Package: bar\nVersion: 2.0\nArchitecture: armhf\nDescription: bar\n",
            [new("/usr/bin/bar", $"bar {compression}", 0x1ed)], compression, legacy);
        b.Own();
        b.Update("--install", "bar").ShouldSucceed();
        Assert.Equal($"bar {compression}", File.ReadAllText(Path.Combine(b.Export, "usr/bin/bar")));
        Assert.Contains("clean:", Run.Tool("check", b.Export).ShouldSucceed().Stdout);
    }
}
