using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.FeedWatcher.Tests;

/// <summary>
/// `update` against rpm itself (docs/FEEDS.md, "rpm"): real rpms built by rpmbuild at test time with %config and
/// %config(noreplace) files the user edited, non-root owners (%attr), a file capability (%caps), a file the new
/// version drops and a new package. The image is made by real `rpm -i` as root; the reference is `rpm --root REF
/// -U` as root on the same image. `rpm -qa` must agree, as must every path's type, mode, owner, content, link
/// target and xattrs outside the database, and `rpm -V` on our export (under pseudo with our files.db, as the
/// board sees it) must say what it says on the reference: nothing but the user's edited conffile.
/// </summary>
public sealed class RpmDifferentialTests
{
    internal static string Spec(string name, string version, string install, string files, string requires = "") => $"""
        %global debug_package %{"{nil}"}
        %global __os_install_post %{"{nil}"}
        Name: {name}
        Version: {version}
        Release: 1
        Summary: differential test package {name}
        License: MIT
        BuildArch: x86_64
        {requires}
        %description
        test
        %install
        {install}
        %files
        {files}
        """;

    internal static string Build(string work, string spec)
    {
        var top = Path.Combine(work, $"rpm-{Guid.NewGuid():N}");
        Directory.CreateDirectory(top);
        File.WriteAllText(Path.Combine(top, "p.spec"), spec);
        Run.Program("rpmbuild", "-bb", "--quiet", "--define", $"_topdir {top}", "--target", "x86_64", Path.Combine(top, "p.spec")).ShouldSucceed();
        return Directory.EnumerateFiles(Path.Combine(top, "RPMS"), "*.rpm", SearchOption.AllDirectories).Single();
    }

    private static string Pingd(string work, string version, bool withOld) => Build(work, Spec("pingd", version,
        $"""
        mkdir -p %{"{buildroot}"}/usr/bin %{"{buildroot}"}/etc %{"{buildroot}"}/usr/share/pingd %{"{buildroot}"}/var/spool/pingd
        echo 'binary {version}' > %{"{buildroot}"}/usr/bin/pingd
        ln -s pingd %{"{buildroot}"}/usr/bin/pd
        echo 'noreplace {version}' > %{"{buildroot}"}/etc/pingd.conf
        echo 'plain {version}' > %{"{buildroot}"}/etc/pingd.plain
        echo 'same' > %{"{buildroot}"}/etc/pingd.same
        echo 'data {version}' > %{"{buildroot}"}/usr/share/pingd/data
        {(withOld ? $"echo old > %{{buildroot}}/usr/share/pingd/old.txt" : "")}
        """,
        $"""
        %caps(cap_net_raw=ep) %attr(0755,root,root) /usr/bin/pingd
        /usr/bin/pd
        %config(noreplace) %attr(0640,root,messagebus) /etc/pingd.conf
        %config %attr(0644,root,root) /etc/pingd.plain
        %config(noreplace) /etc/pingd.same
        %dir %attr(0750,messagebus,messagebus) /usr/share/pingd
        %attr(0644,messagebus,messagebus) /usr/share/pingd/data
        %dir %attr(2770,root,messagebus) /var/spool/pingd
        {(withOld ? "/usr/share/pingd/old.txt" : "")}
        """));

    private static string Helper(string work) => Build(work, Spec("pinghelp", "2.0",
        """mkdir -p %{buildroot}/usr/sbin && echo helper > %{buildroot}/usr/sbin/pinghelp""",
        "%caps(cap_net_admin,cap_net_raw+ep) %attr(4755,root,root) /usr/sbin/pinghelp", "Requires: pingd"));

    private static RunResult Rpm(string root, params string[] args) =>
        Run.Program("rpm", ["--root", root, "--dbpath", "/var/lib/rpm", .. args], env: new Dictionary<string, string> { ["LC_ALL"] = "C" });

