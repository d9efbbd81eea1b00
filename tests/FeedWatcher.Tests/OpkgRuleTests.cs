using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.FeedWatcher.Tests;

/// <summary>One test per opkg rule, each naming the opkg code it follows.</summary>
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
}
