using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.NineP.Tests;

/// <summary>diod's userspace clients (libnpclient: Tversion, Tauth expecting Rlerror, attach by n_uname) against our server.</summary>
public class DiodClientTests
{
    [Fact]
    public async Task Diodls_shows_database_owners_and_diodcat_reads_content()
    {
        using var fx = new ExportFixture(bigFileBytes: 5_000_000);
        await using var srv = new RunningServer(fx.Export);
        Run.RequirePeer("diodls");
        var server = $"127.0.0.1:{srv.Port}";

        var ls = Run.Program("diodls", ["-s", server, "-a", fx.Export, "-l", "/", "/srv", "/dev", "/etc"], timeout: TimeSpan.FromSeconds(60)).ShouldSucceed().Stdout;
        var group42 = Run.Program("getent", "group", "42").Stdout.Split(':')[0];
        if (group42.Length == 0) group42 = "42";
        string Line(string name) => ls.Split('\n').First(l => l.EndsWith(" " + name));
        // the host files belong to the unprivileged build user; diodls must see the DB's root/42
        Assert.Matches(@"^d\S+\s+\d+ root root ", Line("etc"));
        Assert.Matches($@"^d\S+\s+\d+ root {group42} ", Line("shared"));
        Assert.Matches(@"^\S+\s+\d+ root root\s+0 ", Line("null"));
        Assert.Matches(@"^-\S+\s+\d+ root root\s+5000000 ", Line("big.bin"));
        Assert.Matches(@"^-\S+\s+\d+ root root\s+17 ", Line("hostname"));
        Assert.Contains("srv", ls);

        var cat = Run.Program("diodcat", ["-s", server, "-a", fx.Export, "/etc/hostname"], timeout: TimeSpan.FromSeconds(60)).ShouldSucceed();
        Assert.Equal(ExportFixture.HostnameContent, cat.Stdout);

        // binary content through 77 reads of msize 65536
        var dump = fx.Scratch["big.copy"];
        Run.Shell($"diodcat -s {server} -a '{fx.Export}' /srv/big.bin > '{dump}'", timeout: TimeSpan.FromSeconds(120)).ShouldSucceed();
        Assert.Equal(File.ReadAllBytes(System.IO.Path.Combine(fx.Export, "srv/big.bin")), File.ReadAllBytes(dump));

        // confinement as diod's clients see it
        Assert.NotEqual(0, Run.Program("diodcat", ["-s", server, "-a", fx.Export, "/escape/secret"], timeout: TimeSpan.FromSeconds(60)).ExitCode);
        Assert.NotEqual(0, Run.Program("diodls", ["-s", server, "-a", "/etc", "/"], timeout: TimeSpan.FromSeconds(60)).ExitCode);
        var up = Run.Program("diodls", ["-s", server, "-a", fx.Export, "/../.."], timeout: TimeSpan.FromSeconds(60)).ShouldSucceed().Stdout;
        Assert.Contains("etc", up);
        Assert.DoesNotContain("outside", up);
    }
}
