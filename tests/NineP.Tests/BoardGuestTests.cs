using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using RootfsExport.BootSpec;
using RootfsExport.ExportServing;
using RootfsExport.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace RootfsExport.NineP.Tests;

/// <summary>
/// Issue 23's acceptance with real boards: two Linux 6.12 guests (QEMU TCG) mount one export served by one
/// `rootfs-export serve` (uid 65534), as boards a and b (aname &lt;export&gt;@a, @b), at the same time. Each, as
/// root, creates, chowns, deletes and overwrites files and makes and chowns a directory; neither sees the
/// other's changes, and the shared export and its files.db stay as they were. A package rebuilt in the feed
/// (a changed file, a new one) is applied by `update` while both are mounted and reaches both, except the file
/// a board overwrote itself. `board list` shows both served; `board diff` lists exactly each board's changes with
/// owners; once a has unmounted, its `board commit` is handed to the running serve, and b, after `board reset` and
/// mounted again, sees the export with a's changes; `check` is clean and real pseudo sees a's owners there.
/// </summary>
public class BoardGuestTests(ITestOutputHelper output)
{
    private const string Arch = "core2-64";

    /// <summary>The paths each guest reports, in this order, as path=uid:gid:mode[:content] or path=- when absent.</summary>
    private static readonly string[] Watched =
    [
        "etc/created-by-a", "etc/created-by-b", "etc/hostname", "etc/motd", "etc/issue",
        "usr/share/app/conf", "usr/share/app/readme", "usr/share/app/new", "var/lib/a-data", "var/lib/b-data",
    ];

    /// <summary>What each board does as root: one of each kind of change, on partly the same paths as the other.</summary>
    private static readonly Dictionary<string, string> Changes = new()
    {
        ["a"] = """
            echo a > /mnt/etc/created-by-a
            chown 1234:5678 /mnt/etc/hostname
            rm /mnt/etc/motd
            echo a-conf > /mnt/usr/share/app/conf
            mkdir /mnt/var/lib/a-data && chown 1234:5678 /mnt/var/lib/a-data
            """,
        ["b"] = """
            echo b > /mnt/etc/created-by-b
            chown 4321:8765 /mnt/etc/hostname
            rm /mnt/etc/issue
            echo b-readme > /mnt/usr/share/app/readme
            mkdir /mnt/var/lib/b-data && chown 4321:8765 /mnt/var/lib/b-data
            """,
    };

