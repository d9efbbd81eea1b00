using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.FeedWatcher.Tests;

/// <summary>deb feeds: packages from dpkg-deb and Debian's own busybox (epoch 1:), state compared with `dpkg --root --unpack`.</summary>
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
        Run.Program("dpkg", ["--root=" + reference, "--force-script-chrootless", "--force-not-root", "--unpack", .. debs],
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

    /// <summary>svc 1.0-1 configured in the image, its conffile edited on the board.</summary>
    private const string SvcInstalled = DpkgRoot + """

        mkdir -p usr/sbin usr/share/svc
        echo v1 > usr/sbin/svc; echo old > usr/share/svc/old; echo 'port=2 # mine' > etc/svc.conf
        printf 'Package: svc\nStatus: install ok installed\nMaintainer: Test <t@example.com>\nArchitecture: amd64\nVersion: 1.0-1\nConffiles:\n /etc/svc.conf 6e4d2a1c1ad5a1e0e7ad2e0e3e6d2a10\nDescription: test package svc\n\n' >> var/lib/dpkg/status
        printf '/.\n/usr\n/usr/sbin\n/usr/sbin/svc\n/usr/share\n/usr/share/svc\n/usr/share/svc/old\n/etc\n/etc/svc.conf\n' > var/lib/dpkg/info/svc.list
        """;

    [Fact]
    public void Deb_upgrade_is_left_as_dpkg_unpack_leaves_it_old_conffile_hashes_kept()
    {
        Run.RequirePeer("dpkg-deb");
        using var b = new OeFeedBuild(SvcInstalled, []);
        // 1:0.9 is newer than 1.0-1 (epoch); it drops /usr/share/svc/old and adds a conffile
        b.Deb("svc", "1:0.9-1", "amd64", "/usr/sbin/svc=v2;/etc/svc.conf=port=3\n;/etc/svc.d/extra.conf=x\n", conffiles: ["/etc/svc.conf", "/etc/svc.d/extra.conf"], postinst: "echo configured");
        var output = b.Update().ShouldSucceed().Stdout;
        Assert.Contains("svc 1.0-1 → 1:0.9-1", output);
        Assert.Contains("to finish on the board (dpkg --configure -a", output);
        Assert.Equal("v2", File.ReadAllText(Path.Combine(b.Export, "usr/sbin/svc")));
        Assert.False(File.Exists(Path.Combine(b.Export, "usr/share/svc/old")));
        Assert.False(Directory.Exists(Path.Combine(b.Export, "usr/share/svc")));
        // dpkg --unpack: conffiles beside the old ones as .dpkg-new, decided by the board's dpkg --configure -a
        Assert.Equal("port=2 # mine\n", File.ReadAllText(Path.Combine(b.Export, "etc/svc.conf")));
        Assert.Equal("port=3\n", File.ReadAllText(Path.Combine(b.Export, "etc/svc.conf.dpkg-new")));
        var status = File.ReadAllText(Path.Combine(b.Export, "var/lib/dpkg/status"));
        Assert.Contains("Package: svc\nStatus: install ok unpacked\n", status);
        Assert.Contains("Version: 1:0.9-1\nConfig-Version: 1.0-1\n", status);
        // the upgrade keeps the hash the configured version recorded; only the conffile no package had is new
        Assert.Contains("Conffiles:\n /etc/svc.conf 6e4d2a1c1ad5a1e0e7ad2e0e3e6d2a10\n /etc/svc.d/extra.conf newconffile\n", status);
        Assert.True(File.Exists(Path.Combine(b.Export, "var/lib/dpkg/info/svc.postinst")));
        Assert.Contains("clean:", b.Check().ShouldSucceed().Stdout);
    }

    [Fact]
    public void Untouched_status_entries_are_kept_byte_for_byte()
    {
        Run.RequirePeer("dpkg-deb");
        // a trailing space after Description: and an unusual field, as real status files have
        using var b = new OeFeedBuild(DpkgRoot + "\nprintf 'Package: zz-old\\nStatus: install ok installed\\nArchitecture: all\\nVersion: 1\\nX-Odd:  two  spaces \\nDescription: trailing \\n line\\n\\n' >> var/lib/dpkg/status", []);
        var before = Stanza(File.ReadAllText(Path.Combine(b.Work, "rootfs/var/lib/dpkg/status")), "zz-old");
        b.Deb("alpha", "1.0-1", "amd64", "/usr/bin/alpha=1");
        b.Update("--install", "alpha").ShouldSucceed();
        Assert.Equal(before, Stanza(File.ReadAllText(Path.Combine(b.Export, "var/lib/dpkg/status")), "zz-old"));
        Assert.Contains("Description: trailing \n", before);
    }
}
