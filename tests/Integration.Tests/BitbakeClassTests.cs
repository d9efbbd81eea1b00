using System.Text;
using System.Text.RegularExpressions;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Integration.Tests;

/// <summary>meta-dotnet-netboot: layer.conf, the class's python, and its BuildCompleted handler against a real `watch`.</summary>
public sealed class BitbakeClassTests
{
    public static string Repo => Repository.Root;

    private static string ClassText => File.ReadAllText(Path.Combine(Repo, "meta-dotnet-netboot/classes/rootfs-export.bbclass"));

    /// <summary>The class's python as plain python: def blocks as they are, `python f () {...}` tasks as def f(d, e).</summary>
    public static string ClassPython()
    {
        var sb = new StringBuilder("import os\n");
        var lines = ClassText.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            if (lines[i].StartsWith("def "))
            {
                sb.AppendLine(lines[i]);
                for (i++; i < lines.Length && (lines[i].Length == 0 || char.IsWhiteSpace(lines[i][0])); i++) sb.AppendLine(lines[i]);
                i--;
            }
            else if (Regex.Match(lines[i], @"^python (\w+) \(\) \{") is { Success: true } m)
            {
                sb.AppendLine($"def {m.Groups[1].Value}(d, e=None):");
                for (i++; i < lines.Length && lines[i] != "}"; i++) sb.AppendLine(lines[i]);
            }
        }
        return sb.ToString();
    }

    [Fact]
    public void Layer_conf_has_the_fields_bitbake_needs()
    {
        var conf = File.ReadAllText(Path.Combine(Repo, "meta-dotnet-netboot/conf/layer.conf"));
        foreach (var field in new[] { "BBPATH .= \":${LAYERDIR}\"", "BBFILES +=", "BBFILE_COLLECTIONS += \"dotnet-netboot\"",
                     "BBFILE_PATTERN_dotnet-netboot = \"^${LAYERDIR}/\"", "BBFILE_PRIORITY_dotnet-netboot =", "LAYERDEPENDS_dotnet-netboot = \"core\"",
                     "BBFILE_PATTERN_IGNORE_EMPTY_dotnet-netboot = \"1\"" /* no recipes: no warning on every command */ })
            Assert.Contains(field, conf);
        var compat = Regex.Match(conf, @"LAYERSERIES_COMPAT_dotnet-netboot = ""([^""]+)""").Groups[1].Value.Split(' ');
        Assert.Contains("scarthgap", compat);
        Assert.Contains("whinlatter", compat);
        Assert.True(File.Exists(Path.Combine(Repo, "meta-dotnet-netboot/README")));
    }

    [Fact]
    public void The_class_python_compiles()
    {
        var py = ClassPython();
        Assert.Contains("def rootfs_export_build_completed(d, e=None):", py);
        Assert.Contains("def rootfs_export_notify(d, message):", py);
        Run.Program("python3", ["-c", "import sys; compile(sys.stdin.read(), 'rootfs-export.bbclass', 'exec')"], stdin: py).ShouldSucceed();
        Assert.Contains("addhandler rootfs_export_build_completed", ClassText);
        Assert.Contains("rootfs_export_build_completed[eventmask] = \"bb.event.BuildCompleted\"", ClassText);
    }

    /// <summary>Runs the handler under python with stand-in bb and d, timing it.</summary>
    public static RunResult RunHandler(string socketDir, string targets = "core-image-minimal")
    {
        var script = $$"""
            import sys, time, types
            bb = types.ModuleType("bb")
            bb.notes = []
            bb.note = lambda m: bb.notes.append(m)
            bb.debug = lambda lvl, m: None
            bb.warn = lambda m: bb.notes.append("WARN " + m)
            class D:
                def __init__(s, v): s.v = v
                def getVar(s, k): return s.v.get(k)
            d = D({"ROOTFS_EXPORT_SOCKET_DIR": "{{socketDir}}", "ROOTFS_EXPORT_NOTIFY_TIMEOUT": "1.0"})
            e = types.SimpleNamespace(data=d, getPkgs=lambda: ["{{targets}}"])  # bb.event.BuildCompleted's API
            exec(compile(sys.stdin.read(), "rootfs-export.bbclass", "exec"))
            t = time.monotonic()
            rootfs_export_build_completed(d, e)
            print("elapsed %.3f" % (time.monotonic() - t))
            print("answered", rootfs_export_notify(d, "build-done") if "{{targets}}" == "count" else "")
            print("\n".join(bb.notes))
            """;
        return Run.Program("python3", ["-c", script], stdin: ClassPython(), timeout: TimeSpan.FromSeconds(30));
    }

    [Fact]
    public void Handler_returns_at_once_when_no_watch_runs()
    {
        using var dir = new ScratchDir();
        var none = RunHandler(dir["no-such-dir"]).ShouldSucceed().Stdout;
        Assert.True(double.Parse(Regex.Match(none, @"elapsed ([\d.]+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) < 1.0, none);
        // a socket left by a killed watch: nobody listens
        Directory.CreateDirectory(dir["socks"]);
        Run.Program("python3", "-c", $"import socket; s = socket.socket(socket.AF_UNIX); s.bind('{dir["socks/stale.sock"]}')").ShouldSucceed();
        var stale = RunHandler(dir["socks"]).ShouldSucceed().Stdout;
        Assert.True(double.Parse(Regex.Match(stale, @"elapsed ([\d.]+)").Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) < 1.5, stale);
        Assert.DoesNotContain("notified", stale);
    }

    [Fact]
    public void Handler_message_is_accepted_by_a_real_watch()
    {
        using var build = new SampleBuildCopy();
        using var watch = WatchProcess.Start(build);
        var socketDir = Path.Combine(build.Root, ".rootfs-export");
        var output = RunHandler(socketDir).ShouldSucceed().Stdout;
        Assert.Contains("rootfs-export: notified 1 watch(es)", output);
        watch.WaitFor("refresh (socket: build-done core-image-minimal)");
    }
}

/// <summary>A copy of samples/oe-build the unprivileged user owns.</summary>
public sealed class SampleBuildCopy : IDisposable
{
    public ScratchDir Dir { get; } = new("rfe-int");
    public string Root => Dir["build"];

    public SampleBuildCopy()
    {
        Run.Program("cp", "-a", Repository.SampleBuild, Root).ShouldSucceed();
        if (Run.IsRoot) Run.Program("chown", "-R", $"{Run.NobodyId}:{Run.NobodyId}", Root).ShouldSucceed();
    }

    public void Dispose() => Dir.Dispose();
}

/// <summary>`rootfs-export watch reference-base-image` on a build, as uid 65534, stopped with SIGINT.</summary>
public static class WatchProcess
{
    public static BackgroundTool Start(SampleBuildCopy build)
    {
        var watch = new BackgroundTool(["watch", "reference-base-image"], new Dictionary<string, string> { ["BUILDDIR"] = build.Root }, build.Dir.Path);
        watch.WaitFor("listening on");
        return watch;
    }
}