    [Fact]
    [Trait("Category", "EndToEnd")]
    public async Task Two_guests_on_one_export_keep_their_own_changes_get_the_update_and_a_reset_board_sees_the_export()
    {
        using var build = new OeFeedBuild("""
            printf 'base\n' > etc/hostname; printf 'motd\n' > etc/motd; printf 'issue\n' > etc/issue
            chmod 644 etc/hostname etc/motd etc/issue
            mkdir -p var/lib/opkg/info && : > var/lib/opkg/status
            """, [$"app {Arch} 1.0-r0"]);
        build.Ipk("app", "1.0-r0", Arch, [new("/usr/share/app/conf", "conf-1\n"), new("/usr/share/app/readme", "readme-1\n")]);
        build.Update().ShouldSucceed();
        var export = build.Export;
        var original = BoardOverlayTests.Fingerprint(export);
        var secondPort = FreePort();

        string beforeUpdate, afterUpdate;
        Task<string>[] guests = [];
        try
        {
            using (var serve = new BackgroundTool(["serve", export, "--9p", "tcp:127.0.0.1:0"]))
            {
                serve.WaitFor("updates:", 120);
                var port = int.Parse(Regex.Match(serve.Output, @"over 9P2000\.L on tcp:127\.0\.0\.1:(\d+)").Groups[1].Value);
                guests = new[] { "a", "b" }.Select(board => Task.Run(() => TcpGuest.Boot(GuestWork(build, board),
                    GuestInit(export, board, port, board == "b" ? secondPort : null), board == "b" ? [port, secondPort] : [port], seconds: 400))).ToArray();
                foreach (var board in new[] { "a", "b" })
                    await WaitUntil(() => File.Exists(Path.Combine(BoardPaths.For(export, board).Upper, "tmp/changed")), $"board {board}'s changes", guests, serve);
                Assert.Equal(original, BoardOverlayTests.Fingerprint(export)); // both boards changed only their layers
                var list = ListWhenBothRecorded(export);
                Assert.Matches(@"(?m)^a\s+6 change\(s\): 3 added, 2 modified, 1 deleted\s+served by pid \d+$", list);
                Assert.Matches(@"(?m)^b\s+6 change\(s\): 3 added, 2 modified, 1 deleted\s+served by pid \d+$", list);

                // the package is rebuilt (same version): a changed file, a new one; update hands it to the serve
                build.Ipk("app", "1.0-r0", Arch, [new("/usr/share/app/conf", "conf-2\n"), new("/usr/share/app/readme", "readme-2\n"), new("/usr/share/app/new", "new-2\n")]);
                beforeUpdate = BoardOverlayTests.Fingerprint(export);
                Assert.Contains("the serving process applies the update", build.Update().ShouldSucceed().Stdout);
                await WaitUntil(() => EstablishedOn(port) == 0, "both guests unmounting", guests, serve);

                // a has unmounted: its commit is handed to the serve, which is still running
                Assert.Equal(ChangesOfA, Lines(Board("diff", export, "a")));
                afterUpdate = BoardOverlayTests.Fingerprint(export);
                var commit = Lines(CommitOnceDetached(export, "a"));
                Assert.Contains("the serving process does the commit of board a", commit[0]);
                Assert.Equal(ChangesOfA, commit[1..^1]);
                Assert.StartsWith("committed board a into ", commit[^1]);
                Assert.Equal(0, serve.Stop());
                Assert.Contains("stopped; the database is consistent", serve.Output);
                output.WriteLine(serve.Output);
            }
            Assert.Equal([
                "added -rw-r--r-- 0:0 /etc/created-by-b",
                "modified -rw-r--r-- 4321:8765 /etc/hostname",
                "deleted -rw-r--r-- 0:0 /etc/issue",
                "modified -rw-r--r-- 0:0 /tmp/changed", // a's marker is in the shared export since a's commit
                "modified -rw-r--r-- 0:0 /usr/share/app/readme",
                "added drwxr-xr-x 4321:8765 /var/lib/b-data",
            ], Lines(Board("diff", export, "b")));
            Assert.Contains("board b reset: dropped 6 change(s)", Board("reset", export, "b"));
            using (var again = new BackgroundTool(["serve", export, "--9p", $"tcp:127.0.0.1:{secondPort}"]))
            {
                await WaitUntil(() => guests.All(g => g.IsCompleted), "the guests' end", guests, again);
                Assert.Equal(0, again.Stop());
            }
        }
        finally
        {
            await Task.WhenAll(guests.Select(g => g.ContinueWith(_ => { }))); // their loops are bounded and QEMU runs under timeout
        }
        var consoles = guests.Select(g => g.Result).ToArray();
        foreach (var c in consoles) output.WriteLine(c);
        AssertViews(consoles);
        AssertSharedChangedOnlyByTheUpdate(beforeUpdate, afterUpdate);
        Assert.Contains("clean:", build.Check().ShouldSucceed().Stdout);
        AssertCommittedA(export);
    }

    /// <summary>What each guest saw: its own changes only, the update except where it changed the path, and after b's reset the export.</summary>
    private static void AssertViews(string[] consoles)
    {
        var a = consoles[0];
        var b = consoles[1];
        foreach (var c in consoles)
        {
            Assert.Contains("@@DONE", c);
            Assert.DoesNotContain("@@FAIL", c);
        }
        Assert.Contains("@@VIEW-1 " + View(("etc/created-by-a", "0:0:644:a"), ("etc/hostname", "1234:5678:644:base"), ("etc/issue", "0:0:644:issue"),
            ("usr/share/app/conf", "0:0:644:a-conf"), ("usr/share/app/readme", "0:0:644:readme-1"), ("var/lib/a-data", "1234:5678:755")), a);
        Assert.Contains("@@VIEW-1 " + View(("etc/created-by-b", "0:0:644:b"), ("etc/hostname", "4321:8765:644:base"), ("etc/motd", "0:0:644:motd"),
            ("usr/share/app/conf", "0:0:644:conf-1"), ("usr/share/app/readme", "0:0:644:b-readme"), ("var/lib/b-data", "4321:8765:755")), b);
        // the update reaches both boards, except the file each overwrote itself
        Assert.Contains("@@VIEW-2 " + View(("etc/created-by-a", "0:0:644:a"), ("etc/hostname", "1234:5678:644:base"), ("etc/issue", "0:0:644:issue"),
            ("usr/share/app/conf", "0:0:644:a-conf"), ("usr/share/app/readme", "0:0:644:readme-2"), ("usr/share/app/new", "0:0:644:new-2"),
            ("var/lib/a-data", "1234:5678:755")), a);
        Assert.Contains("@@VIEW-2 " + View(("etc/created-by-b", "0:0:644:b"), ("etc/hostname", "4321:8765:644:base"), ("etc/motd", "0:0:644:motd"),
            ("usr/share/app/conf", "0:0:644:conf-2"), ("usr/share/app/readme", "0:0:644:b-readme"), ("usr/share/app/new", "0:0:644:new-2"),
            ("var/lib/b-data", "4321:8765:755")), b);
        // b reset and mounted again: the export as it is now, with a's committed changes and none of b's
        Assert.Contains("@@VIEW-3 " + View(("etc/created-by-a", "0:0:644:a"), ("etc/hostname", "1234:5678:644:base"), ("etc/issue", "0:0:644:issue"),
            ("usr/share/app/conf", "0:0:644:a-conf"), ("usr/share/app/readme", "0:0:644:readme-2"), ("usr/share/app/new", "0:0:644:new-2"),
            ("var/lib/a-data", "1234:5678:755")), b);
    }

