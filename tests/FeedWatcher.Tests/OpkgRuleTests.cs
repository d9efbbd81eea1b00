using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.FeedWatcher.Tests;

/// <summary>
/// One test per opkg rule, each naming the opkg function it follows (libopkg/, read in openwrt/opkg-lede; docs/FEEDS.md).
/// </summary>
public sealed class OpkgRuleTests
{
    private static string Stat(string export, params string[] relative) =>
        Run.Tool(["exec", export, "--", "stat", "-c", "%a", .. relative.Select(r => Path.Combine(export, r))], null).ShouldSucceed().Stdout;

    /// <summary>opkg's pkg_extract_control_files_to_dir extracts control.tar into info/ keeping each member's mode.</summary>
    [Fact]
    public void Control_members_keep_their_modes_in_info()
    {
        using var b = new FeedUpdateTests.Build();
        b.Update().ShouldSucceed();
        TestIpk.Write(Path.Combine(b.Feed, "owrt_1.0_core2-64.ipk"), "Package: owrt\nVersion: 1.0\nArchitecture: core2-64\nMaintainer: t\nDescription: t\n",
            [new("/usr/bin/owrt", "x", 0x1ed)], controlMembers: new Dictionary<string, string> { ["postinst-pkg"] = "#!/bin/sh\nexit 0\n", ["notes"] = "text\n" });
        b.Own();
        b.Update("--install", "owrt").ShouldSucceed();
        Assert.Equal("755\n644\n644\n", Stat(b.Export, "var/lib/opkg/info/owrt.postinst-pkg", "var/lib/opkg/info/owrt.notes", "var/lib/opkg/info/owrt.control"));
    }

    /// <summary>
    /// opkg_conf.c reads `option status_file` / `option info_dir` from the target's opkg.conf; PTXdist's points at
    /// /usr/share/opkg. The state is read and written there, nowhere else.
    /// </summary>
    [Fact]
    public void State_is_where_the_targets_opkg_conf_puts_it()
    {
        using var b = new FeedUpdateTests.Build();
        b.Update().ShouldSucceed();
        Run.Shell($"""
            cd {b.Export} && mkdir -p usr/share/opkg etc/opkg && mv var/lib/opkg/status usr/share/opkg/status && mv var/lib/opkg/info usr/share/opkg/info
            rmdir var/lib/opkg
            printf 'arch all 1\noption status_file /usr/share/opkg/status\noption info_dir /usr/share/opkg/info\n' > etc/opkg/opkg.conf
            """, asUnprivileged: true).ShouldSucceed();
        Run.Tool("check", b.Export, "--repair").ShouldSucceed();
        b.Ipk("extra", "1.0-r0", "core2-64", "/usr/bin/extra=x");
        b.Update("--install", "extra").ShouldSucceed();
        Assert.Contains("Package: extra\n", File.ReadAllText(Path.Combine(b.Export, "usr/share/opkg/status")));
        Assert.True(File.Exists(Path.Combine(b.Export, "usr/share/opkg/info/extra.list")));
        Assert.False(Directory.Exists(Path.Combine(b.Export, "var/lib/opkg")));
    }

    private static string Md5(string text) => Convert.ToHexStringLower(System.Security.Cryptography.MD5.HashData(System.Text.Encoding.UTF8.GetBytes(text)));

    /// <summary>
    /// opkg_install.c backup_modified_conffiles + resolve_conffiles: a conffile the user edited is saved, the new one
    /// unpacked, and when the two differ the packaged one goes to &lt;file&gt;-opkg and the user's comes back — also
    /// when the package did not change the file between versions. The status records the packaged file's hash.
    /// </summary>
    [Fact]
    public void An_edited_conffile_is_kept_and_the_packaged_one_written_as_dash_opkg_even_when_unchanged()
    {
        using var b = new FeedUpdateTests.Build();
        b.Update().ShouldSucceed();
        b.Ipk("daemon", "1.0-r0", "core2-64", "/etc/daemon.conf=port=1;/usr/bin/daemon=v1", conffiles: "/etc/daemon.conf");
        b.Update("--install", "daemon").ShouldSucceed();
        Run.Shell($"printf 'port=2 # mine\\n' > {b.Export}/etc/daemon.conf", asUnprivileged: true).ShouldSucceed();
        File.Delete(Path.Combine(b.Feed, "daemon_1.0-r0_core2-64.ipk"));
        b.Ipk("daemon", "1.1-r0", "core2-64", "/etc/daemon.conf=port=1;/usr/bin/daemon=v2", conffiles: "/etc/daemon.conf");
        var output = b.Update().ShouldSucceed().Stdout;
        Assert.Contains("kept your /etc/daemon.conf, new one is /etc/daemon.conf-opkg", output);
        Assert.Equal("port=2 # mine\n", File.ReadAllText(Path.Combine(b.Export, "etc/daemon.conf")));
        Assert.Equal("port=1", File.ReadAllText(Path.Combine(b.Export, "etc/daemon.conf-opkg")));
        Assert.Contains($"Conffiles:\n /etc/daemon.conf {Md5("port=1")}\n", b.Status);
        Assert.Contains("clean:", Run.Tool("check", b.Export).ShouldSucceed().Stdout);
    }

