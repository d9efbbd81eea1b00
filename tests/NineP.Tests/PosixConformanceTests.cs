using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using RootfsExport.NineP.Server;
using RootfsExport.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace RootfsExport.NineP.Tests;

/// <summary>
/// guest/posixcheck.c through the Linux 6.12 9p client in one QEMU guest, against our server, diod and the
/// guest's own tmpfs, with the mount options `serve` prints (access=user). Every case diod passes and every
/// case docs/ninep-conformance.txt records as passing for ours must pass; the owners and modes of what root
/// and a non-root user made must be those tmpfs gives, on the board and in files.db.
/// </summary>
public class PosixConformanceTests(ITestOutputHelper output)
{
    private const string Targets = "ours diod local";

    [Fact]
    [Trait("Category", "EndToEnd")]
    public async Task Posix_checks_through_the_linux_client_pass_wherever_diod_passes_and_owners_match_a_local_disk()
    {
        foreach (var p in new[] { "gcc", "diod" }) Run.RequirePeer(p);
        using var fx = new ExportFixture();
        var work = fx.Scratch["guest"];
        Directory.CreateDirectory(work);
        File.WriteAllText(Path.Combine(fx.Export, "etc/group"), "root:x:0:\nstaff:x:50:\nnogroup:x:65534:\n");
        File.WriteAllText(Path.Combine(fx.Export, "etc/passwd"), "root:x:0:0::/root:/bin/sh\nnobody:x:65534:65534::/nonexistent:/bin/false\n");
        // diod serves a plain directory as root, switching to each attaching uid (nobody exists on the host)
        var diodExport = Directory.CreateTempSubdirectory("rfe-diod-").FullName;
        File.SetUnixFileMode(diodExport, (UnixFileMode)0x1ed);
        Run.Program("gcc", "-static", "-O1", "-o", Path.Combine(work, "posixcheck"),
            Path.Combine(RepoRoot(), "tests", "NineP.Tests", "guest", "posixcheck.c")).ShouldSucceed();

        var setattrs = new List<string>();
        string log;
        int diodPort = FreePort();
        using (var diod = StartDiod(diodExport, diodPort, Path.Combine(work, "diod.log")))
        await using (var srv = new RunningServer(fx.Export, new ServerOptions { Trace = l => { if (l.Contains("Tsetattr")) lock (setattrs) setattrs.Add(l); } }))
        {
            var ours = new RootfsExport.BootSpec.NinePTcpEndpoint(IPAddress.Parse("10.0.2.100"), fx.Export, srv.Port).MountOptions;
            var theirs = new RootfsExport.BootSpec.NinePTcpEndpoint(IPAddress.Parse("10.0.2.101"), diodExport, diodPort).MountOptions;
            output.WriteLine($"ours: {ours}\ndiod: {theirs}");
            var init = TcpGuest.Prelude + $$"""

                mkdir -p /mnt/ours /mnt/diod /mnt/local
                mount -t 9p -o {{ours}} 10.0.2.100 /mnt/ours || echo "@@FAIL mount ours"
                mount -t 9p -o {{theirs}} 10.0.2.101 /mnt/diod || echo "@@FAIL mount diod"
                mount -t tmpfs -o mode=0755 tmpfs /mnt/local
                for t in {{Targets}}; do echo "@@TARGET $t"; /posixcheck /mnt/$t/pc; done
                sync; umount /mnt/ours; umount /mnt/diod
                echo "@@DONE"
                poweroff -f
                """;
            log = TcpGuest.Boot(work, init, [srv.Port, diodPort], [Path.Combine(work, "posixcheck")], seconds: 300);
            output.WriteLine(log);
        }
        try
        {
            // what the client sent for utimensat with nanoseconds: the server-side protocol logs of both servers
            foreach (var l in setattrs.Where(l => l.Contains("AtimeSet"))) output.WriteLine($"ours got: {l}");
            foreach (var l in File.ReadLines(Path.Combine(work, "diod.log")).Where(l => l.Contains("TSETATTR", StringComparison.OrdinalIgnoreCase) && l.Contains("atime_sec 16")))
                output.WriteLine($"diod got: {l}");
        }
        catch (IOException) { }
        finally { Directory.Delete(diodExport, recursive: true); }

        Assert.Contains("@@DONE", log);
        Assert.DoesNotContain("@@FAIL", log);
        var results = Targets.Split(' ').ToDictionary(t => t, t => Section(log, t));
        foreach (var t in results.Keys) output.WriteLine($"{t}: {results[t].Results.Count(r => r.Value)} of {results[t].Results.Count} pass");
        Assert.All(results.Values, r => Assert.Contains("@@END", r.Raw));

        var recorded = Recorded();
        foreach (var (name, ok) in results["diod"].Results.Where(r => r.Value))
            Assert.True(results["ours"].Results.GetValueOrDefault(name), $"diod passes {name}, ours does not");
        foreach (var name in recorded.Where(r => r.Value.Ours).Select(r => r.Key))
            Assert.True(results["ours"].Results.GetValueOrDefault(name), $"{name} passed for ours in docs/ninep-conformance.txt and fails now");
        // what the board sees and what files.db keeps: the owners and modes of the guest's own tmpfs
        Assert.Equal(results["local"].Owners, results["ours"].Owners);
        foreach (var (rel, owner) in results["local"].Owners)
        {
            var row = fx.Row("pc/" + rel) ?? throw new Xunit.Sdk.XunitException($"no files.db row for pc/{rel}");
            var rdev = row.Rdev == 0 ? "0,0" : $"{RootfsExport.Posix.Native.Libc.Major(row.Rdev)},{RootfsExport.Posix.Native.Libc.Minor(row.Rdev)}";
            Assert.Equal(owner, $"{row.Uid} {row.Gid} {Convert.ToString(row.Mode, 8)} {rdev}");
        }
    }

