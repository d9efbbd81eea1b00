using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.FeedWatcher.Tests;

/// <summary>deb feeds: packages from dpkg-deb and Debian's own busybox (epoch 1:), state compared with `dpkg --root`.</summary>
public sealed class DebFeedTests
{
    private const string DpkgRoot = """
        mkdir -p var/lib/dpkg/info var/lib/dpkg/updates var/lib/dpkg/triggers var/lib/dpkg/alternatives
        printf 'Package: libc6\nStatus: install ok installed\nPriority: optional\nSection: libs\nInstalled-Size: 12000\nMaintainer: GNU Libc Maintainers <debian-glibc@lists.debian.org>\nArchitecture: amd64\nMulti-Arch: same\nSource: glibc\nVersion: 2.36-9+deb12u4\nDescription: GNU C Library: Shared libraries\n Contains the standard libraries.\n\n' > var/lib/dpkg/status
        touch var/lib/dpkg/available var/lib/dpkg/info/libc6:amd64.list
        """;

    /// <summary>Debian's busybox (version 1:1.35.0-...), fetched once with apt-get download into a cache reused across runs.</summary>
    internal static string DebianBusybox()
    {
        const string cache = "/var/cache/rootfs-export-tests";
        Directory.CreateDirectory(cache);
        var existing = Directory.EnumerateFiles(cache, "busybox_*.deb").FirstOrDefault();
        if (existing != null) return existing;
        Run.Shell($"cd {cache} && apt-get download busybox", timeout: TimeSpan.FromMinutes(3)).ShouldSucceed();
        return Directory.EnumerateFiles(cache, "busybox_*.deb").First();
    }

    private static string Stanza(string status, string package) =>
        status.Split("\n\n").Single(s => s.StartsWith($"Package: {package}\n"));

