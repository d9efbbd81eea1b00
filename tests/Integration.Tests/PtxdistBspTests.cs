using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Integration.Tests;

/// <summary>
/// `update` on trees shaped like PTXdist BSPs: the platform selected_platformconfig names among several, an
/// empty platform name (platform/), no images/root.tgz (the nfsroot data root/ + state/*.perms is the image),
/// and PTXdist's opkg status in /usr/share/opkg.
/// </summary>
public sealed class PtxdistBspTests
{
    private const char Us = '\x1f';

    private sealed class Bsp : IDisposable
    {
        public ScratchDir Dir { get; } = new("rfe-bsp");
        public string Root => Dir["bsp"];

        public Bsp() => Directory.CreateDirectory(Root);

        /// <summary>configs/platform-NAME/platformconfig and selected_platformconfig pointing at it, as `ptxdist platform` leaves them.</summary>
        public void Select(string name)
        {
            var config = Path.Combine(Root, "configs", $"platform-{(name.Length > 0 ? name : "none")}", "platformconfig");
            Directory.CreateDirectory(Path.GetDirectoryName(config)!);
            File.WriteAllText(config, $"PTXCONF_PLATFORM_MAGIC=y\nPTXCONF_PLATFORM=\"{name}\"\nPTXCONF_PLATFORM_VERSION=\"-2026.07\"\n");
            var link = Path.Combine(Root, "selected_platformconfig");
            File.Delete(link);
            File.CreateSymbolicLink(link, Path.GetRelativePath(Root, config));
        }

        /// <summary>platform dir with the nfsroot data ptxdist go leaves: root/ owned by the builder, owners in state/*.perms.</summary>
        public string Platform(string dirName, string hostname, bool rootTgz = false, bool opkgStatus = false)
        {
            var p = Path.Combine(Root, dirName);
            Run.Shell($"""
                set -e
                mkdir -p {p}/root/etc {p}/root/usr/bin {p}/root/var/lib/foo {p}/root/dev {p}/root/usr/share/opkg/info {p}/state {p}/packages {p}/images
                echo {hostname} > {p}/root/etc/hostname
                printf 'root:x:0:0:root:/root:/bin/sh\n' > {p}/root/etc/passwd
                printf '#!/bin/sh\n' > {p}/root/usr/bin/su && chmod 0755 {p}/root/usr/bin/su
                ln -s su {p}/root/usr/bin/su-link
                """).ShouldSucceed();
            if (opkgStatus)
            {
                File.WriteAllText(Path.Combine(p, "root/usr/share/opkg/status"), "Package: foo\nVersion: 1.0\nStatus: install ok installed\nArchitecture: armhf\n\n");
                File.WriteAllText(Path.Combine(p, "root/usr/share/opkg/info/foo.list"), "/usr/bin/foo\n");
                File.WriteAllText(Path.Combine(p, "root/usr/bin/foo"), "foo 1.0\n");
            }
            File.WriteAllText(Path.Combine(p, "state/base.perms"), string.Join('\n',
                $"d{Us}/{Us}0{Us}0{Us}0755", $"f{Us}/usr/bin/su{Us}0{Us}0{Us}04755", $"d{Us}/var/lib/foo{Us}1000{Us}1000{Us}0700",
                $"n{Us}/dev/console{Us}0{Us}5{Us}0600{Us}c{Us}5{Us}1") + "\n");
            if (rootTgz) Run.Program("tar", "--numeric-owner", "--owner=0", "--group=0", "-czf", Path.Combine(p, "images/root.tgz"), "-C", Path.Combine(p, "root"), ".").ShouldSucceed();
            return p;
        }

        public void Own()
        {
            if (Run.IsRoot) Run.Program("chown", "-R", "-h", $"{Run.NobodyId}:{Run.NobodyId}", Root).ShouldSucceed();
        }

        public RunResult Update(params string[] extra) =>
            Run.Tool(["update", "root", .. extra], new Dictionary<string, string> { ["BUILDDIR"] = "" }, cwd: Root);

        public string Row(string export, string relative) =>
            Run.Program("sqlite3", export + ".pseudo_state/files.db",
                $"SELECT uid, gid, printf('%o', mode), rdev FROM files WHERE path = '{export}/{relative}'").ShouldSucceed().Stdout.Trim();

        public void Dispose() => Dir.Dispose();
    }

    [Fact]
    public void The_selected_platform_is_exported_not_the_newest()
    {
        using var b = new Bsp();
        b.Platform("platform-v7a", "v7a", rootTgz: true);
        b.Platform("platform-v8a", "v8a", rootTgz: true);
        b.Select("v7a");
        // the other platform was built last
        File.SetLastWriteTimeUtc(Path.Combine(b.Root, "platform-v8a"), DateTime.UtcNow.AddMinutes(5));
        b.Own();
        var r = b.Update().ShouldSucceed();
        Assert.Contains($"Build: PTXdist {b.Root}/platform-v7a", r.Stdout);
        Assert.Equal("v7a\n", File.ReadAllText(Path.Combine(b.Root, "export/root-v7a/etc/hostname")));
        // --machine picks the other one explicitly
        b.Update("--machine", "v8a").ShouldSucceed();
        Assert.Equal("v8a\n", File.ReadAllText(Path.Combine(b.Root, "export/root-v8a/etc/hostname")));
        // two platforms and nothing selected: one clear error, not a guess
        File.Delete(Path.Combine(b.Root, "selected_platformconfig"));
        var none = b.Update();
        Assert.Equal(1, none.ExitCode);
        Assert.Contains("several platforms", none.Stderr);
        Assert.Contains("platform-v7a, platform-v8a", none.Stderr);
    }

