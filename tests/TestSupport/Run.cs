using System.Diagnostics;
using System.Text;

namespace RootfsExport.TestSupport;

public sealed record RunResult(int ExitCode, string Stdout, string Stderr)
{
    public string All => Stdout + Stderr;

    public RunResult ShouldSucceed()
    {
        if (ExitCode != 0) throw new Xunit.Sdk.XunitException($"exit {ExitCode}\nstdout:\n{Stdout}\nstderr:\n{Stderr}");
        return this;
    }
}

/// <summary>Runs real programs (peers and our own CLI) with a timeout; as uid/gid 65534 when asked and we are root.</summary>
public static class Run
{
    public const int NobodyId = 65534;

    public static bool IsRoot => Environment.UserName == "root" || GetUid() == 0;

    private static uint GetUid() => uint.TryParse(File.ReadAllLines("/proc/self/status")
        .First(l => l.StartsWith("Uid:")).Split('\t', StringSplitOptions.RemoveEmptyEntries)[1], out var u) ? u : 1;

    /// <summary>Runs a program. asUnprivileged: under setpriv as 65534 when we are root (as users run the tool).</summary>
    public static RunResult Program(string file, IEnumerable<string> args, bool asUnprivileged = false,
        IDictionary<string, string>? env = null, string? cwd = null, TimeSpan? timeout = null, string? stdin = null)
    {
        var psi = new ProcessStartInfo { RedirectStandardOutput = true, RedirectStandardError = true, RedirectStandardInput = true, UseShellExecute = false };
        if (asUnprivileged && IsRoot)
        {
            psi.FileName = "setpriv";
            foreach (var a in new[] { $"--reuid={NobodyId}", $"--regid={NobodyId}", "--clear-groups", "--", file }) psi.ArgumentList.Add(a);
            psi.Environment["HOME"] = "/tmp";
        }
        else psi.FileName = file;
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        psi.Environment["DOTNET_NOLOGO"] = "1";
        if (env != null) foreach (var (k, v) in env) psi.Environment[k] = v;
        if (cwd != null) psi.WorkingDirectory = cwd;
        using var p = System.Diagnostics.Process.Start(psi)!;
        var o = new StringBuilder(); var e = new StringBuilder();
        p.OutputDataReceived += (_, d) => { if (d.Data != null) lock (o) o.AppendLine(d.Data); };
        p.ErrorDataReceived += (_, d) => { if (d.Data != null) lock (e) e.AppendLine(d.Data); };
        p.BeginOutputReadLine(); p.BeginErrorReadLine();
        if (stdin != null) p.StandardInput.Write(stdin);
        p.StandardInput.Close();
        var limit = timeout ?? TimeSpan.FromMinutes(5);
        if (!p.WaitForExit(limit))
        {
            try { p.Kill(entireProcessTree: true); } catch { }
            throw new TimeoutException($"{file} {string.Join(' ', args)} did not finish within {limit}");
        }
        p.WaitForExit();
        return new RunResult(p.ExitCode, o.ToString(), e.ToString());
    }

    public static RunResult Program(string file, params string[] args) => Program(file, (IEnumerable<string>)args);

    /// <summary>bash -c, for peers driven by a short script.</summary>
    public static RunResult Shell(string script, bool asUnprivileged = false, IDictionary<string, string>? env = null, TimeSpan? timeout = null) =>
        Program("bash", new[] { "-c", script }, asUnprivileged, env, timeout: timeout);

    /// <summary>Our CLI, run as an ordinary user (65534 when the tests run as root).</summary>
    public static RunResult Tool(params string[] args) => Tool(args, null);

    public static RunResult Tool(IEnumerable<string> args, IDictionary<string, string>? env, TimeSpan? timeout = null, string? cwd = null, string? stdin = null) =>
        Program("dotnet", new[] { ToolCopy.Dll }.Concat(args), asUnprivileged: true, env, cwd, timeout, stdin);

    /// <summary>Fails (never skips) when a peer the test command should have installed is missing.</summary>
    public static string RequirePeer(string program)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/bin:/bin").Split(':').Append("/usr/sbin").Append("/sbin"))
        {
            var candidate = Path.Combine(dir, program);
            if (File.Exists(candidate)) return candidate;
        }
        throw new Xunit.Sdk.XunitException($"peer '{program}' is not installed; ./run-tests installs it (tests/*/apt-packages)");
    }
}

/// <summary>
/// The test output (which contains rootfs-export.dll) copied once to a world-readable place, so the
/// unprivileged user can run it even when the clone lives under root's private home.
/// </summary>
public static class ToolCopy
{
    private static readonly Lazy<string> _dll = new(() =>
    {
        var src = AppContext.BaseDirectory;
        var dest = Path.Combine(Path.GetTempPath(), "rootfs-export-tool-" + Environment.ProcessId);
        if (!Directory.Exists(dest))
        {
            foreach (var f in Directory.EnumerateFiles(src, "*", SearchOption.AllDirectories))
            {
                var to = Path.Combine(dest, Path.GetRelativePath(src, f));
                Directory.CreateDirectory(Path.GetDirectoryName(to)!);
                File.Copy(f, to, true);
            }
            Run.Program("chmod", "-R", "a+rX", dest).ShouldSucceed();
            Run.Program("chmod", "a+rx", dest).ShouldSucceed();
        }
        var dll = Path.Combine(dest, "rootfs-export.dll");
        if (!File.Exists(dll)) throw new InvalidOperationException("rootfs-export.dll not in test output: reference src/RootfsExport");
        return dll;
    });

    public static string Dll => _dll.Value;
}

/// <summary>A scratch directory the unprivileged user owns (chowned to 65534 when we are root); deleted on dispose.</summary>
public sealed class ScratchDir : IDisposable
{
    public string Path { get; }

    public ScratchDir(string prefix = "rfe-test")
    {
        Path = System.IO.Path.Combine("/tmp", $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 13)]);
        Directory.CreateDirectory(Path);
        if (Run.IsRoot) Run.Program("chown", $"{Run.NobodyId}:{Run.NobodyId}", Path).ShouldSucceed();
    }

    public string this[string relative] => System.IO.Path.Combine(Path, relative);

    public void Dispose()
    {
        try { Run.Program("rm", "-rf", "--one-file-system", Path); } catch { }
    }
}
