using System.Diagnostics;

namespace RootfsExport.Posix;

/// <summary>
/// The one place we start other programs (pseudo, unfsd, ...): argument vectors, never shell strings;
/// environment changes explicit; output either inherited or captured.
/// </summary>
public static class ChildProcess
{
    public sealed record Result(int ExitCode, string Stdout, string Stderr);

    private static ProcessStartInfo StartInfo(string file, IEnumerable<string> args, IReadOnlyDictionary<string, string?>? env, bool capture)
    {
        var psi = new ProcessStartInfo(file)
        {
            UseShellExecute = false,
            RedirectStandardOutput = capture,
            RedirectStandardError = capture,
            RedirectStandardInput = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        if (env != null)
            foreach (var (k, v) in env)
                if (v is null) psi.Environment.Remove(k);
                else psi.Environment[k] = v;
        return psi;
    }

    /// <summary>Runs with our stdin/stdout/stderr; returns its exit code. Ctrl-C reaches it through the terminal.</summary>
    public static int RunInteractive(string file, IEnumerable<string> args, IReadOnlyDictionary<string, string?>? env = null)
    {
        using var p = Start(file, args, env, capture: false);
        p.WaitForExit();
        return p.ExitCode;
    }

    /// <summary>Runs to completion capturing its output (bounded by timeout).</summary>
    public static Result Capture(string file, IEnumerable<string> args, IReadOnlyDictionary<string, string?>? env = null, TimeSpan? timeout = null)
    {
        using var p = Start(file, args, env, capture: true);
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(timeout ?? TimeSpan.FromMinutes(2)))
        {
            try { p.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            throw new UserFacingException($"{file} did not finish within {(timeout ?? TimeSpan.FromMinutes(2)).TotalSeconds:F0} s");
        }
        p.WaitForExit();
        return new Result(p.ExitCode, stdout.Result, stderr.Result);
    }

    /// <summary>Starts a long-running child (a server) the caller stops.</summary>
    public static Process Start(string file, IEnumerable<string> args, IReadOnlyDictionary<string, string?>? env = null, bool capture = false)
    {
        try
        {
            return Process.Start(StartInfo(file, args, env, capture)) ?? throw new UserFacingException($"could not start {file}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new UserFacingException($"could not start {file}: {e.Message}");
        }
    }

    /// <summary>The first executable of this name in PATH, or null.</summary>
    public static string? FindInPath(string name)
    {
        foreach (var dir in (Environment.GetEnvironmentVariable("PATH") ?? "/usr/local/bin:/usr/bin:/bin").Split(':', StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(dir, name);
            if (File.Exists(candidate)) return candidate;
        }
        return null;
    }
}
