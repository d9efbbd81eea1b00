using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Tests;

/// <summary>
/// The board is root on its side and writes the export over 9P: any path a host command touches may be a
/// symlink it made to the host user's files. For each such path in turn, `payload modules`, `exec` (name
/// lookups in etc/passwd and etc/group) and `check --repair` neither read nor write outside the export:
/// the canary files outside stay byte for byte the same and their text never reaches what the command
/// writes or prints.
/// </summary>
public sealed class BoardSymlinkCommandTests
{
    private const string Secret = "CANARY-91c4";

    private sealed class Setup : IDisposable
    {
        public readonly ScratchDir Dir = new();
        public string Export => Dir["export"];
        public string Outside => Dir["outside"];

        public Setup()
        {
            var src = Dir["src"];
            Write(src, "etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
            Write(src, "etc/group", "root:x:0:\n");
            Write(src, "lib/modules/6.6.1/kernel/a.ko", "module a");
            Write(src, "lib/modules/6.6.1/modules.dep", "kernel/a.ko:\n");
            Write(src, "boot/Image-6.6.1", "kernel");
            Run.Shell($"tar --numeric-owner --owner=0 --group=0 -C {src} -cf {Dir["rootfs.tar"]} . && chmod a+r {Dir["rootfs.tar"]}").ShouldSucceed();
            Run.Tool("unpack", Dir["rootfs.tar"], Export).ShouldSucceed();
            Write(Outside, "secret", Secret);
            Write(Outside, "passwd", $"leaked{Secret}:x:0:0::/:/bin/sh\n");
            Write(Outside, "group", $"leaked{Secret}:x:0:\n");
            Write(Outside, "modules/6.6.1/kernel/secret.ko", Secret);
            Write(Outside, "etc/passwd", $"leaked{Secret}:x:0:0::/:/bin/sh\n");
        }

        private static void Write(string root, string rel, string text)
        {
            var p = Path.Combine(root, rel);
            Directory.CreateDirectory(Path.GetDirectoryName(p)!);
            File.WriteAllText(p, text);
        }

        /// <summary>The board's move: the export path becomes a symlink to a host path.</summary>
        public void Plant(string rel, string target)
        {
            var p = Path.Combine(Export, rel);
            Run.Program("rm", "-rf", p).ShouldSucceed();
            File.CreateSymbolicLink(p, Path.Combine(Outside, target));
        }

        public Dictionary<string, string> Snapshot() =>
            Directory.EnumerateFileSystemEntries(Outside, "*", SearchOption.AllDirectories)
                .ToDictionary(p => p, p => File.Exists(p) ? Convert.ToHexString(File.ReadAllBytes(p)) : "dir");

        public void Dispose() => Dir.Dispose();
    }

    [Theory]
    [InlineData("lib/modules", "modules")]
    [InlineData("lib/modules/6.6.1", "modules/6.6.1")]
    [InlineData("lib/modules/6.6.1/kernel", "modules/6.6.1/kernel")]
    [InlineData("lib/modules/6.6.1/kernel/a.ko", "secret")]
    [InlineData("lib/modules/6.6.1/modules.dep", "secret")]
    public void Payload_modules_packs_no_host_file(string rel, string target)
    {
        using var s = new Setup();
        s.Plant(rel, target);
        var before = s.Snapshot();
        var result = Run.Tool("payload", "modules", s.Export, "-o", s.Dir["modules.cpio"]);
        Assert.Equal(before, s.Snapshot());
        if (result.ExitCode == 0) Assert.DoesNotContain(Secret, File.ReadAllText(s.Dir["modules.cpio"]));
        Assert.DoesNotContain(Secret, result.All);
    }

    [Theory]
    [InlineData("etc/passwd", "passwd")]
    [InlineData("etc/group", "group")]
    [InlineData("etc", "")]
    public void Exec_resolves_names_only_from_the_export(string rel, string target)
    {
        using var s = new Setup();
        s.Plant(rel, target);
        var before = s.Snapshot();
        var result = Run.Tool("exec", s.Export, "--", "sh", "-c", "id -un; id -gn; true");
        Assert.Equal(before, s.Snapshot());
        Assert.DoesNotContain(Secret, result.All);
    }

    [Theory]
    [InlineData("etc", "")]
    [InlineData("boot", "modules")]
    [InlineData("etc/passwd", "secret")]
    public void Check_repair_stays_in_the_export(string rel, string target)
    {
        using var s = new Setup();
        s.Plant(rel, target);
        var before = s.Snapshot();
        Run.Tool("check", "--repair", s.Export);
        Run.Tool("check", s.Export).ShouldSucceed();
        Assert.Equal(before, s.Snapshot());
        var rows = Run.Program("sqlite3", s.Export + ".pseudo_state/files.db", "select path from files").ShouldSucceed().Stdout;
        Assert.DoesNotContain(s.Outside, rows);
    }

    [Fact]
    public void Exec_still_resolves_the_targets_own_names()
    {
        using var s = new Setup();
        var result = Run.Tool("exec", s.Export, "--", "stat", "-c", "%U:%G", s.Export + "/etc/passwd").ShouldSucceed();
        Assert.Equal("root:root", result.Stdout.Trim());
    }
}