    /// <summary>The guest's view line: every watched path, "-" for the ones not given.</summary>
    private static string View(params (string Path, string Seen)[] present)
    {
        var seen = present.ToDictionary(p => p.Path, p => p.Seen);
        return string.Join(' ', Watched.Select(p => $"{p}={seen.GetValueOrDefault(p, "-")}")) + " @@END";
    }

    /// <summary>Between the boards' changes and the end, only what the update wrote changed in the shared export.</summary>
    private void AssertSharedChangedOnlyByTheUpdate(string before, string after)
    {
        static Dictionary<string, string> Lines(string f) => f.Split('\n').ToDictionary(l => l[..l.IndexOf(' ')], l => l);
        var (b, a) = (Lines(before), Lines(after));
        var changed = b.Keys.Union(a.Keys).Where(k => b.GetValueOrDefault(k) != a.GetValueOrDefault(k)).Order(StringComparer.Ordinal).ToList();
        output.WriteLine("changed in the shared export by the update: " + string.Join(", ", changed));
        // the package's files, opkg's records of it, update's stamp and files.db; nothing a board did
        Assert.Subset(new HashSet<string>(["/usr/share/app/conf", "/usr/share/app/readme", "/usr/share/app/new", "/etc/rootfs-export-updated", "files.db"]),
            changed.Where(c => !c.StartsWith("/var/lib/opkg/", StringComparison.Ordinal)).ToHashSet());
        Assert.Contains("/usr/share/app/new", changed);
        Assert.Contains("/usr/share/app/conf", changed);
    }

    /// <summary>Board a's changes, as `board diff` and `board commit` list them (and the marker it left for the host).</summary>
    private static readonly string[] ChangesOfA =
    [
        "added -rw-r--r-- 0:0 /etc/created-by-a",
        "modified -rw-r--r-- 1234:5678 /etc/hostname",
        "deleted -rw-r--r-- 0:0 /etc/motd",
        "added -rw-r--r-- 0:0 /tmp/changed",
        "modified -rw-r--r-- 0:0 /usr/share/app/conf",
        "added drwxr-xr-x 1234:5678 /var/lib/a-data",
    ];

    /// <summary>`board commit`, handed to the serve, again while the serve has not yet seen the board's connection close (up to 2 s).</summary>
    private static string CommitOnceDetached(string export, string board)
    {
        for (int i = 0; ; i++)
        {
            var commit = Run.Tool(["board", "commit", export, board], null);
            if (commit.ExitCode == 0 || !commit.Stderr.Contains("is attached to this serve") || i == 20) return commit.ShouldSucceed().Stdout;
            Thread.Sleep(100);
        }
    }

    /// <summary>After a's commit the shared export has a's content and real pseudo sees a's owners there.</summary>
    private static void AssertCommittedA(string export)
    {
        Assert.Equal("a-conf\n", File.ReadAllText(Path.Combine(export, "usr/share/app/conf"))); // the board's own, over the update's
        Assert.False(File.Exists(Path.Combine(export, "etc/motd")));
        Assert.False(Directory.Exists(BoardPaths.For(export, "a").Upper));
        PseudoSees(export, new()
        {
            ["etc/created-by-a"] = "0 0 644 regular file",
            ["etc/hostname"] = "1234 5678 644 regular file",
            ["usr/share/app/conf"] = "0 0 644 regular file",
            ["var/lib/a-data"] = "1234 5678 755 directory",
        });
    }

    /// <summary>Real pseudo, on the shared export's own state, reports these owners.</summary>
    private static void PseudoSees(string export, Dictionary<string, string> expected)
    {
        Run.RequirePeer("pseudo");
        var env = new Dictionary<string, string> { ["PSEUDO_PREFIX"] = "/usr", ["PSEUDO_LOCALSTATEDIR"] = PseudoDb.PseudoState.ForExport(export).Directory };
        var root = PseudoDb.ExportPaths.Canonical(export);
        try
        {
            var stat = Run.Program("pseudo", new[] { "stat", "-c", "%n %u %g %a %F" }.Concat(expected.Keys.Select(k => Path.Combine(root, k))),
                asUnprivileged: true, env: env, timeout: TimeSpan.FromMinutes(1)).ShouldSucceed().Stdout;
            Assert.Equal(expected.Select(e => $"{e.Key} {e.Value}").ToArray(), Lines(stat).Select(l => l[(root.Length + 1)..]).ToArray());
        }
        finally
        {
            Run.Program("pseudo", ["-S"], asUnprivileged: true, env: env, timeout: TimeSpan.FromMinutes(1));
        }
    }

