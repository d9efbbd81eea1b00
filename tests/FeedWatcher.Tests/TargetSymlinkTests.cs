using System.Security.Cryptography;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.FeedWatcher.Tests;

/// <summary>
/// Symlinks on the target: the ones the image has (merged /usr) are followed as the board's dpkg/opkg would
/// follow them; the ones a board plants (it is root on its side) never lead a read or a write out of the export.
/// </summary>
public sealed class TargetSymlinkTests
{
    private static string Export(FeedUpdateTests.Build b, string rel) => Path.Combine(b.Export, rel);

    [Fact]
    public void Merged_usr_symlinks_are_followed_and_existing_directories_keep_owner_and_mode()
    {
        using var b = new FeedUpdateTests.Build();
        b.Update().ShouldSucceed();
        // the image's /usr merge as the board sees it, and a directory with its own owner and mode
        Run.Shell($"""
            cd {b.Export} && mkdir -p usr/sbin usr/lib var/cache/app && mv bin/* usr/bin/ 2>/dev/null; rm -rf bin lib sbin
            ln -s usr/bin bin && ln -s usr/lib lib && ln -s /usr/sbin sbin
            """, asUnprivileged: true).ShouldSucceed();
        Run.Tool("check", b.Export, "--repair").ShouldSucceed();
        Run.Tool(["exec", b.Export, "--", "sh", "-c", $"chown 42:7 {b.Export}/var/cache/app && chmod 0700 {b.Export}/var/cache/app"], null).ShouldSucceed();

        b.Ipk("mu", "1.0-r0", "core2-64", "/bin/mu=tool;/lib/libmu.so.1=lib;/sbin/mud=daemon;/var/cache/app/seed=s");
        b.Update("--install", "mu").ShouldSucceed();
        foreach (var (link, target) in new[] { ("bin", "usr/bin"), ("lib", "usr/lib"), ("sbin", "/usr/sbin") })
            Assert.Equal(target, new FileInfo(Export(b, link)).LinkTarget);
        Assert.Equal("tool", File.ReadAllText(Export(b, "usr/bin/mu")));
        Assert.Equal("lib", File.ReadAllText(Export(b, "usr/lib/libmu.so.1")));
        Assert.Equal("daemon", File.ReadAllText(Export(b, "usr/sbin/mud")));
        // opkg's .list names the paths as the package ships them
        Assert.Contains("/bin/mu\n", File.ReadAllText(Export(b, "var/lib/opkg/info/mu.list")));
        var stat = Run.Tool(["exec", b.Export, "--", "stat", "-c", "%u:%g %a", Export(b, "var/cache/app"), Export(b, "usr/bin/mu")], null).ShouldSucceed().Stdout;
        Assert.Equal("42:7 700\n0:0 755\n", stat);
        Assert.Contains("clean:", Run.Tool("check", b.Export).ShouldSucceed().Stdout);

        // an upgrade that drops a file removes it where it really is, and leaves the symlinks alone
        File.Delete(Path.Combine(b.Feed, "mu_1.0-r0_core2-64.ipk"));
        b.Ipk("mu", "1.1-r0", "core2-64", "/bin/mu=tool2;/var/cache/app/seed=s");
        b.Update().ShouldSucceed();
        Assert.False(File.Exists(Export(b, "usr/lib/libmu.so.1")));
        Assert.False(File.Exists(Export(b, "usr/sbin/mud")));
        Assert.Equal("usr/lib", new FileInfo(Export(b, "lib")).LinkTarget);
        Assert.Equal("tool2", File.ReadAllText(Export(b, "usr/bin/mu")));
        Assert.Contains("clean:", Run.Tool("check", b.Export).ShouldSucceed().Stdout);
    }

