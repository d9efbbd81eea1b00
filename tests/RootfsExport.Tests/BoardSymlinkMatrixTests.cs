using System.Security.Cryptography;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Tests;

/// <summary>
/// Issue #18's matrix: a board-made symlink (the board is root on its side and writes the export over 9P) at
/// every path a host command touches, in turn, for every command: `update` (with a package upgrade that has
/// a conffile, and again with a newer image), `bootspec`, `cmdline`, `payload modules`, `check --repair` and
/// `exec`. None of them reads or writes outside the export: canary files outside are compared byte for byte,
/// and their text reaches neither the export nor the command's output. Refusing is fine; following is not.
/// </summary>
public sealed class BoardSymlinkMatrixTests
{
    private const string Secret = "CANARY-5d2e";
    private const string Image = "demo-image";

    /// <summary>Every path a command touches, and where in the canary directory the board points it.</summary>
    public static TheoryData<string, string> Paths => new()
    {
        { "etc", "" },
        { "etc/daemon", "" },                       // a conffile's parent directory
        { "etc/daemon/daemon.conf", "secret" },     // a conffile
        { "etc/passwd", "passwd" },
        { "etc/group", "group" },
        { "etc/os-release", "os-release" },
        { "loader", "" },
        { "loader/entries", "entries" },
        { "loader/rootfs-export.json", "secret" },  // boot entry settings, carried over to a newer image
        { "boot", "" },
        { "boot/bzImage-6.6.1", "secret" },
        { "lib/modules", "modules" },
        { "var/lib/opkg", "" },
        { "var/lib/dpkg", "" },
        { "var/lib/rpm", "" },
    };

    /// <summary>The package database a path belongs to decides the image: opkg unless the path is dpkg's or rpm's.</summary>
    private static string FormatFor(string rel) => rel.StartsWith("var/lib/dpkg") ? "deb" : rel.StartsWith("var/lib/rpm") ? "rpm" : "ipk";

    [Theory]
    [MemberData(nameof(Paths))]
    public void Update_with_a_package_upgrade_stays_in_the_export(string rel, string target) =>
        UpdateCell(rel, target, newImage: false);

    [Theory]
    [MemberData(nameof(Paths))]
    public void Update_to_a_newer_image_stays_in_the_export(string rel, string target) =>
        UpdateCell(rel, target, newImage: true);

    private static void UpdateCell(string rel, string target, bool newImage)
    {
        using var b = new Build(FormatFor(rel));
        b.Plant(rel, target);
        b.AddUpgrade();
        if (newImage) b.TouchImage();
        var before = b.Snapshot();
        var result = b.Update();
        b.AssertNothingLeaked(before, result);
    }