    [Fact]
    public void Update_equals_rpm_upgrade_on_real_rpms_and_rpm_verify_agrees()
    {
        Run.RequirePeer("rpmbuild");
        Run.RequirePeer("sqlite3");
        Run.RequirePeer("getfattr");
        Assert.True(Run.IsRoot, "the image and the reference are made by rpm as real root (owners, capabilities)");
        using var scratch = new ScratchDir("rfe-rpmdiff");
        var v1 = Pingd(scratch.Path, "1.0", withOld: true);
        var v2 = Pingd(scratch.Path, "1.1", withOld: false);
        var helper = Helper(scratch.Path);

        // the image: passwd/group, then rpm -i as root (real owners and capabilities), packed with xattrs
        var rootfs = Path.Combine(scratch.Path, "rootfs");
        var image = Path.Combine(scratch.Path, "image.rootfs.tar.gz");
        Run.Shell($"""
            set -e
            mkdir -p {rootfs}/etc {rootfs}/var/lib/rpm && cd {rootfs}
            printf 'root:x:0:0:root:/root:/bin/sh\nmessagebus:x:101:102::/nonexistent:/bin/false\n' > etc/passwd
            printf 'root:x:0:\nmessagebus:x:102:\n' > etc/group
            rpm --root "$PWD" --dbpath /var/lib/rpm -i --nodeps {v1}
            rm -f var/lib/rpm/.rpm.lock var/lib/rpm/rpmdb.sqlite-shm var/lib/rpm/rpmdb.sqlite-wal
            tar --numeric-owner --xattrs --xattrs-include='*' --sort=name --format=posix -czf {image} .
            """).ShouldSucceed();
        Assert.Contains("security.capability", Run.Program("getfattr", "-d", "-m-", Path.Combine(rootfs, "usr/bin/pingd")).ShouldSucceed().Stdout);

        using var b = new OeFeedBuild(image);
        b.Update("--no-feeds").ShouldSucceed();
        var reference = Path.Combine(scratch.Path, "ref");
        Directory.CreateDirectory(reference);
        Run.Program("tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-xpzf", image, "-C", reference).ShouldSucceed();
        // the user edits both kinds of %config and one the new version leaves unchanged, on the board and on the reference
        foreach (var (file, text) in new[] { ("etc/pingd.conf", "mine\n"), ("etc/pingd.plain", "mine too\n"), ("etc/pingd.same", "edited\n") })
        {
            Run.Tool(["exec", b.Export, "--", "sh", "-c", $"printf '{text.TrimEnd()}\\n' > {Path.Combine(b.Export, file)}"], null).ShouldSucceed();
            File.WriteAllText(Path.Combine(reference, file), text);
        }

        foreach (var rpm in new[] { v2, helper }) File.Copy(rpm, Path.Combine(b.FeedDir("rpm", "x86_64"), Path.GetFileName(rpm)));
        b.Own();
        var output = b.Update("--install", "pinghelp").ShouldSucceed().Stdout;
        Assert.Contains(" 0 problem(s)", output);
        Assert.DoesNotContain("rpmdb (var/lib/rpm) is not updated", output);
        Rpm(reference, "-U", "--nodeps", v2, helper).ShouldSucceed();

        // the database file is recorded as root's, nothing of sqlite's beside it
        Assert.Equal("0|0|100644", Row(b.Export, "var/lib/rpm/rpmdb.sqlite"));
        Assert.Equal("", Row(b.Export, "var/lib/rpm/rpmdb.sqlite-wal"));

        var theirs = TreeSnapshot.OfHost(reference);
        var ours = TreeSnapshot.OfExport(b.Export);
        var differences = TreeSnapshot.Differences(theirs, ours, p => p.StartsWith("var/lib/rpm/", StringComparison.Ordinal) || p == "etc/rootfs-export-updated", "rpm");
        Assert.True(differences.Count == 0, $"{differences.Count} difference(s):\n" + string.Join('\n', differences));
        Assert.Contains("security.capability=0x0100000200200000", ours["usr/bin/pingd"]);

        // rpm -V: on the reference as root; on ours under pseudo with our files.db (owners, modes, capabilities)
        var verifyTheirs = Rpm(reference, "-Va").Stdout;
        var verifyOurs = Run.Tool(["exec", b.Export, "--", "rpm", "--root", b.Export, "--dbpath", "/var/lib/rpm", "-Va"], new Dictionary<string, string> { ["LC_ALL"] = "C" }).Stdout;
        Assert.Equal(verifyTheirs, verifyOurs);
        // only the user's edits rpm kept: the noreplace file (new one beside it as .rpmnew) and the one the package did not change
        Assert.Equal(["S.5....T.  c /etc/pingd.conf", "S.5....T.  c /etc/pingd.same"], verifyOurs.Split('\n', StringSplitOptions.RemoveEmptyEntries).Order());


        // the same packages at the same versions (rpm as root last: it may leave a root-owned -shm beside the database)
        string Qa(string root) => string.Join('\n', Rpm(root, "-qa", "--qf", "%{NAME}-%{EPOCHNUM}:%{VERSION}-%{RELEASE}.%{ARCH}\\n").ShouldSucceed().Stdout.Split('\n').Order());
        Assert.Equal(Qa(reference), Qa(b.Export));
        Assert.Equal(Rpm(reference, "-ql", "pingd").Stdout, Rpm(b.Export, "-ql", "pingd").Stdout);

    }

    private static string Row(string export, string relative) =>
        Run.Program("sqlite3", export + ".pseudo_state/files.db",
            $"SELECT uid, gid, printf('%o', mode) FROM files WHERE path = '{export}/{relative}'").ShouldSucceed().Stdout.Trim();
}
