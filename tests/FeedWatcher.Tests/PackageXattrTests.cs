using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.FeedWatcher.Tests;

/// <summary>
/// A package member's xattrs (a file capability in its data.tar's PAX SCHILY.xattr.security.capability record)
/// land in files.db as `pseudo tar -x` records them from the same data.tar, as they do when an image is unpacked.
/// (rpm's %caps, which live in the header, are checked by RpmDifferentialTests against rpm itself.)
/// </summary>
public sealed class PackageXattrTests
{
    [Fact]
    public void A_file_capability_in_a_packages_data_tar_is_recorded_as_pseudo_tar_records_it()
    {
        Run.RequirePeer("pseudo");
        Run.RequirePeer("setcap");
        Run.RequirePeer("sqlite3");
        using var b = new FeedUpdateTests.Build();
        b.Update().ShouldSucceed();
        using var work = new ScratchDir("rfe-pkgxattr");
        if (Run.IsRoot) Run.Program("chown", $"{Run.NobodyId}:{Run.NobodyId}", work.Path).ShouldSucceed();
        // the data.tar as OE's packaging makes it: real GNU tar --xattrs under pseudo, after setcap under pseudo
        Run.Shell($"""
            set -e
            cd {work.Path} && mkdir -p t/usr/bin c st ref refst
            printf 'ping\n' > t/usr/bin/ping && chmod 755 t/usr/bin/ping
            export PSEUDO_PREFIX=/usr
            PSEUDO_LOCALSTATEDIR=$PWD/st pseudo sh -c 'chown -R 0:0 t && setcap cap_net_raw+ep t/usr/bin/ping && tar --xattrs --xattrs-include="*" --numeric-owner --format=posix -C t -czf data.tar.gz .'
            PSEUDO_LOCALSTATEDIR=$PWD/st pseudo -S
            PSEUDO_LOCALSTATEDIR=$PWD/refst pseudo tar --xattrs --xattrs-include='*' -xpzf data.tar.gz -C ref
            PSEUDO_LOCALSTATEDIR=$PWD/refst pseudo -S
            printf 'Package: capping\nVersion: 1.0\nArchitecture: core2-64\nMaintainer: t\nDescription: t\n' > c/control
            tar --numeric-owner --owner=0 --group=0 -C c -czf control.tar.gz ./control
            echo 2.0 > debian-binary
            ar rc {b.Feed}/capping_1.0_core2-64.ipk debian-binary control.tar.gz data.tar.gz
            """, asUnprivileged: true).ShouldSucceed();
        Assert.Contains("SCHILY.xattr.security.capability", Run.Shell($"zcat {work.Path}/data.tar.gz | strings").ShouldSucceed().Stdout);
        var pseudoSays = Xattrs(Path.Combine(work.Path, "refst/files.db"), Path.Combine(work.Path, "ref/usr/bin/ping"));
        Assert.Equal("security.capability=0100000200200000000000000000000000000000", pseudoSays);

        b.Update("--install", "capping").ShouldSucceed();
        Assert.Equal(pseudoSays, Xattrs(Path.Combine(b.Export + ".pseudo_state", "files.db"), Path.Combine(b.Export, "usr/bin/ping")));
        Assert.Contains("clean:", Run.Tool("check", b.Export).ShouldSucceed().Stdout);
    }

    private static string Xattrs(string db, string path) =>
        Run.Program("sqlite3", "-cmd", ".timeout 10000", db,
            $"SELECT x.name || '=' || hex(x.value) FROM xattrs x JOIN files f ON f.dev = x.dev AND f.ino = x.ino WHERE f.path = '{path}' ORDER BY x.name").ShouldSucceed().Stdout.Trim();
}