    /// <summary>
    /// `board list` once the serve has recorded both boards' six changes: a guest's last file is in its layer before the
    /// serve writes its row (files.db is written in groups, within 200 ms), so the list is read again for up to 2 s.
    /// </summary>
    private static string ListWhenBothRecorded(string export)
    {
        for (int i = 0; ; i++)
        {
            var list = Board("list", export);
            if (Regex.Matches(list, @"(?m)^[ab]\s+6 change\(s\)").Count == 2 || i == 20) return list;
            Thread.Sleep(100);
        }
    }

    /// <summary>`rootfs-export board ...` as uid 65534; its standard output.</summary>
    private static string Board(params string[] args) => Run.Tool(["board", .. args], null).ShouldSucceed().Stdout;

    /// <summary>Non-empty lines, runs of spaces (the CLI's column padding) made one.</summary>
    private static string[] Lines(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => Regex.Replace(l.Trim(), " +", " ")).ToArray();

    /// <summary>
    /// A board's /init: mount as the board, make its changes, report its view, mark that it is done (in its own
    /// layer, where the host sees it), wait (bounded) for the update, report again and unmount. With a second port
    /// (board b), it then mounts again from the server started there after its reset and reports once more.
    /// </summary>
    private static string GuestInit(string export, string board, int port, int? secondPort)
    {
        string Options(int index, int p) => new NinePTcpEndpoint(IPAddress.Parse(TcpGuest.Address(index)), $"{export}@{board}", p).MountOptions;
        var again = secondPort is { } p2 ? $$"""
            i=0; until mount -t 9p -o {{Options(1, p2)}} {{TcpGuest.Address(1)}} /mnt 2>/dev/null || [ $i -ge 300 ]; do sleep 0.5; i=$((i+1)); done
            echo "@@VIEW-3 $(view)"
            umount /mnt || echo "@@FAIL umount again"
            """ : "";
        return TcpGuest.Prelude + $$"""

            view() {
              for f in {{string.Join(' ', Watched)}}; do
                if [ -e /mnt/$f ]; then
                  printf '%s=%s' $f "$(stat -c %u:%g:%a /mnt/$f)"; [ -f /mnt/$f ] && printf ':%s' "$(cat /mnt/$f)"; printf ' '
                else printf '%s=- ' $f; fi
              done
              echo @@END
            }
            mount -t 9p -o {{Options(0, port)}} {{TcpGuest.Address(0)}} /mnt || echo "@@FAIL mount"
            {{Changes[board]}}
            echo "@@VIEW-1 $(view)"
            echo > /mnt/tmp/changed
            i=0; until [ -e /mnt/usr/share/app/new ] || [ $i -ge 600 ]; do sleep 0.2; i=$((i+1)); done
            echo "@@VIEW-2 $(view)"
            umount /mnt || echo "@@FAIL umount"
            {{again}}
            echo "@@DONE"
            poweroff -f
            """;
    }

    private static string GuestWork(OeFeedBuild build, string board)
    {
        var dir = Path.Combine(build.Work, "guest-" + board);
        Directory.CreateDirectory(dir);
        return dir;
    }

    private static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }

    /// <summary>Established TCP connections whose local end is 127.0.0.1:port (the server's side of each mount).</summary>
    private static int EstablishedOn(int port) => File.ReadLines("/proc/net/tcp").Skip(1)
        .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        .Count(f => f[3] == "01" && int.Parse(f[1][(f[1].IndexOf(':') + 1)..], NumberStyles.HexNumber) == port);

    /// <summary>Waits (bounded, 3 min) for a condition; fails with the guests' consoles and the serve's output.</summary>
    private static async Task WaitUntil(Func<bool> condition, string what, Task<string>[] guests, BackgroundTool serve)
    {
        for (int i = 0; i < 1800 && !condition() && !guests.All(g => g.IsCompleted); i++) await Task.Delay(100);
        if (!condition())
            throw new Xunit.Sdk.XunitException($"no {what}\n--- serve:\n{serve.Output}\n--- guests:\n{string.Join("\n---\n", guests.Where(g => g.IsCompleted).Select(g => g.Result))}");
    }
}
