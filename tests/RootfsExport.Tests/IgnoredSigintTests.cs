using System.Diagnostics;
using System.Text;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Tests;

/// <summary>
/// A shell's background job (`rootfs-export serve ... &amp;` in a script, `trap '' INT`, nohup) starts with SIGINT
/// ignored, and a process keeps what it inherits: before the fix, Ctrl-C and kill -INT never stopped a serve.
/// The tool puts SIGINT and SIGTERM back to their defaults at start, so its own handlers get them.
/// </summary>
public sealed class IgnoredSigintTests : IClassFixture<GoldenRootfs>
{
    private const string IgnoreSigint = "trap '' INT; exec \"$@\"";
    private readonly GoldenRootfs _golden;

    public IgnoredSigintTests(GoldenRootfs golden) => _golden = golden;

    [Fact]
    public void The_shell_wrapper_really_hands_on_sigint_ignored()
    {
        // the premise of the test below, from the kernel's own view of a program that does nothing about it
        var status = Run.Program("sh", "-c", IgnoreSigint, "sh", "cat", "/proc/self/status").ShouldSucceed().Stdout;
        Assert.True(IgnoresSigint(status), status);
    }

    [Fact]
    public void Serve_started_with_sigint_ignored_stops_cleanly_on_kill_int()
    {
        using var dir = new ScratchDir();
        var export = dir["export"];
        Run.Tool("unpack", _golden.TarGz, export).ShouldSucceed();
        var output = new StringBuilder();
        using var serve = StartIgnoringSigint(["serve", export, "--9p", "tcp:127.0.0.1:0"], output);
        try
        {
            for (int i = 0; i < 300 && !Text(output).Contains("cmdline:"); i++)
            {
                Assert.False(serve.HasExited, Text(output));
                Thread.Sleep(100);
            }
            Assert.Contains("cmdline:", Text(output));
            Assert.False(IgnoresSigint(File.ReadAllText($"/proc/{serve.Id}/status")), "the serve still ignores SIGINT");
            Posix.Native.Signals.Kill(serve.Id, Posix.Native.Signals.SIGINT);
            Assert.True(serve.WaitForExit(60_000), "serve did not stop on SIGINT:\n" + Text(output));
            serve.WaitForExit();
            Assert.Equal(0, serve.ExitCode);
        }
        finally
        {
            if (!serve.HasExited) serve.Kill(true);
        }
        Assert.Contains("stopped; the database is consistent", Text(output));
        Assert.Contains("clean:", Run.Tool("check", export).ShouldSucceed().Stdout);
    }

    /// <summary>Our CLI as uid 65534, exec'd by a shell that ignores SIGINT first (the process keeps the pid).</summary>
    private static Process StartIgnoringSigint(IEnumerable<string> args, StringBuilder output)
    {
        var psi = new ProcessStartInfo { FileName = Run.IsRoot ? "setpriv" : "sh", RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Run.IsRoot) foreach (var a in new[] { $"--reuid={Run.NobodyId}", $"--regid={Run.NobodyId}", "--clear-groups", "--", "sh" }) psi.ArgumentList.Add(a);
        foreach (var a in new[] { "-c", IgnoreSigint, "sh", "dotnet", ToolCopy.Dll }.Concat(args)) psi.ArgumentList.Add(a);
        psi.Environment["HOME"] = "/tmp";
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, d) => { if (d.Data != null) lock (output) output.AppendLine(d.Data); };
        p.ErrorDataReceived += (_, d) => { if (d.Data != null) lock (output) output.AppendLine(d.Data); };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    private static string Text(StringBuilder output) { lock (output) return output.ToString(); }

    /// <summary>SigIgn: a hex mask of the ignored signals; SIGINT (2) is bit 1.</summary>
    private static bool IgnoresSigint(string procStatus)
    {
        var line = procStatus.Split('\n').First(l => l.StartsWith("SigIgn:"));
        return (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) & (1UL << 1)) != 0;
    }
}