    private sealed record TargetRun(string Raw, Dictionary<string, bool> Results, SortedDictionary<string, string> Owners);

    private static TargetRun Section(string log, string target)
    {
        int a = log.IndexOf($"@@TARGET {target}", StringComparison.Ordinal);
        int b = log.IndexOf("@@TARGET", a + 1, StringComparison.Ordinal);
        var raw = a < 0 ? "" : b < 0 ? log[a..] : log[a..b];
        var results = new Dictionary<string, bool>();
        var owners = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in raw.Split('\n'))
        {
            var f = line.Trim().Split(' ', 3);
            if (f.Length >= 3 && f[0] == "@@R") results[f[1]] = f[2].StartsWith("ok", StringComparison.Ordinal);
            if (f.Length >= 3 && f[0] == "@@O") owners[f[1]] = f[2];
        }
        return new TargetRun(raw, results, owners);
    }

    /// <summary>docs/ninep-conformance.txt: one case a line, "case ours diod local" with ok or FAIL each.</summary>
    private static Dictionary<string, (bool Ours, bool Diod)> Recorded()
    {
        return File.ReadLines(Path.Combine(RepoRoot(), "docs", "ninep-conformance.txt"))
            .Where(l => l.Length > 0 && l[0] != '#')
            .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .ToDictionary(f => f[0], f => (f[1] == "ok", f[2] == "ok"));
    }

    private static string RepoRoot()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir != null && !File.Exists(Path.Combine(dir.FullName, "RootfsExport.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new Xunit.Sdk.XunitException("no RootfsExport.sln above the test assembly");
    }

    /// <summary>diod with its protocol trace (-d 1), ended with the test.</summary>
    private sealed class RunningDiod(Process process) : IDisposable
    {
        public void Dispose()
        {
            try { process.Kill(entireProcessTree: true); process.WaitForExit(10_000); } catch (InvalidOperationException) { }
            process.Dispose();
        }
    }

    private static RunningDiod StartDiod(string export, int port, string logFile)
    {
        var psi = new ProcessStartInfo("diod") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-f", "-n", "-d", "1", "-L", logFile, "-l", $"127.0.0.1:{port}", "-e", export }) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        for (int i = 0; i < 100; i++)
        {
            try { using var c = new TcpClient(); c.Connect(IPAddress.Loopback, port); return new RunningDiod(p); }
            catch (SocketException) { Thread.Sleep(100); }
        }
        p.Kill();
        throw new Xunit.Sdk.XunitException("diod did not listen");
    }

    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }
}