    [Fact]
    public void Symlinks_a_board_plants_never_lead_reads_or_writes_out_of_the_export()
    {
        using var canary = new ScratchDir("rfe-canary");
        foreach (var (name, text) in new[] { ("secret", "ssh key\n"), ("passwd", "evil:x:0:0::/:/bin/sh\n"), ("group", "evil:x:0:\n"), ("status", "Package: evil\nVersion: 9\nStatus: install ok installed\n\n") })
            File.WriteAllText(canary[name], text);
        Directory.CreateDirectory(canary["etc"]);
        var before = Snapshot(canary.Path);

        using var b = new FeedUpdateTests.Build();
        b.Update().ShouldSucceed();
        b.Ipk("daemon", "1.0-r0", "core2-64", "/etc/daemon.conf=port=1;/usr/share/daemon/data=d1", conffiles: "/etc/daemon.conf");
        b.Update("--install", "daemon").ShouldSucceed();
        // what a root shell on the board can do to the export
        Run.Shell($"""
            cd {b.Export}
            rm etc/daemon.conf && ln -s {canary["secret"]} etc/daemon.conf
            rm -rf usr/share/daemon && ln -s {canary.Path} usr/share/daemon
            rm etc/passwd && ln -s {canary["passwd"]} etc/passwd
            rm etc/group && ln -s ../../../../../../../../{canary["group"]} etc/group
            ln -s / var/lib/opkg/info/up
            """, asUnprivileged: true).ShouldSucceed();
        Run.Tool("check", b.Export, "--repair").ShouldSucceed(); // the 9P server records what a board makes

        File.Delete(Path.Combine(b.Feed, "daemon_1.0-r0_core2-64.ipk"));
        b.Ipk("daemon", "1.1-r0", "core2-64", "/etc/daemon.conf=port=2;/usr/share/daemon/data=d2;/usr/share/daemon/etc/more=m", conffiles: "/etc/daemon.conf");
        var output = b.Update().ShouldSucceed().Stdout;
        Assert.Equal(before, Snapshot(canary.Path));
        Assert.DoesNotContain("evil", output);
        // the absolute target taken inside the export leads nowhere there: the package's directory replaces the symlink, as dpkg does
        Assert.Null(new FileInfo(Path.Combine(b.Export, "usr/share/daemon")).LinkTarget);
        Assert.Equal("d2", File.ReadAllText(Path.Combine(b.Export, "usr/share/daemon/data")));
        Assert.Equal("port=2", File.ReadAllText(Path.Combine(b.Export, "etc/daemon.conf")));
        Assert.Contains("clean:", Run.Tool("check", b.Export).ShouldSucceed().Stdout);

        // the whole state directory and etc pointing out of the export
        Run.Shell($"cd {b.Export} && rm -rf var/lib/opkg && ln -s {canary.Path} var/lib/opkg && rm -rf etc && ln -s {canary.Path} etc", asUnprivileged: true).ShouldSucceed();
        b.Update().ShouldSucceed();
        Assert.Equal(before, Snapshot(canary.Path));
    }

    /// <summary>
    /// rpm: the database directory or the database planted as a symlink out of the export is refused with a
    /// message naming it; the rpm program never sees the export (it works on a copy), nothing outside changes.
    /// </summary>
    [Fact]
    public void An_rpm_database_planted_as_a_symlink_out_of_the_export_is_refused()
    {
        Run.RequirePeer("rpmbuild");
        using var canary = new ScratchDir("rfe-canary");
        File.WriteAllText(canary["rpmdb.sqlite"], "not a database\n");
        var before = Snapshot(canary.Path);
        using var b = new OeFeedBuild("mkdir -p var/lib/rpm", []);
        b.Update("--no-feeds").ShouldSucceed();
        Run.Shell($"cd {b.Export} && rm -rf var/lib/rpm && ln -s {canary.Path} var/lib/rpm", asUnprivileged: true).ShouldSucceed();
        var refused = b.Update();
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("/var/lib/rpm is a symlink that leads to no directory inside the export", refused.All);

        Run.Shell($"cd {b.Export} && rm var/lib/rpm && mkdir var/lib/rpm && ln -s {canary["rpmdb.sqlite"]} var/lib/rpm/rpmdb.sqlite", asUnprivileged: true).ShouldSucceed();
        refused = b.Update();
        Assert.NotEqual(0, refused.ExitCode);
        Assert.Contains("/var/lib/rpm/rpmdb.sqlite is a symlink: refusing", refused.All);
        Assert.Equal(before, Snapshot(canary.Path));
    }

    /// <summary>Every file below a directory with its bytes' hash.</summary>
    private static string Snapshot(string dir) => string.Join('\n', Directory.EnumerateFileSystemEntries(dir, "*", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
        .Select(p => $"{p} {(File.Exists(p) ? Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(p))) : "dir")}"));
}
