using System.Text.RegularExpressions;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.FeedWatcher.Tests;

/// <summary>
/// update and watch while the export is being served: the serving process is the one writer of files.db and
/// applies the update itself; a 9P client (diod's) reads the new content from the running server.
/// </summary>
public sealed class ServeHandoverTests
{
    private static int Port(BackgroundTool serve) => int.Parse(Regex.Match(serve.Output, @"over 9P2000\.L on tcp:127\.0\.0\.1:(\d+)").Groups[1].Value);

    private static string Cat(BackgroundTool serve, string export, string path) =>
        Run.Program("diodcat", "-s", $"127.0.0.1:{Port(serve)}", "-a", export, path).ShouldSucceed().Stdout;

    private static void AssertClean(FeedUpdateTests.Build b) => Assert.Contains("clean:", Run.Tool("check", b.Export).ShouldSucceed().Stdout);

    [Fact]
    public void Update_while_serve_runs_is_applied_by_the_serving_process_and_served_at_once()
    {
        Run.RequirePeer("diodcat");
        using var b = new FeedUpdateTests.Build();
        b.Update().ShouldSucceed();
        using var serve = new BackgroundTool(["serve", b.Export, "--9p", "tcp:127.0.0.1:0"]);
        try
        {
            serve.WaitFor("cmdline:");
            serve.WaitFor("updates:");
            Assert.Contains("hello 1.1", Cat(serve, b.Export, "/usr/bin/hello"));

            b.Ipk("hello-sample", "1.2-r0", "core2-64", "/usr/bin/hello=echo hello 1.2", depends: "busybox");
            var update = b.Update().ShouldSucceed().Stdout;
            Assert.Contains("is being served: the serving process applies the update", update);
            Assert.Contains("hello-sample 1.1-r0 → 1.2-r0", update);
            Assert.DoesNotContain("pseudo.lock is held", update);
            Assert.Contains("hello 1.2", Cat(serve, b.Export, "/usr/bin/hello"));
            Assert.Contains("update:   hello-sample 1.1-r0 → 1.2-r0", serve.Output);

            // a newer image is not swapped in under a running board; the command says what to do instead
            var image = Path.Combine(b.Root, "tmp/deploy/images/qemux86-64/reference-base-image-qemux86-64.rootfs-20251122000000.tar.zst");
            File.SetLastWriteTimeUtc(image, DateTime.UtcNow);
            var swap = b.Update();
            Assert.Equal(1, swap.ExitCode);
            Assert.Contains("is newer than the export being served: not swapped in while a board runs from it", swap.Stdout);
            Assert.Contains("hello 1.2", Cat(serve, b.Export, "/usr/bin/hello"));
        }
        finally
        {
            Assert.Equal(0, serve.Stop());
        }
        Assert.Contains("stopped; the database is consistent", serve.Output);
        AssertClean(b);
        Assert.False(File.Exists(Path.Combine(b.Export + ".pseudo_state", "rootfs-export.sock")));
    }

    [Fact]
    public void Watch_hands_over_to_serve_and_a_killed_serve_leaves_nothing_in_the_way()
    {
        Run.RequirePeer("diodcat");
        using var b = new FeedUpdateTests.Build();
        b.Update().ShouldSucceed();
        var serve = new BackgroundTool(["serve", b.Export, "--9p", "tcp:127.0.0.1:0"]);
        serve.WaitFor("updates:");
        using (serve)
        using (var watch = new BackgroundTool(["watch", "reference-base-image"], b.Env, b.Dir.Path))
        {
            watch.WaitFor("listening on");
            Assert.DoesNotContain("refresh failed", watch.Output);
            b.Ipk("hello-sample", "1.3-r0", "core2-64", "/usr/bin/hello=echo hello 1.3", depends: "busybox");
            watch.WaitUntil(() => Cat(serve, b.Export, "/usr/bin/hello").Contains("hello 1.3"), "the served file did not change");
            watch.WaitFor("hello-sample 1.1-r0 → 1.3-r0");
            Assert.Contains("the serving process applies the update", watch.Output);
            watch.Stop();
            serve.Kill(); // kill -9: the lock goes with the process, the socket file stays behind
        }
        Assert.True(File.Exists(Path.Combine(b.Export + ".pseudo_state", "rootfs-export.sock")));
        b.Ipk("hello-sample", "1.4-r0", "core2-64", "/usr/bin/hello=echo hello 1.4", depends: "busybox");
        var update = b.Update().ShouldSucceed().Stdout;
        Assert.DoesNotContain("being served", update);
        Assert.Contains("hello-sample 1.3-r0 → 1.4-r0", update);
        AssertClean(b);
    }

    [Fact]
    public void Dev_updates_serves_and_applies_dropped_packages_until_sigterm()
    {
        Run.RequirePeer("diodcat");
        using var b = new FeedUpdateTests.Build();
        using var dev = new BackgroundTool(["dev", "reference-base-image", "--9p", "tcp:127.0.0.1:0"], b.Env, b.Dir.Path);
        try
        {
            dev.WaitFor("listening on");
            dev.WaitFor("cmdline:");
            Assert.Contains("rootfstype=9p rootflags=trans=tcp,", dev.Output);
            Assert.Contains("hello 1.1", Cat(dev, b.Export, "/usr/bin/hello"));
            b.Ipk("hello-sample", "1.2-r0", "core2-64", "/usr/bin/hello=echo hello 1.2", depends: "busybox");
            dev.WaitUntil(() => Cat(dev, b.Export, "/usr/bin/hello").Contains("hello 1.2"), "the dropped package was not served");
            dev.WaitFor("refresh (");
        }
        finally
        {
            Posix.Native.Signals.Kill(dev.Pid, Posix.Native.Signals.SIGTERM);
            Assert.True(dev.WaitForExit(30_000), dev.Output);
        }
        Assert.Contains("stopped; the database is consistent", dev.Output);
        Assert.False(File.Exists(Path.Combine(b.Root, ".rootfs-export", "reference-base-image.sock")));
        AssertClean(b);
    }
}
