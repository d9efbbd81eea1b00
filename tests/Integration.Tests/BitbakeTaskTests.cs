using System.Text.Json;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Integration.Tests;

/// <summary>
/// The class's python (anonymous setup, do_rootfs_export, the notifier) run by python3 against a stand-in `bb`
/// module: what CI can check without poky. tests/bitbake/run does the same with real bitbake.
/// </summary>
public sealed class BitbakeTaskTests
{
    /// <summary>A stand-in for the parts of bb and the datastore the class uses; records what it was asked.</summary>
    private const string StubBb = """
        import json, os, sys, types
        bb = types.ModuleType("bb")
        bb.log = []
        bb.note = lambda m: bb.log.append("NOTE " + m)
        bb.warn = lambda m: bb.log.append("WARN " + m)
        bb.debug = lambda lvl, m: None
        bb.tasks = []
        bb.build = types.SimpleNamespace(addtask=lambda t, before, after, d: bb.tasks.append([t, before, after]))
        bb.data = types.SimpleNamespace(inherits_class=lambda c, d: c in d.v.get("__inherits", "").split())
        bb.utils = types.SimpleNamespace(contains=lambda var, item, t, f, d: t if item in (d.getVar(var) or "").split() else f)
        class D:
            def __init__(s, v): s.v = dict(v)
            def getVar(s, k): return s.v.get(k)
            def getVarFlag(s, k, f): return s.v.get("%s[%s]" % (k, f))
            def setVar(s, k, val): s.v[k] = val
            def appendVar(s, k, val): s.v[k] = (s.v.get(k) or "") + val
        """;

    /// <summary>Runs body after the stub and the class's python; body prints JSON on its last line.</summary>
    private static JsonElement RunPython(string body, bool asUnprivileged = false, TimeSpan? timeout = null)
    {
        var script = StubBb + "\n" + BitbakeClassTests.ClassPython() + "\n" + body;
        using var dir = new ScratchDir("rfe-bbstub");
        var file = dir["class.py"];
        File.WriteAllText(file, script);
        Run.Program("chmod", "a+r", file).ShouldSucceed();
        var r = Run.Program("/usr/bin/python3", [file], asUnprivileged, timeout: timeout ?? TimeSpan.FromMinutes(3)).ShouldSucceed();
        return JsonDocument.Parse(r.Stdout.Trim().Split('\n')[^1]).RootElement;
    }

    private static string Setup(string vars) => $$"""
        d = D({{vars}})
        rootfs_export_setup(d)
        print(json.dumps({"features": d.getVar("IMAGE_FEATURES"), "pm": d.getVar("FEATURE_PACKAGES_package-management"), "tasks": bb.tasks}))
        """;

    [Fact]
    public void Only_the_exported_images_get_package_state_and_the_task()
    {
        const string common = "\"ROOTFS_EXPORT_IMAGES\": \"core-image-minimal\", \"ROOTFS_EXPORT_AUTO\": \"1\", \"IMAGE_FEATURES\": \"ssh-server-dropbear\", \"ROOTFS_PKGMANAGE\": \"rpm dnf\", \"FEATURE_PACKAGES_package-management\": \"${ROOTFS_PKGMANAGE}\"";
        var exported = RunPython(Setup($"{{{common}, \"PN\": \"core-image-minimal\", \"__inherits\": \"image\", \"do_image_complete[task]\": \"1\"}}"));
        Assert.Equal("ssh-server-dropbear package-management", exported.GetProperty("features").GetString());
        Assert.Equal("rpm", exported.GetProperty("pm").GetString()); // no dnf, so no python3 either
        Assert.Equal("[[\"do_rootfs_export\",\"do_build\",\"do_image_complete\"]]", exported.GetProperty("tasks").GetRawText().Replace(" ", ""));

        // an initramfs image, and a recipe that is not an image though listed: untouched, so their signatures stay
        foreach (var other in new[] { "\"PN\": \"core-image-minimal-initramfs\", \"__inherits\": \"image\", \"do_image_complete[task]\": \"1\"", "\"PN\": \"core-image-minimal\", \"__inherits\": \"\"" })
        {
            var r = RunPython(Setup($"{{{common}, {other}}}"));
            Assert.Equal("ssh-server-dropbear", r.GetProperty("features").GetString());
            Assert.Equal("${ROOTFS_PKGMANAGE}", r.GetProperty("pm").GetString());
            Assert.Equal(0, r.GetProperty("tasks").GetArrayLength());
        }

        // the image chose package-management itself: its full package manager stays; without AUTO no task
        var own = RunPython(Setup("{\"ROOTFS_EXPORT_IMAGES\": \"img\", \"PN\": \"img\", \"__inherits\": \"image\", \"do_image_complete[task]\": \"1\", \"IMAGE_FEATURES\": \"package-management\", \"ROOTFS_PKGMANAGE\": \"dpkg apt\", \"FEATURE_PACKAGES_package-management\": \"dpkg apt\"}"));
        Assert.Equal("package-management", own.GetProperty("features").GetString());
        Assert.Equal("dpkg apt", own.GetProperty("pm").GetString());
        Assert.Equal(0, own.GetProperty("tasks").GetArrayLength());
    }

    [Fact]
    public void A_recipe_that_deploys_an_image_without_image_bbclass_gets_the_task_only()
    {
        var r = RunPython(Setup("{\"ROOTFS_EXPORT_IMAGES\": \"rfe-test-image\", \"ROOTFS_EXPORT_AUTO\": \"1\", \"PN\": \"rfe-test-image\", \"__inherits\": \"\", \"do_image_complete[task]\": \"1\"}"));
        Assert.Equal(JsonValueKind.Null, r.GetProperty("features").ValueKind);
        Assert.Equal(1, r.GetProperty("tasks").GetArrayLength());
        // the task reaches the tool through tmp/hosttools
        Assert.Contains("HOSTTOOLS_NONFATAL += \"rootfs-export\"", File.ReadAllText(Path.Combine(BitbakeClassTests.Repo, "meta-dotnet-netboot/classes/rootfs-export.bbclass")));
    }

