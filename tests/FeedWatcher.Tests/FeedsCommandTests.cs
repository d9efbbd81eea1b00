using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.FeedWatcher.Tests;

/// <summary>`feeds`: the plan update would carry out, with nothing changed.</summary>
public sealed class FeedsCommandTests
{
    [Fact]
    public void Feeds_shows_the_plan_and_changes_nothing()
    {
        using var b = new FeedUpdateTests.Build();
        b.Update().ShouldSucceed();
        b.Ipk("hello-sample", "1.2-r0", "core2-64", "/usr/bin/hello=echo hello 1.2", depends: "busybox");
        b.Ipk("extra", "1.0-r0", "qemux86_64", "/usr/bin/extra=x", dir: "qemux86_64");
        var db = File.ReadAllBytes(Path.Combine(b.Export + ".pseudo_state", "files.db"));
        var status = b.Status;
        var output = Run.Tool(["feeds", "reference-base-image", "--install", "extra"], b.Env, cwd: b.Dir.Path).ShouldSucceed().Stdout;
        Assert.Contains("Update from package feeds (dry run: nothing is changed)", output);
        Assert.Contains($"feed {b.Root}/tmp/deploy/ipk/core2-64 (arch core2-64)\n  feed {b.Root}/tmp/deploy/ipk/qemux86_64 (arch qemux86_64)", output);
        Assert.Contains("Installing new packages\n  extra 1.0-r0 (tmp/deploy/ipk/qemux86_64/extra_1.0-r0_qemux86_64.ipk)", output);
        Assert.Contains("Upgrading packages\n  hello-sample 1.1-r0 → 1.2-r0", output);
        Assert.Contains("Summary (dry run): 1 to install, 1 to upgrade, 0 to remove, 0 problem(s)", output);
        Assert.Equal(db, File.ReadAllBytes(Path.Combine(b.Export + ".pseudo_state", "files.db")));
        Assert.Equal(status, b.Status);
        Assert.Contains("echo 'hello 1.1'", File.ReadAllText(Path.Combine(b.Export, "usr/bin/hello")));
    }
}
