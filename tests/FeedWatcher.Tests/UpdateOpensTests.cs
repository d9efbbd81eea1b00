using System.Text.RegularExpressions;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.FeedWatcher.Tests;

/// <summary>
/// Issue #20: one `update` takes pseudo's writer lock once and opens files.db once, whatever steps it runs (image
/// check, feeds, boot entries). Seen from outside with strace on the real CLI run as the unprivileged user: the
/// opens of files.db and of pseudo.lock, and the fcntl write locks taken. The export directory itself is opened
/// by its path once too: every step after that reaches it through the handle's directory fd, so a path that
/// changed meanwhile (a symlink put in its place) is never followed.
/// </summary>
public sealed class UpdateOpensTests
{
    [Fact]
    public void One_update_that_applies_a_package_opens_files_db_and_the_lock_once()
    {
        var strace = Run.RequirePeer("strace");
        using var b = new FeedUpdateTests.Build();
        b.Update("--no-feeds").ShouldSucceed();
        var log = b.Dir["strace.log"];
        var run = Run.Program(strace, ["-f", "-qq", "-e", "trace=openat,openat2,fcntl", "-o", log, "dotnet", ToolCopy.Dll, "update", "reference-base-image"],
            asUnprivileged: true, b.Env, b.Dir.Path);
        run.ShouldSucceed();
        Assert.Contains("hello-sample 1.0-r0 → 1.1-r0", run.Stdout);

        var calls = File.ReadAllLines(log);
        var dbOpens = calls.Where(l => Regex.IsMatch(l, @"openat2?\(.*/files\.db"",") && !l.Contains("ENOENT")).ToList();
        // the writer lock: pseudo.lock opened for writing (a read-only open is the probe for a live pseudo server)
        var lockOpens = calls.Where(l => l.Contains("/pseudo.lock\"") && l.Contains("O_RDWR") && !l.Contains("ENOENT")).ToList();
        var writeLocks = calls.Count(l => l.Contains("F_SETLK") && l.Contains("F_WRLCK") && !l.Contains("= -1"));
        Assert.True(dbOpens.Count == 1, "files.db opened " + dbOpens.Count + " times:\n" + string.Join("\n", dbOpens));
        Assert.True(lockOpens.Count == 1, "pseudo.lock opened for writing " + lockOpens.Count + " times:\n" + string.Join("\n", lockOpens));
        Assert.True(writeLocks >= 1, "no fcntl write lock seen");
        var export = RootfsExport.PseudoDb.ExportPaths.Canonical(b.Export);
        var exportOpens = calls.Where(l => l.Contains($"\"{export}\", ") && l.Contains("O_DIRECTORY") && !l.Contains("ENOENT")).ToList();
        Assert.True(exportOpens.Count == 1, "the export directory opened by path " + exportOpens.Count + " times:\n" + string.Join("\n", exportOpens));
        Assert.Contains("O_NOFOLLOW", exportOpens[0]); // a symlink put in the export's place is not followed
    }
}