    [Fact]
    public void Status_and_lists_match_what_dpkg_root_writes_for_the_same_debs()
    {
        Run.RequirePeer("dpkg-deb");
        Run.RequirePeer("dpkg");
        using var b = new OeFeedBuild(DpkgRoot, ["alpha amd64 1.0-1"]);
        var debs = new List<string>
        {
            b.Deb("alpha", "1.0-1", "amd64", "/usr/bin/alpha=alpha 1;/etc/alpha.conf=setting=1\n;/usr/share/doc/alpha/README=read me",
                "Depends: beta (>= 2:2.0), libc6 (>= 2.34)\nSection: utils\nPriority: optional\nHomepage: https://example.com/alpha\n", conffiles: ["/etc/alpha.conf"]),
            b.Deb("beta", "2:2.0-1", "amd64", "/usr/lib/libbeta.so.2=beta", "Provides: libbeta\nPre-Depends: libc6\n"),
            b.Deb("gamma", "0.5", "amd64", "/usr/lib/x86_64-linux-gnu/libgamma.so=g", "Multi-Arch: same\nDepends: libbeta|nothing-else\n"),
        };
        var busybox = DebianBusybox();
        var copy = Path.Combine(b.FeedDir("deb", "core2-64"), Path.GetFileName(busybox));
        File.Copy(busybox, copy, true);
        b.Own();
        debs.Add(copy);

        var output = b.Update("--install", "busybox", "gamma").ShouldSucceed().Stdout;
        Assert.Contains("Installing new packages", output);
        Assert.Contains("  beta 2:2.0-1", output);
        Assert.Contains("  busybox 1:1.35.0", output);
        Assert.Contains("clean:", b.Check().ShouldSucceed().Stdout);

        // the reference: dpkg itself on a copy of the same image root
        var reference = Path.Combine(b.Work, "ref");
        Directory.CreateDirectory(reference);
        Run.Program("tar", "--numeric-owner", "-xzf", Path.Combine(b.ImageDir, $"{OeFeedBuild.Image}-qemux86-64.rootfs.tar.gz"), "-C", reference).ShouldSucceed();
        Run.Program("dpkg", ["--root=" + reference, "--force-script-chrootless", "--force-not-root", "--no-triggers", "-i", .. debs],
            env: new Dictionary<string, string> { ["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin" }).ShouldSucceed();

        var ours = File.ReadAllText(Path.Combine(b.Export, "var/lib/dpkg/status"));
        var theirs = File.ReadAllText(Path.Combine(reference, "var/lib/dpkg/status"));
        foreach (var p in new[] { "libc6", "alpha", "beta", "gamma", "busybox" })
            Assert.Equal(Stanza(theirs, p), Stanza(ours, p));
        Assert.Equal(theirs.Split("\n\n").Select(s => s.Split('\n')[0]), ours.Split("\n\n").Select(s => s.Split('\n')[0])); // same order
        foreach (var info in new[] { "alpha.list", "beta.list", "gamma:amd64.list", "busybox.list", "busybox.md5sums", "busybox.triggers", "alpha.conffiles", "alpha.md5sums" })
            Assert.Equal(File.ReadAllText(Path.Combine(reference, "var/lib/dpkg/info", info)), File.ReadAllText(Path.Combine(b.Export, "var/lib/dpkg/info", info)));
        Assert.Equal(File.ReadAllBytes(Path.Combine(reference, "bin/busybox")), File.ReadAllBytes(Path.Combine(b.Export, "bin/busybox")));
    }

    [Fact]
    public void Deb_upgrade_keeps_a_modified_conffile_as_dpkg_dist_and_epoch_orders_versions()
    {
        Run.RequirePeer("dpkg-deb");
        using var b = new OeFeedBuild(DpkgRoot, []);
        var v1 = b.Deb("svc", "1.0-1", "amd64", "/usr/sbin/svc=v1;/etc/svc.conf=port=1\n;/usr/share/svc/old=old", conffiles: ["/etc/svc.conf"]);
        b.Update("--install", "svc").ShouldSucceed();
        Assert.Contains("Package: svc\nStatus: install ok installed\n", File.ReadAllText(Path.Combine(b.Export, "var/lib/dpkg/status")));
        File.WriteAllText(Path.Combine(b.Export, "etc/svc.conf"), "port=2 # mine\n");

        // 1:0.9 is newer than 1.0-1 (epoch); it drops /usr/share/svc/old and has a postinst
        File.Delete(v1);
        b.Deb("svc", "1:0.9-1", "amd64", "/usr/sbin/svc=v2;/etc/svc.conf=port=3\n", conffiles: ["/etc/svc.conf"], postinst: "echo configured");
        var output = b.Update().ShouldSucceed().Stdout;
        Assert.Contains("svc 1.0-1 → 1:0.9-1", output);
        Assert.Contains("to finish on the board (dpkg --configure -a", output);
        Assert.Equal("v2", File.ReadAllText(Path.Combine(b.Export, "usr/sbin/svc")));
        Assert.False(File.Exists(Path.Combine(b.Export, "usr/share/svc/old")));
        Assert.False(Directory.Exists(Path.Combine(b.Export, "usr/share/svc")));
        // unpacked, not configured: dpkg's own convention, the board's dpkg --configure -a resolves the conffile
        Assert.Equal("port=2 # mine\n", File.ReadAllText(Path.Combine(b.Export, "etc/svc.conf")));
        Assert.Equal("port=3\n", File.ReadAllText(Path.Combine(b.Export, "etc/svc.conf.dpkg-new")));
        var status = File.ReadAllText(Path.Combine(b.Export, "var/lib/dpkg/status"));
        Assert.Contains("Package: svc\nStatus: install ok unpacked\n", status);
        Assert.Contains("Version: 1:0.9-1\nConfig-Version: 1.0-1\n", status);
        Assert.Contains(" /etc/svc.conf newconffile\n", status);
        Assert.True(File.Exists(Path.Combine(b.Export, "var/lib/dpkg/info/svc.postinst")));
        Assert.Contains("clean:", b.Check().ShouldSucceed().Stdout);
    }

    [Fact]
    public void Deb_configured_upgrade_writes_dpkg_dist_beside_the_users_conffile()
    {
        Run.RequirePeer("dpkg-deb");
        using var b = new OeFeedBuild(DpkgRoot, []);
        var v1 = b.Deb("svc", "1.0-1", "amd64", "/etc/svc.conf=port=1\n", conffiles: ["/etc/svc.conf"]);
        b.Update("--install", "svc").ShouldSucceed();
        Run.Shell($"echo 'port=2 # mine' > {b.Export}/etc/svc.conf", asUnprivileged: true).ShouldSucceed();
        File.Delete(v1);
        b.Deb("svc", "1.1-1", "amd64", "/etc/svc.conf=port=3\n", conffiles: ["/etc/svc.conf"]);
        Assert.Contains("kept your /etc/svc.conf, new one is /etc/svc.conf.dpkg-dist", b.Update().ShouldSucceed().Stdout);
        Assert.Equal("port=2 # mine\n", File.ReadAllText(Path.Combine(b.Export, "etc/svc.conf")));
        Assert.Equal("port=3\n", File.ReadAllText(Path.Combine(b.Export, "etc/svc.conf.dpkg-dist")));
        Assert.Contains("clean:", b.Check().ShouldSucceed().Stdout);
    }
}
