using System.Text.RegularExpressions;
using System.Net.Sockets;
using System.Text;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.FeedWatcher.Tests;

/// <summary>`watch` picks up a dropped package by itself and answers a build-done message on its socket.</summary>
public sealed class WatchTests
{
    [Fact]
    public void Watch_applies_a_dropped_package_and_answers_build_done()
    {
        using var b = new FeedUpdateTests.Build();
        using var watch = new BackgroundTool(["watch", "reference-base-image"], new Dictionary<string, string> { ["BUILDDIR"] = b.Root }, b.Dir.Path);
        string Text() => watch.Output;
        void WaitUntil(Func<bool> condition, string what) => watch.WaitUntil(condition, what);
        try
        {
            WaitUntil(() => Text().Contains("listening on"), "watch did not start");
            var hello = Path.Combine(b.Export, "usr/bin/hello");
            Assert.Contains("hello 1.1", File.ReadAllText(hello)); // the first refresh ran

            // bitbake drops a new package into the feed
            b.Ipk("hello-sample", "1.2-r0", "core2-64", "/usr/bin/hello=echo hello 1.2", depends: "busybox");
            WaitUntil(() => File.Exists(hello) && File.ReadAllText(hello).Contains("hello 1.2"), "the dropped package was not applied");
            WaitUntil(() => Text().Contains("hello-sample 1.1-r0 → 1.2-r0") && Text().Contains("refresh ("), "no refresh logged");

            // the bitbake class's message on the socket
            var socketPath = Path.Combine(b.Root, ".rootfs-export", "reference-base-image.sock");
            using (var client = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
            {
                client.Connect(new UnixDomainSocketEndPoint(socketPath));
                client.Send("build-done core-image-minimal\n"u8);
                var reply = new byte[16];
                client.ReceiveTimeout = 10_000;
                int n = client.Receive(reply);
                Assert.Equal("ok\n", Encoding.UTF8.GetString(reply, 0, n));
            }
            // named in the refresh it triggered, also when a file event of the same moment was first
            WaitUntil(() => Regex.IsMatch(Text(), @"refresh \([^)\n]*socket: build-done core-image-minimal[;)]"), "socket message did not trigger a refresh");
        }
        finally
        {
            watch.Stop(30);
        }
        Assert.Contains("watch stopped", Text());
        Assert.False(File.Exists(Path.Combine(b.Root, ".rootfs-export", "reference-base-image.sock")));
        Assert.Contains("clean:", Run.Tool("check", b.Export).ShouldSucceed().Stdout);
    }

    [Fact]
    public void A_half_written_package_is_retried_until_complete()
    {
        using var b = new FeedUpdateTests.Build();
        // the complete package, made aside; the feed first gets only its first half
        b.Ipk("hello-sample", "1.3-r0", "core2-64", "/usr/bin/hello=echo hello 1.3", depends: "busybox", dir: "staging");
        var whole = File.ReadAllBytes(Path.Combine(b.Root, "tmp/deploy/ipk/staging/hello-sample_1.3-r0_core2-64.ipk"));
        Directory.Delete(Path.Combine(b.Root, "tmp/deploy/ipk/staging"), recursive: true);
        using var watch = new BackgroundTool(["watch", "reference-base-image"], new Dictionary<string, string> { ["BUILDDIR"] = b.Root }, b.Dir.Path);
        try
        {
            watch.WaitFor("listening on");
            var target = Path.Combine(b.Feed, "hello-sample_1.3-r0_core2-64.ipk");
            using (var f = new FileStream(target, FileMode.CreateNew))
            {
                f.Write(whole, 0, whole.Length / 2);
                f.Flush();
                b.Own();
                watch.WaitFor("not ready yet (still being written)");
                f.Write(whole, whole.Length / 2, whole.Length - whole.Length / 2);
            }
            var hello = Path.Combine(b.Export, "usr/bin/hello");
            watch.WaitUntil(() => File.ReadAllText(hello).Contains("hello 1.3"), "the completed package was not applied");
            Assert.DoesNotContain("refresh failed", watch.Output);
        }
        finally
        {
            watch.Stop(30);
        }
        Assert.Contains("clean:", Run.Tool("check", b.Export).ShouldSucceed().Stdout);
    }
}
