using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Tests;

/// <summary>
/// Issue 24's NFS acceptance (docs/DEVLOOP.md): with `serve --nfs` running (unfsd under pseudo), `update` hands the
/// package over to the serving process, which stops unfsd and pseudo, applies it and starts unfsd again on the same
/// port; Debian's userspace NFS client (nfs-cat, libnfs-utils) then reads the new content. Skipped, with the
/// reason, where no unfsd exists (no Debian package provides one).
/// </summary>
public sealed class NfsDevLoopTests
{
    [UnfsdFact]
    [Trait("Category", "EndToEnd")]
    public void Update_while_serve_nfs_runs_is_applied_and_nfs_cat_reads_the_new_content()
    {
        using var build = new OeFeedBuild("mkdir -p var/lib/opkg/info && : > var/lib/opkg/status", ["hello core2-64 1.0-r0"]);
        build.Ipk("hello", "1.0-r0", "core2-64", [new("/usr/share/hello/greeting", "hello OLD\n")]);
        build.Update().ShouldSucceed();
        var port = 35049 + Random.Shared.Next(0, 500) * 2;
        using var serve = new BackgroundTool(["serve", build.Export, "--nfs", "--unfsd", UnfsdPeer.Path!, "--nfs-port", port.ToString()]);
        var url = $"nfs://127.0.0.1{build.Export}/usr/share/hello/greeting?nfsport={port}&mountport={port}";
        string Cat(string want)
        {
            RunResult cat = new(1, "", "");
            for (int i = 0; i < 100 && !(cat.ExitCode == 0 && cat.Stdout.Contains(want)); i++) { Thread.Sleep(200); cat = Run.Program("nfs-cat", url); }
            return cat.Stdout;
        }
        try
        {
            Assert.Contains("hello OLD", Cat("hello OLD"));
            build.Ipk("hello", "1.0-r0", "core2-64", [new("/usr/share/hello/greeting", "hello NEW\n")]);
            var update = build.Update().ShouldSucceed().Stdout;
            Assert.Contains("is being served: the serving process applies the update", update);
            Assert.Contains("hello 1.0-r0 → 1.0-r0", update);
            Assert.Contains("hello NEW", Cat("hello NEW"));
        }
        finally
        {
            Assert.True(serve.Stop() == 0, serve.Output);
        }
        Assert.Contains("clean:", build.Check().ShouldSucceed().Stdout);
    }
}