    /// <summary>do_rootfs_export's datastore for the sample build, the tool reached through a wrapper on the task's PATH.</summary>
    private static string TaskVars(SampleBuildCopy build, string bin, string extra = "") => $$"""
        {"TOPDIR": "{{build.Root}}", "MACHINE": "qemux86-64", "IMAGE_BASENAME": "reference-base-image",
         "ROOTFS_EXPORT_BIN": "rootfs-export", "PATH": "{{bin}}:/usr/bin:/bin"{{extra}}}
        """;

    /// <summary>A rootfs-export on PATH that runs the tool under test and records the environment it got.</summary>
    private static string ToolWrapper(ScratchDir dir)
    {
        var bin = dir["bin"];
        Directory.CreateDirectory(bin);
        File.WriteAllText(Path.Combine(bin, "rootfs-export"),
            $"#!/bin/sh\necho \"PSEUDO_UNLOAD=$PSEUDO_UNLOAD LD_PRELOAD=$LD_PRELOAD\" >> {dir["env.log"]}\nexec dotnet {ToolCopy.Dll} \"$@\"\n");
        Run.Program("chmod", "-R", "a+rwx", dir.Path).ShouldSucceed();
        return bin;
    }

    private const string RunTask = """
        ok = rootfs_export_run(d)
        print(json.dumps({"ok": ok, "log": bb.log}))
        """;

    [Fact]
    public void Task_updates_the_export_outside_pseudo_then_writes_boot_entries()
    {
        using var build = new SampleBuildCopy();
        using var dir = new ScratchDir("rfe-bbtask");
        var bin = ToolWrapper(dir);
        var vars = TaskVars(build, bin, ", \"ROOTFS_EXPORT_TRANSPORT\": \"nfs\", \"ROOTFS_EXPORT_SERVER\": \"192.168.7.1:2049\"");
        var r = RunPython($"d = D({vars})\nos.environ['LD_PRELOAD'] = 'libpseudo.so'\n{RunTask}", asUnprivileged: true);
        var log = string.Join("\n", r.GetProperty("log").EnumerateArray().Select(e => e.GetString()));
        Assert.True(r.GetProperty("ok").GetBoolean(), log);
        Assert.DoesNotContain("WARN", log);
        var export = Path.Combine(build.Root, "export", "reference-base-image-qemux86-64");
        Assert.Contains($"update reference-base-image --build-dir {build.Root} --machine qemux86-64 --export {export}", log);
        Assert.Contains("hello-sample 1.0-r0 → 1.1-r0", log);
        Assert.Equal(["PSEUDO_UNLOAD=1 LD_PRELOAD=", "PSEUDO_UNLOAD=1 LD_PRELOAD="], File.ReadAllLines(dir["env.log"]));
        var entry = Directory.GetFiles(Path.Combine(export, "loader/entries"), "rootfs-export-*.conf").Single();
        Assert.Contains($"nfsroot=192.168.7.1:{export},v3,tcp,port=2049,mountport=2049", File.ReadAllText(entry));
    }

    [Fact]
    public void A_failure_is_a_warning_with_the_tools_own_message()
    {
        using var build = new SampleBuildCopy();
        using var dir = new ScratchDir("rfe-bbtask");
        var bin = ToolWrapper(dir);
        var wrong = RunPython($"d = D({TaskVars(build, bin).Replace("\"qemux86-64\"", "\"qemuarm64\"")})\n{RunTask}", asUnprivileged: true);
        Assert.False(wrong.GetProperty("ok").GetBoolean());
        var warn = wrong.GetProperty("log").EnumerateArray().Select(e => e.GetString()!).Single(l => l.StartsWith("WARN"));
        Assert.Matches(@"^WARN rootfs-export update failed \(exit 1\): rootfs-export: error: image directory '.*/qemuarm64' does not exist", warn);

        var missing = RunPython($"d = D({TaskVars(build, "/nonexistent")})\n{RunTask}");
        Assert.Contains("'rootfs-export' not found for the task", missing.GetProperty("log")[0].GetString());
    }

    [Fact]
    public void The_notifier_asks_every_watch_at_once()
    {
        using var build = new SampleBuildCopy();
        using var watch = WatchProcess.Start(build);
        var socketDir = Path.Combine(build.Root, ".rootfs-export");
        // two watches that accept (the kernel's backlog does) and never answer, sorted before the real one
        var r = RunPython($$"""
            import socket, time
            silent = []
            for name in ("a-silent.sock", "b-silent.sock"):
                s = socket.socket(socket.AF_UNIX); s.bind(os.path.join("{{socketDir}}", name)); s.listen(4); silent.append(s)
            d = D({"ROOTFS_EXPORT_SOCKET_DIR": "{{socketDir}}", "ROOTFS_EXPORT_NOTIFY_TIMEOUT": "1.0"})
            t = time.monotonic()
            answered = rootfs_export_notify(d, "build-done reference-base-image")
            print(json.dumps({"answered": answered, "elapsed": time.monotonic() - t}))
            """);
        Assert.Equal(1, r.GetProperty("answered").GetInt32());
        Assert.InRange(r.GetProperty("elapsed").GetDouble(), 0.9, 1.5); // the budget once, not once per socket
        watch.WaitFor("refresh (socket: build-done reference-base-image)");
    }
}
