using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.FeedWatcher.Tests;

/// <summary>rpm feeds: packages built by rpmbuild (gzip and zstd payloads), owners by name via the export's passwd/group.</summary>
public sealed class RpmFeedTests
{
    private static string Rpm(OeFeedBuild b, string version, string release, string confContent, string payload, string extraFiles = "")
    {
        var built = BuildRpm(b.Work, version, release, confContent, payload, extraFiles);
        var dest = Path.Combine(b.FeedDir("rpm", "core2_64"), Path.GetFileName(built));
        File.Copy(built, dest, true);
        b.Own();
        return dest;
    }

    private static string BuildRpm(string work, string version, string release, string confContent, string payload, string extraFiles = "")
    {
        var top = Path.Combine(work, $"rpm-{Guid.NewGuid():N}");
        Directory.CreateDirectory(top);
        var spec = Path.Combine(top, "hello.spec");
        File.WriteAllText(spec, $"""
            %global debug_package %{"{nil}"}
            %global __os_install_post %{"{nil}"}
            Name: hello
            Version: {version}
            Release: {release}
            Epoch: 2
            Summary: test package
            License: MIT
            Provides: greeting
            %description
            test
            %install
            mkdir -p %{"{buildroot}"}/usr/bin %{"{buildroot}"}/etc %{"{buildroot}"}/usr/share/hello
            echo {version} > %{"{buildroot}"}/usr/bin/hello
            ln %{"{buildroot}"}/usr/bin/hello %{"{buildroot}"}/usr/bin/hello2
            ln -s hello %{"{buildroot}"}/usr/bin/hi
            printf '{confContent}' > %{"{buildroot}"}/etc/hello.conf
            {(extraFiles.Length > 0 ? $"echo old > %{{buildroot}}{extraFiles}" : "")}
            %files
            %attr(0755,root,root) /usr/bin/hello
            %attr(0755,root,root) /usr/bin/hello2
            /usr/bin/hi
            %dir %attr(0750,root,messagebus) /usr/share/hello
            %attr(0640,root,messagebus) %config(noreplace) /etc/hello.conf
            {extraFiles}
            """);
        Run.Program("rpmbuild", "-bb", "--quiet", "--define", $"_topdir {top}", "--define", $"_binary_payload {payload}", "--target", "x86_64", spec).ShouldSucceed();
        return Directory.EnumerateFiles(Path.Combine(top, "RPMS"), "*.rpm", SearchOption.AllDirectories).Single();
    }

    [Fact]
    public void Packages_the_image_rpmdb_lists_are_upgraded_with_their_file_lists_and_conffile_digests()
    {
        Run.RequirePeer("rpm");
        using var scratch = new ScratchDir("rfe-rpmimg");
        var v1 = BuildRpm(scratch.Path, "1.0", "r0", "conf=1\\n", "w9.gzdio", "/usr/share/hello/old.txt");
        // the image: real rpm installs hello 1.0 into the root, so its rpmdb.sqlite lists it
        using var b = new OeFeedBuild($"mkdir -p var/lib/rpm && rpm --root \"$PWD\" --dbpath /var/lib/rpm -i --nodeps --noscripts {v1} && rm -f var/lib/rpm/.rpm.lock var/lib/rpm/rpmdb.sqlite-shm && test ! -s var/lib/rpm/rpmdb.sqlite-wal && rm -f var/lib/rpm/rpmdb.sqlite-wal", []);
        Assert.Equal("1.0\n", File.ReadAllText(Path.Combine(b.Work, "rootfs/usr/bin/hello")));
        b.Update("--no-feeds").ShouldSucceed();
        File.WriteAllText(Path.Combine(b.Export, "etc/hello.conf"), "conf=mine\n");
        Rpm(b, "1.1", "r0", "conf=2\\n", "w19.zstdio");
        var output = b.Update().ShouldSucceed().Stdout;
        Assert.Contains("Upgrading packages\n  hello 2:1.0-r0 → 2:1.1-r0", output);
        Assert.Contains("kept your /etc/hello.conf, new one is /etc/hello.conf.rpmnew", output);
        Assert.False(File.Exists(Path.Combine(b.Export, "usr/share/hello/old.txt")));
        Assert.Equal("1.1\n", File.ReadAllText(Path.Combine(b.Export, "usr/bin/hello")));
        Assert.False(File.Exists(Path.Combine(b.Export, "var/lib/rpm/rpmdb.sqlite-shm"))); // the image's rpmdb is only read, from a copy
        Assert.Contains("clean:", b.Check().ShouldSucceed().Stdout);
        Assert.Contains("up to date", b.Update().ShouldSucceed().Stdout);
    }