    [Fact]
    public void An_empty_platform_name_is_platform_dir()
    {
        using var b = new Bsp();
        b.Platform("platform", "plain", rootTgz: true);
        b.Select("");
        b.Own();
        var r = b.Update().ShouldSucceed();
        Assert.Contains($"Build: PTXdist {b.Root}/platform", r.Stdout);
        Assert.Equal("plain\n", File.ReadAllText(Path.Combine(b.Root, "export/root-platform/etc/hostname")));
    }

    [Fact]
    public void Without_root_tgz_the_nfsroot_data_is_the_image()
    {
        Run.RequirePeer("sqlite3");
        using var b = new Bsp();
        var p = b.Platform("platform-v7a", "nfsroot");
        b.Select("v7a");
        b.Own();
        var first = b.Update().ShouldSucceed().Stdout;
        var export = Path.Combine(b.Root, "export/root-v7a");
        Assert.Contains("created", first);
        Assert.Equal("nfsroot\n", File.ReadAllText(Path.Combine(export, "etc/hostname")));
        Assert.Equal("0|0|104755|0", b.Row(export, "usr/bin/su"));          // owner and setuid from the .perms
        Assert.Equal("1000|1000|40700|0", b.Row(export, "var/lib/foo"));
        Assert.Equal("0|5|20600|1281", b.Row(export, "dev/console"));        // a node only the .perms has
        Assert.Equal("su", new FileInfo(Path.Combine(export, "usr/bin/su-link")).LinkTarget);
        Assert.Contains("image up to date", b.Update().ShouldSucceed().Stdout);
        Assert.Contains("clean:", Run.Tool("check", export).ShouldSucceed().Stdout);

        // the next `ptxdist go` changes a file in root/: the export follows
        Thread.Sleep(1100);
        Run.Program("bash", ["-c", $"echo changed > {p}/root/etc/hostname"], asUnprivileged: true).ShouldSucceed();
        Assert.Contains("replaced with the newer image", b.Update().ShouldSucceed().Stdout);
        Assert.Equal("changed\n", File.ReadAllText(Path.Combine(export, "etc/hostname")));
    }

    [Fact]
    public void Opkg_state_in_usr_share_opkg_is_updated_from_the_platform_packages()
    {
        using var b = new Bsp();
        var p = b.Platform("platform-v7a", "opkg", opkgStatus: true);
        b.Select("v7a");
        TestIpk.Write(Path.Combine(p, "packages/foo_1.1_armhf.ipk"), "Package: foo\nVersion: 1.1\nArchitecture: armhf\nDescription: foo\n",
            [new("/usr/bin/foo", "foo 1.1\n", 0x1ed)]);
        b.Own();
        var r = b.Update().ShouldSucceed().Stdout;
        Assert.Contains("foo 1.0 → 1.1", r);
        var export = Path.Combine(b.Root, "export/root-v7a");
        Assert.Equal("foo 1.1\n", File.ReadAllText(Path.Combine(export, "usr/bin/foo")));
        Assert.Contains("Package: foo\nVersion: 1.1\nStatus: install ok installed", File.ReadAllText(Path.Combine(export, "usr/share/opkg/status")));
        Assert.False(Directory.Exists(Path.Combine(export, "var/lib/opkg")));
    }

    [Fact]
    public void The_wrapper_updates_after_go_without_root_tgz()
    {
        using var b = new Bsp();
        b.Platform("platform-v7a", "wrapped");
        b.Select("v7a");
        var bin = b.Dir["bin"];
        Directory.CreateDirectory(bin);
        File.WriteAllText(Path.Combine(bin, "ptxdist"), "#!/bin/sh\necho \"fake ptxdist $*\"\n");
        File.WriteAllText(Path.Combine(bin, "rootfs-export"), $"#!/bin/sh\nexec dotnet {ToolCopy.Dll} \"$@\"\n");
        Run.Program("chmod", "-R", "a+rx", bin).ShouldSucceed();
        b.Own();
        var wrapper = Path.Combine(BitbakeClassTests.Repo, "ptxdist/ptxdist-rootfs-export");
        var env = new Dictionary<string, string> { ["PATH"] = $"{bin}:/usr/local/bin:/usr/bin:/bin", ["BUILDDIR"] = "" };
        var r = Run.Program("bash", [wrapper, "go"], asUnprivileged: true, env: env, cwd: b.Root).ShouldSucceed();
        Assert.Contains("fake ptxdist go", r.Stdout);
        Assert.Equal("wrapped\n", File.ReadAllText(Path.Combine(b.Root, "export/root-v7a/etc/hostname")));
    }
}
