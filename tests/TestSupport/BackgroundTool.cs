using System.Diagnostics;
using System.Text;

namespace RootfsExport.TestSupport;

/// <summary>
/// Our CLI running in the background as users run it (uid 65534 under setpriv when we are root), for
/// long-running commands (serve, watch): output collected as it comes (pseudo's daemon may inherit the pipes,
/// so EOF can come late), waited on by content, stopped with SIGINT like Ctrl-C.
/// </summary>
public sealed class BackgroundTool : IDisposable
{
    private readonly Process _p;
    private readonly StringBuilder _out = new();

    public BackgroundTool(IEnumerable<string> args, IDictionary<string, string>? env = null, string? cwd = null)
    {
        var psi = new ProcessStartInfo { FileName = Run.IsRoot ? "setpriv" : "dotnet", RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (Run.IsRoot) foreach (var a in new[] { $"--reuid={Run.NobodyId}", $"--regid={Run.NobodyId}", "--clear-groups", "--", "dotnet" }) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add(ToolCopy.Dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["HOME"] = "/tmp";
        if (env != null) foreach (var (k, v) in env) psi.Environment[k] = v;
        if (cwd != null) psi.WorkingDirectory = cwd;
        _p = Process.Start(psi)!;
        _p.OutputDataReceived += (_, d) => { if (d.Data != null) lock (_out) _out.AppendLine(d.Data); };
        _p.ErrorDataReceived += (_, d) => { if (d.Data != null) lock (_out) _out.AppendLine(d.Data); };
        _p.BeginOutputReadLine();
        _p.BeginErrorReadLine();
    }

    public int Pid => _p.Id;
    public bool HasExited => _p.HasExited;
    public string Output { get { lock (_out) return _out.ToString(); } }

    /// <summary>Waits (bounded) until the condition holds; fails with the output if the tool exits first.</summary>
    public void WaitUntil(Func<bool> condition, string what, int seconds = 30)
    {
        for (int i = 0; i < seconds * 10 && !condition(); i++)
        {
            if (_p.HasExited) { Thread.Sleep(200); throw new Xunit.Sdk.XunitException($"the tool exited ({_p.ExitCode}) before: {what}\n{Output}"); }
            Thread.Sleep(100);
        }
        if (!condition()) throw new Xunit.Sdk.XunitException($"timed out: {what}\n{Output}");
    }

    public void WaitFor(string text, int seconds = 30) => WaitUntil(() => Output.Contains(text), $"'{text}' in the output", seconds);

    /// <summary>SIGINT (Ctrl-C), then wait; returns the exit code.</summary>
    public int Stop(int seconds = 60)
    {
        if (!_p.HasExited) Posix.Native.Signals.Kill(_p.Id, Posix.Native.Signals.SIGINT);
        if (!_p.WaitForExit(seconds * 1000)) { _p.Kill(true); throw new Xunit.Sdk.XunitException($"the tool did not stop on SIGINT\n{Output}"); }
        _p.WaitForExit();
        Thread.Sleep(100);
        return _p.ExitCode;
    }

    /// <summary>SIGKILL: a crash at an arbitrary point.</summary>
    public void Kill()
    {
        if (!_p.HasExited) _p.Kill();
        _p.WaitForExit();
    }

    /// <summary>Waits (bounded) for the exit, then for the output's last lines (a timed wait does not drain them).</summary>
    public bool WaitForExit(int milliseconds)
    {
        if (!_p.WaitForExit(milliseconds)) return false;
        _p.WaitForExit();
        return true;
    }

    public void Dispose()
    {
        if (!_p.HasExited) { try { Stop(); } catch (Xunit.Sdk.XunitException) { } }
        _p.Dispose();
    }
}

/// <summary>Places in the repository the tests read (the sample build, the layer), found from the test output.</summary>
public static class Repository
{
    public static string Root
    {
        get
        {
            for (var d = new DirectoryInfo(AppContext.BaseDirectory); d != null; d = d.Parent)
                if (File.Exists(Path.Combine(d.FullName, "RootfsExport.sln"))) return d.FullName;
            throw new InvalidOperationException("the repository (RootfsExport.sln) is not above the test output");
        }
    }

    public static string SampleBuild => Path.Combine(Root, "samples", "oe-build");
}
