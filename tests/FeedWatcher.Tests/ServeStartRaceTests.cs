using System.Diagnostics;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.FeedWatcher.Tests;

/// <summary>
/// A serve takes the export's lock before it opens its control socket (it loads files.db in between). An `update`
/// that comes in that moment waits for the socket while the lock holder is a serving rootfs-export, instead of
/// failing with "lock held" (docs/DEVLOOP.md). The holder here is a stand-in whose command line is a serve's: it
/// takes pseudo's fcntl lock, opens the socket 1.5 s later and answers one request.
/// </summary>
public sealed class ServeStartRaceTests
{
    private const string StandIn = """
        import fcntl, os, socket, sys, time
        state = sys.argv[2]
        lock = os.open(os.path.join(state, "pseudo.lock"), os.O_RDWR | os.O_CREAT, 0o644)
        fcntl.lockf(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        open(os.path.join(state, "stand-in-locked"), "w").close()
        time.sleep(1.5)
        path = os.path.join(state, "rootfs-export.sock")
        s = socket.socket(socket.AF_UNIX); s.bind(path); s.listen(1); s.settimeout(60)
        c, _ = s.accept(); f = c.makefile("rw")
        command = [l.strip() for l in iter(f.readline, "\n") if l.startswith("command")]
        f.write("out the stand-in serve got: %s\nexit 0 0\n" % " ".join(command)); f.flush()
        c.close(); s.close(); os.unlink(path)
        """;

    [Fact]
    public void Update_waits_for_a_starting_serve_to_open_its_control_socket()
    {
        using var b = new FeedUpdateTests.Build();
        b.Update().ShouldSucceed();
        var state = b.Export + ".pseudo_state";
        var script = Path.Combine(b.Dir.Path, "rootfs-export"); // the name a serve's command line has
        File.WriteAllText(script, StandIn);
        Run.Program("chmod", "a+r", script).ShouldSucceed();
        var psi = new ProcessStartInfo(Run.IsRoot ? "setpriv" : "python3") { UseShellExecute = false };
        foreach (var a in (Run.IsRoot ? new[] { $"--reuid={Run.NobodyId}", $"--regid={Run.NobodyId}", "--clear-groups", "/usr/bin/python3" } : []).Concat([script, "serve", state]))
            psi.ArgumentList.Add(a);
        using var standIn = Process.Start(psi)!;
        try
        {
            for (int i = 0; i < 300 && !File.Exists(Path.Combine(state, "stand-in-locked")); i++) Thread.Sleep(50);
            Assert.True(File.Exists(Path.Combine(state, "stand-in-locked")), "the stand-in never took the lock");
            var update = Run.Tool(["update", "reference-base-image"], new Dictionary<string, string>(b.Env) { ["XDG_RUNTIME_DIR"] = "" }, cwd: b.Dir.Path);
            Assert.True(update.ExitCode == 0, update.All);
            Assert.Contains("is being served: the serving process applies the update", update.Stdout);
            Assert.Contains("the stand-in serve got: command update", update.Stdout);
        }
        finally
        {
            if (!standIn.WaitForExit(10_000)) standIn.Kill();
        }
    }

    [Fact]
    public void Update_does_not_wait_for_a_lock_holder_that_is_no_serve()
    {
        using var b = new FeedUpdateTests.Build();
        b.Update().ShouldSucceed();
        var state = b.Export + ".pseudo_state";
        // flock(1) takes no fcntl lock; python's lockf does: a holder whose command line is not rootfs-export's
        var holder = Run.Shell($"""
            python3 -c 'import fcntl, os, time; fd = os.open("{state}/pseudo.lock", os.O_RDWR); fcntl.lockf(fd, fcntl.LOCK_EX); open("{state}/held", "w").close(); time.sleep(4)' &
            for i in $(seq 100); do [ -e {state}/held ] && break; sleep 0.05; done
            {(Run.IsRoot ? $"setpriv --reuid={Run.NobodyId} --regid={Run.NobodyId} --clear-groups env HOME=/tmp BUILDDIR={b.Root}" : $"env BUILDDIR={b.Root}")} dotnet {ToolCopy.Dll} update reference-base-image; echo "rc=$?"
            wait
            """);
        Assert.Contains("is held by pid", holder.All);
        Assert.Contains("rc=1", holder.Stdout); // it did not wait for the holder to let go (then it would have updated)
    }
}