    /// <summary>
    /// backup_modified_conffiles' second loop: a file already at the path of a conffile the old version did not have
    /// (the image's, another package's, the user's) is saved too, so resolve_conffiles keeps it and writes -opkg.
    /// </summary>
    [Fact]
    public void A_file_already_where_a_new_conffile_goes_is_kept_when_it_differs()
    {
        using var b = new FeedUpdateTests.Build();
        b.Update().ShouldSucceed();
        Run.Shell($"printf 'made on the board\\n' > {b.Export}/etc/fresh.conf", asUnprivileged: true).ShouldSucceed();
        Run.Tool("check", b.Export, "--repair").ShouldSucceed();
        b.Ipk("fresh", "1.0-r0", "core2-64", "/etc/fresh.conf=packaged", conffiles: "/etc/fresh.conf");
        b.Update("--install", "fresh").ShouldSucceed();
        Assert.Equal("made on the board\n", File.ReadAllText(Path.Combine(b.Export, "etc/fresh.conf")));
        Assert.Equal("packaged", File.ReadAllText(Path.Combine(b.Export, "etc/fresh.conf-opkg")));
        Assert.Contains($"Conffiles:\n /etc/fresh.conf {Md5("packaged")}\n", b.Status);
    }

    /// <summary>
    /// pkg_hash.c file_hash_set_file_owner ignores names ending in '/' (the data.tar's directories), and
    /// pkg.c pkg_write_filelist writes the files the hash gives the package: info/&lt;pkg&gt;.list names no directory.
    /// </summary>
    [Fact]
    public void The_list_names_files_and_links_but_no_directory()
    {
        using var b = new FeedUpdateTests.Build();
        b.Update().ShouldSucceed();
        b.Ipk("lister", "1.0-r0", "core2-64", "/usr/share/lister/deep/file=x;/usr/bin/lister=y");
        b.Update("--install", "lister").ShouldSucceed();
        var list = File.ReadAllLines(Path.Combine(b.Export, "var/lib/opkg/info/lister.list")).Order(StringComparer.Ordinal);
        Assert.Equal(["/usr/bin/lister", "/usr/share/lister/deep/file"], list);
        Assert.True(Directory.Exists(Path.Combine(b.Export, "usr/share/lister/deep")));
    }

    /// <summary>
    /// opkg_install.c remove_obsolesced_files unlinks the old version's files the new one lacks and skips
    /// directories (file_is_dir): an emptied directory stays.
    /// </summary>
    [Fact]
    public void Obsolete_files_go_and_their_emptied_directory_stays()
    {
        using var b = new FeedUpdateTests.Build();
        b.Update().ShouldSucceed();
        b.Ipk("shrink", "1.0-r0", "core2-64", "/usr/share/shrink/old/file=x;/usr/bin/shrink=1");
        b.Update("--install", "shrink").ShouldSucceed();
        File.Delete(Path.Combine(b.Feed, "shrink_1.0-r0_core2-64.ipk"));
        b.Ipk("shrink", "1.1-r0", "core2-64", "/usr/bin/shrink=2");
        b.Update().ShouldSucceed();
        Assert.False(File.Exists(Path.Combine(b.Export, "usr/share/shrink/old/file")));
        Assert.True(Directory.Exists(Path.Combine(b.Export, "usr/share/shrink/old")));
        Assert.Contains("clean:", Run.Tool("check", b.Export).ShouldSucceed().Stdout);
    }

    /// <summary>
    /// opkg_install.c satisfy_dependencies_for prints "Cannot satisfy the following dependencies" with every
    /// unresolved one (pkg_hash_fetch_unsatisfied_dependencies collects them all); nothing is installed.
    /// </summary>
    [Fact]
    public void Install_names_every_missing_dependency_and_installs_nothing()
    {
        using var b = new FeedUpdateTests.Build();
        b.Update().ShouldSucceed();
        b.Ipk("needy", "1.0-r0", "core2-64", "/usr/bin/needy=x", depends: "libone, libtwo (>= 2)");
        var r = b.Update("--install", "needy");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("libone: needed by needy, not in the feed", r.Stdout);
        Assert.Contains("libtwo: needed by needy, not in the feed", r.Stdout);
        Assert.False(File.Exists(Path.Combine(b.Export, "usr/bin/needy")));
    }
}
