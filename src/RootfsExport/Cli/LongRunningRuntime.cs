using System.Collections;
using RootfsExport.Posix.Native;

namespace RootfsExport.Cli;

/// <summary>
/// The runtime settings of the commands that serve for hours (serve, usb forward), which differ from those of
/// the short ones. Tiered compilation suits a command that runs for a second: it starts on quick code and
/// re-compiles what gets hot. A server pays for that re-compiling on every new code path for minutes, in the
/// middle of requests (docs/BENCHMARKS.md, "tiering", has the usb9pfs rig's numbers both ways). The short
/// commands keep tiering (it halves `update`'s start-up), so a long-running command re-executes itself, same
/// pid, same arguments, with tiering off, before it does anything else.
/// </summary>
public static class LongRunningRuntime
{
    public const string TieringVariable = "DOTNET_TieredCompilation";

    /// <summary>Returns only when the process already runs as it should, or the exec failed (then tiering stays on: slower, not wrong).</summary>
    public static void Enter()
    {
        // set by an earlier exec, or by the user (who may want tiering): either way, keep it
        if (Environment.GetEnvironmentVariable(TieringVariable) != null) return;
        // the native (AOT) program has no JIT, so nothing to turn off. RuntimeFeature.IsDynamicCodeSupported cannot
        // tell: PublishAot sets that switch to false in the JIT build's runtimeconfig too. Only a native program has
        // assemblies without a file.
#pragma warning disable IL3000 // the empty Location is exactly what is asked here
        if (string.IsNullOrEmpty(typeof(LongRunningRuntime).Assembly.Location)) return;
#pragma warning restore IL3000
        var exe = Environment.ProcessPath;
        var args = Environment.GetCommandLineArgs(); // [0] is our .dll, also under the apphost
        if (exe is null || args.Length == 0) return;
        bool muxer = Path.GetFileNameWithoutExtension(exe) == "dotnet";
        var argv = new List<string?> { exe };
        if (muxer) argv.Add(args[0]);
        argv.AddRange(args.Skip(1));
        argv.Add(null);
        var envp = new List<string?>();
        foreach (DictionaryEntry e in Environment.GetEnvironmentVariables()) envp.Add($"{e.Key}={e.Value}");
        envp.Add($"{TieringVariable}=0");
        envp.Add(null);
        Console.Out.Flush();
        Console.Error.Flush();
        Libc.Execve(exe, argv.ToArray(), envp.ToArray());
    }
}