    private static string Row(OeFeedBuild b, string relative) =>
        Run.Program("sqlite3", Path.Combine(b.Export + ".pseudo_state", "files.db"),
            $"SELECT uid, gid, printf('%o', mode) FROM files WHERE path = '{b.Export}/{relative}'").ShouldSucceed().Stdout.Trim();

    [Fact]
    public void Rpm_install_then_upgrade_with_owner_names_hard_links_and_a_kept_conffile()
    {
        Run.RequirePeer("rpmbuild");
        Run.RequirePeer("sqlite3");
        using var b = new OeFeedBuild("mkdir -p var/lib/rpm", []);
        var v1 = Rpm(b, "1.0", "r0", "conf=1\\n", "w9.gzdio", "/usr/share/hello/old.txt");
        var first = b.Update("--install", "hello").ShouldSucceed().Stdout;
        Assert.Contains("  hello 2:1.0-r0", first);
        Assert.DoesNotContain("is not updated", first);
        Assert.Equal("hello-1.0-r0.x86_64\n", Query(b, "hello"));
        Assert.Equal("1.0\n", File.ReadAllText(Path.Combine(b.Export, "usr/bin/hello")));
        Assert.Equal("0|102|100640", Row(b, "etc/hello.conf"));
        Assert.Equal("0|102|40750", Row(b, "usr/share/hello"));
        Assert.Equal("hello", new FileInfo(Path.Combine(b.Export, "usr/bin/hi")).LinkTarget);
        var ino = Run.Program("stat", "-c", "%i", Path.Combine(b.Export, "usr/bin/hello"), Path.Combine(b.Export, "usr/bin/hello2")).ShouldSucceed().Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(ino[0], ino[1]); // a hard link stays one
        Assert.Contains("clean:", b.Check().ShouldSucceed().Stdout);

        File.WriteAllText(Path.Combine(b.Export, "etc/hello.conf"), "conf=mine\n");
        File.Delete(v1);
        Rpm(b, "1.1", "r0", "conf=2\\n", "w19.zstdio");
        var second = b.Update().ShouldSucceed().Stdout;
        Assert.Contains("hello 2:1.0-r0 → 2:1.1-r0", second);
        Assert.Contains("kept your /etc/hello.conf, new one is /etc/hello.conf.rpmnew", second);
        Assert.Equal("conf=mine\n", File.ReadAllText(Path.Combine(b.Export, "etc/hello.conf")));
        Assert.Equal("conf=2\n", File.ReadAllText(Path.Combine(b.Export, "etc/hello.conf.rpmnew")));
        Assert.False(File.Exists(Path.Combine(b.Export, "usr/share/hello/old.txt")));
        Assert.Equal("1.1\n", File.ReadAllText(Path.Combine(b.Export, "usr/bin/hello")));
        Assert.Equal("hello-1.1-r0.x86_64\n", Query(b, "hello"));
        Assert.Contains("clean:", b.Check().ShouldSucceed().Stdout);
        Assert.Contains("up to date", b.Update().ShouldSucceed().Stdout);
    }

    /// <summary>rpm -q on the export's rpmdb, as the board would run it (under pseudo, so files rpm makes are recorded).</summary>
    private static string Query(OeFeedBuild b, string name) =>
        Run.Tool(["exec", b.Export, "--", "rpm", "--root", b.Export, "--dbpath", "/var/lib/rpm", "-q", name], new Dictionary<string, string> { ["LC_ALL"] = "C" }).ShouldSucceed().Stdout;

