using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.FeedWatcher.Tests;

/// <summary>
/// `update` against dpkg itself on real Debian packages: a bookworm minbase image (merged /usr, directories with
/// non-root owners, libc-bin's ldconfig trigger, conffiles) gets upgrades from the security/point-release
/// suites and new packages that ship into /bin and /lib; the reference is `dpkg --root REF --unpack` as real
/// root on the same image. Every path's type, mode, owner, content, link target and xattrs must agree, as must
/// status and info/. Then the board's step, `dpkg --configure -a`, must succeed on a copy of our export.
/// </summary>
public sealed class DpkgDifferentialTests
{
    internal static readonly string[] Upgrades = ["libpam0g", "libpam-modules", "libpam-modules-bin", "libpam-runtime", "zlib1g", "libssl3", "apt", "libapt-pkg6.0", "tzdata"];
    internal static readonly string[] NewPackages = ["busybox", "less", "iputils-ping", "libcap2-bin"];

    /// <summary>State files dpkg keeps for itself (backups, locks, logs) and our own stamp: not part of the result.</summary>
    private static bool Ignored(string path) =>
        path is "var/lib/dpkg/status-old" or "var/lib/dpkg/lock" or "var/lib/dpkg/lock-frontend" or "var/lib/dpkg/triggers/Lock"
            or "var/log/dpkg.log" or "etc/rootfs-export-updated" or "var/lib/dpkg/available-old" or "var/lib/dpkg/diversions-old"
        || path.StartsWith("var/lib/dpkg/updates/", StringComparison.Ordinal)
        // debconf's backup of its cache, written when dpkg runs a preinst; maintainer scripts run on the board only
        || (path.StartsWith("var/cache/debconf/", StringComparison.Ordinal) && path.EndsWith("-old", StringComparison.Ordinal));

    [Fact]
    [Trait("Category", "EndToEnd")]
    public void Update_equals_dpkg_unpack_on_a_real_debian_image_and_dpkg_configures_the_result()
    {
        Run.RequirePeer("dpkg");
        Run.RequirePeer("sqlite3");
        Run.RequirePeer("getfattr");
        Assert.True(Run.IsRoot, "the reference is dpkg --unpack as real root");
        var image = DebianImage.MinbaseTarball();
        var debs = Newer(image, DebianImage.Debs([.. Upgrades, .. NewPackages]));
        Assert.Contains(debs, d => Path.GetFileName(d).StartsWith("libpam-modules_")); // upgrades with conffiles and /lib content
        using var b = new OeFeedBuild(image);
        foreach (var deb in debs) File.Copy(deb, Path.Combine(b.FeedDir("deb", "core2-64"), Path.GetFileName(deb)));
        b.Own();

        var inImage = ImageVersions(image);
        // everything the image lacks is asked for, so both sides get the same set
        var fresh = debs.Select(d => Run.Program("dpkg-deb", "-f", d, "Package").ShouldSucceed().Stdout.Trim()).Where(n => !inImage.ContainsKey(n)).ToList();
        var output = b.Update(["--install", .. fresh]).ShouldSucceed().Stdout;
        Assert.Contains(" 0 problem(s)", output);
        foreach (var link in new[] { "bin", "lib", "sbin" })
            Assert.Equal("usr/" + link, new FileInfo(Path.Combine(b.Export, link)).LinkTarget);
        Assert.True(File.Exists(Path.Combine(b.Export, "usr/bin/busybox")));

        var reference = Path.Combine(b.Work, "ref");
        Directory.CreateDirectory(reference);
        Run.Shell($"zstd -dc {image} | tar --numeric-owner --xattrs --xattrs-include='*' -xpf - -C {reference}").ShouldSucceed();
        // --no-triggers: pending triggers stay pending, as for the board's dpkg --configure -a; --force-depends: dpkg
        // wants a Pre-Depends configured before it unpacks (libpam-modules on libpam-modules-bin of the same run),
        // an order the board's --configure -a restores
        Run.Program("dpkg", ["--root=" + reference, "--unpack", "--no-triggers", "--force-depends", .. debs], env: new Dictionary<string, string> { ["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin" },
            timeout: TimeSpan.FromMinutes(5)).ShouldSucceed();

        Assert.Equal(File.ReadAllText(Path.Combine(reference, "var/lib/dpkg/status")), File.ReadAllText(Path.Combine(b.Export, "var/lib/dpkg/status")));
        // type, mode, owner, content, link target and xattrs of every path
        var differences = TreeSnapshot.Differences(TreeSnapshot.OfHost(reference), TreeSnapshot.OfExport(b.Export), Ignored, "dpkg");
        Assert.True(differences.Count == 0, $"{differences.Count} difference(s):\n" + string.Join('\n', differences.Take(60)));

        // the board's part: dpkg --configure -a, here on a copy of our export with its owners made real
        var copy = Path.Combine(b.Work, "copy");
        Directory.CreateDirectory(copy);
        var tar = Path.Combine(b.Dir.Path, "export.tar");
        Run.Tool(["exec", b.Export, "--", "tar", "--numeric-owner", "-C", b.Export, "-cf", tar, "."], null, timeout: TimeSpan.FromMinutes(5)).ShouldSucceed();
        Run.Program("tar", "--numeric-owner", "-xpf", tar, "-C", copy).ShouldSucceed();
        Run.Program("dpkg", ["--root=" + copy, "--configure", "-a"], env: new Dictionary<string, string> { ["PATH"] = "/usr/sbin:/usr/bin:/sbin:/bin", ["DEBIAN_FRONTEND"] = "noninteractive" },
            stdin: "", timeout: TimeSpan.FromMinutes(5)).ShouldSucceed();
        Assert.Equal("", Run.Program("dpkg", "--root=" + copy, "--audit").ShouldSucceed().Stdout);
    }

    internal static Dictionary<string, string> ImageVersions(string image)
    {
        var status = Run.Shell($"zstd -dc {image} | tar -xOf - ./var/lib/dpkg/status").ShouldSucceed().Stdout;
        return status.Split("\n\n").Select(s => s.Split('\n')).Where(l => l.Any(x => x == "Status: install ok installed"))
            .ToDictionary(l => l.First(x => x.StartsWith("Package: "))[9..], l => l.First(x => x.StartsWith("Version: "))[9..]);
    }

    /// <summary>The downloaded .debs that are not in the image at that version (the rest would be no-ops both ways).</summary>
    internal static List<string> Newer(string image, List<string> debs)
    {
        var installed = ImageVersions(image);
        return debs.Where(d =>
        {
            var fields = Run.Program("dpkg-deb", "-f", d, "Package", "Version").ShouldSucceed().Stdout.Split('\n');
            var (name, version) = (fields[0][9..], fields[1][9..]);
            return !installed.TryGetValue(name, out var v) || v != version;
        }).ToList();
    }
}