    /// <summary>The cells above mean something only if, with nothing planted, update really upgrades the package.</summary>
    [Theory]
    [InlineData("ipk")]
    [InlineData("deb")]
    public void With_nothing_planted_update_upgrades_daemon(string format)
    {
        using var b = new Build(format);
        b.AddUpgrade();
        b.Update().ShouldSucceed();
        Assert.Equal("d2\n", File.ReadAllText(Path.Combine(b.Export, "usr/share/daemon/data")));
        // an unchanged conffile is replaced (opkg), or left beside as dpkg --unpack leaves it for configure
        var conf = Path.Combine(b.Export, format == "deb" ? "etc/daemon/daemon.conf.dpkg-new" : "etc/daemon/daemon.conf");
        Assert.Equal("port=2\n", File.ReadAllText(conf));
        Assert.True(File.Exists(Path.Combine(b.Export, "loader/entries/demo-6.6.1.conf")) || Directory.EnumerateFiles(Path.Combine(b.Export, "loader/entries")).Any());
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void Bootspec_cmdline_payload_check_and_exec_stay_in_the_export(string rel, string target)
    {
        using var b = new Build("ipk");
        b.Plant(rel, target);
        var before = b.Snapshot();
        string[][] commands =
        [
            ["bootspec", b.Export, "--transport", "tcp", "--server", "10.0.2.100"],
            ["cmdline", b.Export, "--transport", "tcp", "--server", "10.0.2.100"],
            ["payload", "modules", b.Export, "-o", b.Dir["modules.cpio"]],
            ["check", "--repair", b.Export],
            ["exec", b.Export, "--", "sh", "-c", "id -un; id -gn; true"],
        ];
        foreach (var args in commands)
        {
            var result = Run.Tool(args, null);
            b.AssertNothingLeaked(before, result);
        }
        if (File.Exists(b.Dir["modules.cpio"])) Assert.DoesNotContain(Secret, File.ReadAllText(b.Dir["modules.cpio"]));
    }

    /// <summary>
    /// An OE-shaped build made here: a tar.gz image whose package database (opkg, dpkg or rpm) lists daemon 1.0
    /// with the conffile /etc/daemon/daemon.conf, a feed of the matching format, a kernel and modules; its export
    /// made by `update` and given boot entries by `bootspec`, as a developer's would be.
    /// </summary>
    private sealed class Build : IDisposable
    {
        public readonly ScratchDir Dir = new("rfe-matrix");
        private readonly string _format;
        private string Root => Dir["build"];
        public string Export => Path.Combine(Root, "export", $"{Image}-qemux86-64");
        private string Outside => Dir["outside"];
        private string ImageTarball => Path.Combine(Root, $"tmp/deploy/images/qemux86-64/{Image}-qemux86-64.rootfs.tar.gz");
        private string FeedDir => Path.Combine(Root, "tmp/deploy", _format, _format == "rpm" ? "core2_64" : "core2-64");

        public Build(string format)
        {
            _format = format;
            Run.Shell($"""
                set -e
                mkdir -p {Root}/conf {Path.GetDirectoryName(ImageTarball)} {FeedDir} {Outside}/entries {Outside}/modules/9.9.9
                echo 'MACHINE ??= "qemux86-64"' > {Root}/conf/local.conf
                r={Dir["rootfs"]}; mkdir -p $r && cd $r
                mkdir -p etc/daemon boot lib/modules/6.6.1/kernel usr/share/daemon var/lib
                printf 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1::/:/bin/false\n' > etc/passwd
                printf 'root:x:0:\ndaemon:x:1:\n' > etc/group
                printf 'ID=demo\nPRETTY_NAME="Demo 1"\nVERSION_ID=1\n' > etc/os-release
                echo port=1 > etc/daemon/daemon.conf; echo d1 > usr/share/daemon/data
                echo kernel > boot/bzImage-6.6.1; echo module > lib/modules/6.6.1/kernel/a.ko; echo 'kernel/a.ko:' > lib/modules/6.6.1/modules.dep
                {PackageDatabase()}
                tar --numeric-owner --owner=0 --group=0 -czf {ImageTarball} .
                cd {Outside}
                echo {Secret} > secret; echo 'leaked{Secret}:x:0:0::/:/bin/sh' > passwd; echo 'leaked{Secret}:x:0:' > group
                printf 'PRETTY_NAME="{Secret}"\n' > os-release; echo 'title {Secret}' > entries/x.conf; echo {Secret} > modules/9.9.9/secret.ko
                printf 'Package: evil\nVersion: 9\nStatus: install ok installed\nDescription: {Secret}\n\n' > status
                chmod -R a+rwX {Dir.Path}
                """).ShouldSucceed();
            Update().ShouldSucceed();
            Run.Tool("bootspec", Export, "--transport", "tcp", "--server", "10.0.2.100").ShouldSucceed();
        }

        private string PackageDatabase() => _format switch
        {
            "ipk" => """
                mkdir -p var/lib/opkg/info
                printf 'Package: daemon\nVersion: 1.0\nArchitecture: core2-64\nStatus: install user installed\nConffiles:\n /etc/daemon/daemon.conf %s\n\n' "$(md5sum < etc/daemon/daemon.conf | cut -c1-32)" > var/lib/opkg/status
                printf '/etc/daemon/daemon.conf\n/usr/share/daemon/data\n' > var/lib/opkg/info/daemon.list
                echo /etc/daemon/daemon.conf > var/lib/opkg/info/daemon.conffiles
                """,
            "deb" => """
                mkdir -p var/lib/dpkg/info var/lib/dpkg/updates
                printf 'Package: daemon\nStatus: install ok installed\nMaintainer: t\nArchitecture: amd64\nVersion: 1.0\nConffiles:\n /etc/daemon/daemon.conf %s\nDescription: test\n\n' "$(md5sum < etc/daemon/daemon.conf | cut -c1-32)" > var/lib/dpkg/status
                printf '/etc/daemon/daemon.conf\n/usr/share/daemon/data\n' > var/lib/dpkg/info/daemon.list
                touch var/lib/dpkg/available
                """,
            _ => "mkdir -p var/lib/rpm && rpm --dbpath $PWD/var/lib/rpm --initdb",
        };

        /// <summary>daemon 1.1 in the feed: a new conffile content and data file.</summary>
        public void AddUpgrade()
        {
            var pkg = Dir["pkg"];
            var script = _format switch
            {
                "ipk" => $"""
                    printf 'Package: daemon\nVersion: 1.1\nArchitecture: core2-64\nMaintainer: t\nDescription: test\n' > c/control
                    echo /etc/daemon/daemon.conf > c/conffiles
                    tar --owner=0 --group=0 -czf control.tar.gz -C c ./control ./conffiles && tar --owner=0 --group=0 -czf data.tar.gz -C d .
                    echo 2.0 > debian-binary && ar rc {FeedDir}/daemon_1.1_core2-64.ipk debian-binary control.tar.gz data.tar.gz
                    """,
                "deb" => $"""
                    mkdir -p d/DEBIAN && printf 'Package: daemon\nVersion: 1.1\nArchitecture: amd64\nMaintainer: t\nDescription: test\n' > d/DEBIAN/control
                    echo /etc/daemon/daemon.conf > d/DEBIAN/conffiles
                    dpkg-deb --root-owner-group -b d {FeedDir}/daemon_1.1_amd64.deb >/dev/null
                    """,
                _ => "true", // an empty rpm feed: update still reads the rpm database
            };
            Run.Shell($"""
                set -e
                mkdir -p {pkg}/c {pkg}/d/etc/daemon {pkg}/d/usr/share/daemon && cd {pkg}
                echo port=2 > d/etc/daemon/daemon.conf; echo d2 > d/usr/share/daemon/data
                {script}
                chmod -R a+rwX {Root}
                """).ShouldSucceed();
        }

        public void TouchImage() => File.SetLastWriteTimeUtc(ImageTarball, DateTime.UtcNow.AddMinutes(1));

        public RunResult Update() => Run.Tool(["update", Image], new Dictionary<string, string> { ["BUILDDIR"] = Root }, cwd: Dir.Path);

        /// <summary>The board's move: the export path becomes a symlink to a host path (absolute, as a board would write it).</summary>
        public void Plant(string rel, string target)
        {
            var p = Path.Combine(Export, rel);
            Run.Program("rm", "-rf", p).ShouldSucceed();
            Directory.CreateDirectory(Path.GetDirectoryName(p)!);
            File.CreateSymbolicLink(p, Path.Combine(Outside, target));
        }

        public string Snapshot() => string.Join('\n', Directory.EnumerateFileSystemEntries(Outside, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
            .Select(p => $"{p} {(File.Exists(p) ? Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(p))) : "dir")}"));

        public void AssertNothingLeaked(string before, RunResult result)
        {
            Assert.Equal(before, Snapshot());
            Assert.DoesNotContain(Secret, result.All);
            Assert.DoesNotContain("   at ", result.Stderr); // refusals are messages, not crashes
            var leaked = Run.Program("grep", "-rl", "--no-messages", Secret, Export).Stdout.Trim();
            Assert.Equal("", leaked);
        }

        public void Dispose() => Dir.Dispose();
    }
}