    /// <summary>
    /// Without an rpm program the rpmdb is left alone and the output says why; the applied package is still known
    /// to the next run from our own record.
    /// </summary>
    [Fact]
    public void Without_an_rpm_program_the_rpmdb_is_left_and_the_output_says_why()
    {
        Run.RequirePeer("rpmbuild");
        using var b = new OeFeedBuild("mkdir -p var/lib/rpm", []);
        Rpm(b, "1.0", "r0", "conf=1\\n", "w9.gzdio");
        // PATH with dotnet only (the build has no rpm-native)
        var dotnet = Path.GetDirectoryName(new FileInfo(Run.RequirePeer("dotnet")).ResolveLinkTarget(true)?.FullName ?? Run.RequirePeer("dotnet"))!;
        var path = new Dictionary<string, string>(b.Env) { ["PATH"] = dotnet };
        var output = Run.Tool(["update", OeFeedBuild.Image, "--install", "hello"], path, cwd: b.Dir.Path).ShouldSucceed().Stdout;
        Assert.Contains("rpmdb (var/lib/rpm) is not updated (no rpm program found", output);
        Assert.False(File.Exists(Path.Combine(b.Export, "var/lib/rpm/rpmdb.sqlite")));
        Assert.Contains("up to date", Run.Tool(["update", OeFeedBuild.Image], path, cwd: b.Dir.Path).ShouldSucceed().Stdout);
    }

    /// <summary>
    /// A package the image manifest no longer lists is removed, and rpm's database forgets it as `rpm -e --justdb`
    /// would: `rpm -q` says it is not installed, the other package stays.
    /// </summary>
    [Fact]
    public void A_package_the_manifest_drops_is_removed_from_the_files_and_the_rpmdb()
    {
        Run.RequirePeer("rpmbuild");
        using var scratch = new ScratchDir("rfe-rpmrm");
        var keep = RpmDifferentialTests.Build(scratch.Path, RpmDifferentialTests.Spec("keeper", "1.0", "mkdir -p %{buildroot}/usr/bin && echo k > %{buildroot}/usr/bin/keeper", "/usr/bin/keeper"));
        var drop = RpmDifferentialTests.Build(scratch.Path, RpmDifferentialTests.Spec("dropped", "1.0", "mkdir -p %{buildroot}/usr/bin && echo d > %{buildroot}/usr/bin/dropped", "/usr/bin/dropped"));
        using var b = new OeFeedBuild($"mkdir -p var/lib/rpm && rpm --root \"$PWD\" --dbpath /var/lib/rpm -i --nodeps {keep} {drop} && rm -f var/lib/rpm/.rpm.lock var/lib/rpm/rpmdb.sqlite-shm var/lib/rpm/rpmdb.sqlite-wal",
            ["keeper x86_64 1.0-1", "dropped x86_64 1.0-1"]);
        b.Update().ShouldSucceed();
        Assert.Equal("dropped-1.0-1.x86_64\n", Query(b, "dropped"));
        File.WriteAllLines(Path.Combine(b.ImageDir, $"{OeFeedBuild.Image}-qemux86-64.rootfs.manifest"), ["keeper x86_64 1.0-1"]);
        b.Own();
        var output = b.Update().ShouldSucceed().Stdout;
        Assert.Contains("Removing\n  dropped 1.0-1", output);
        Assert.False(File.Exists(Path.Combine(b.Export, "usr/bin/dropped")));
        Assert.True(File.Exists(Path.Combine(b.Export, "usr/bin/keeper")));
        var q = Run.Tool(["exec", b.Export, "--", "rpm", "--root", b.Export, "--dbpath", "/var/lib/rpm", "-q", "dropped", "keeper"], new Dictionary<string, string> { ["LC_ALL"] = "C" });
        Assert.Equal("package dropped is not installed\nkeeper-1.0-1.x86_64\n", q.Stdout);
        Assert.Contains("clean:", b.Check().ShouldSucceed().Stdout);
    }
}
