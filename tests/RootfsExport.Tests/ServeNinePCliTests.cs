using System.Text.RegularExpressions;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Tests;

/// <summary>`serve --9p` as users run it: the CLI, as uid 65534, read by diod's userspace clients, stopped by Ctrl-C.</summary>
public sealed class ServeNinePCliTests : IClassFixture<GoldenRootfs>
{
    private readonly GoldenRootfs _golden;

    public ServeNinePCliTests(GoldenRootfs golden) => _golden = golden;

    [Fact]
    public void Serve_over_tcp_prints_the_boot_lines_serves_db_owners_and_stops_on_sigint()
    {
        using var dir = new ScratchDir();
        var export = dir["export"];
        Run.Tool("unpack", _golden.TarGz, export).ShouldSucceed();
        using var serve = new BackgroundTool(["serve", export, "--9p", "tcp:127.0.0.1:0"]);
        try
        {
            serve.WaitFor("cmdline:");
            // a server runs with tiered compilation off (LongRunningRuntime): re-executed in place, same pid
            Assert.Contains("DOTNET_TieredCompilation=0", File.ReadAllText($"/proc/{serve.Pid}/environ").Split('\0'));
            var text = serve.Output;
            var port = int.Parse(Regex.Match(text, @"on tcp:127\.0\.0\.1:(\d+)").Groups[1].Value);
            Assert.Contains($"mount:   mount -t 9p -o trans=tcp,port={port},version=9p2000.L,", text);
            Assert.Contains($"rootfstype=9p rootflags=trans=tcp,port={port},", text);
            Assert.Contains($"aname={export}", text);

            // diodls prints owners (from our DB: the files belong to 65534 on disk) but no type letter or setuid bit
            var ls = Run.Program("diodls", "-l", "-s", $"127.0.0.1:{port}", "-a", export, "/etc/shadow", "/etc/owned998").ShouldSucceed().Stdout;
            Assert.Matches(@"-rw-r-----\S*\s+\d+\s+root\s+(shadow|42)\s.*/etc/shadow", ls);
            Assert.Matches(@"-rw-r--r--\S*\s+\d+\s+(998|systemd-network)\s+(997|systemd-timesync)\s.*/etc/owned998", ls);
            Assert.DoesNotContain("nobody", ls);
            var cat = Run.Program("diodcat", "-s", $"127.0.0.1:{port}", "-a", export, "/etc/hostname").ShouldSucceed().Stdout;
            Assert.Equal("golden\n", cat);
            var outside = Run.Program("diodcat", "-s", $"127.0.0.1:{port}", "-a", "/etc", "/etc/passwd");
            Assert.NotEqual(0, outside.ExitCode);
        }
        finally
        {
            Assert.Equal(0, serve.Stop(30));
        }
        Assert.Contains("stopped; the database is consistent", serve.Output);
        Assert.Contains("clean:", Run.Tool("check", export).ShouldSucceed().Stdout);
    }
}
