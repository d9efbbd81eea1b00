using RootfsExport.Posix;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Tests;

/// <summary>
/// Names that are not UTF-8 inside an export (a board can make them over 9P or NFS; Linux names are bytes):
/// read back as the bytes they are, two such names never become one, `check` names them clearly and never
/// records them under a merged name, and `unpack --replace` still removes a tree holding them.
/// </summary>
public sealed class NonUtf8NameTests
{
    /// <summary>An export from a small tarball, plus files 'a\xff', 'a\xfe' and a directory 'd\xff' made with raw bytes.</summary>
    private static (ScratchDir Dir, string Export) ExportWithRawNames()
    {
        var dir = new ScratchDir();
        Run.Shell($"mkdir -p {dir["src/etc"]} && echo x > {dir["src/etc/hostname"]} && tar --owner=0 --group=0 -C {dir["src"]} -cf {dir["t.tar"]} . && chmod a+r {dir["t.tar"]}").ShouldSucceed();
        var export = dir["export"];
        Run.Tool("unpack", dir["t.tar"], export).ShouldSucceed();
        Run.Program("/usr/bin/python3", ["-c", $"""
            import os
            e = b'{export}'
            open(e + b'/etc/a\xff', 'w').write('ff'); open(e + b'/etc/a\xfe', 'w').write('fe')
            os.mkdir(e + b'/d\xff'); open(e + b'/d\xff/inner', 'w').write('in')
            """], asUnprivileged: true).ShouldSucceed();
        return (dir, export);
    }

    [Fact]
    public void Raw_names_read_back_as_their_bytes_and_stay_apart()
    {
        var (dir, export) = ExportWithRawNames();
        using var owned = dir;
        using var etc = HostDirectory.Open(Path.Combine(export, "etc"));
        var raw = etc.ReadEntries().Select(e => e.Name).Where(FileName.IsRaw).Order(StringComparer.Ordinal).ToList();
        Assert.Equal(["a\uDCFE", "a\uDCFF"], raw);
        Assert.Equal([(byte)'a', 0xfe], FileName.ToBytes(raw[0]));
        Assert.Equal("a\\xff", FileName.Shown(raw[1]));
        // every *at() call gets the same bytes back: stat and read each, then remove each
        Assert.Equal(2L, (long)etc.Stat(raw[0]).Size);
        Assert.Equal("ff"u8.ToArray(), etc.ReadFileBeneath(raw[1]));
        etc.Unlink(raw[0]);
        Assert.True(etc.TryStat(raw[1], out _));
        Assert.False(etc.TryStat(raw[0], out _));
    }

    [Fact]
    public void Check_names_each_raw_name_and_repair_never_records_a_merged_one()
    {
        var (dir, export) = ExportWithRawNames();
        using var owned = dir;
        var check = Run.Tool("check", export);
        Assert.Equal(1, check.ExitCode);
        Assert.Contains($"UnencodableName {export}/etc/a\\xff:", check.Stdout);
        Assert.Contains($"UnencodableName {export}/etc/a\\xfe:", check.Stdout);
        Assert.Contains($"UnencodableName {export}/d\\xff:", check.Stdout);
        Assert.DoesNotContain("inner", check.Stdout); // what is below a raw name is left out with it

        var repair = Run.Tool("check", "--repair", export);
        Assert.Equal(1, repair.ExitCode);
        Assert.Contains("not all can be repaired", repair.Stdout);
        var merged = Run.Program("sqlite3", export + ".pseudo_state/files.db",
            "select count(*) from files where instr(path, char(65533)) > 0 or path like '%/a_' or path like '%inner'").ShouldSucceed().Stdout.Trim();
        Assert.Equal("0", merged);
    }

    [Fact]
    public void Unpack_replace_removes_a_tree_holding_raw_names()
    {
        var (dir, export) = ExportWithRawNames();
        using var owned = dir;
        Run.Tool("unpack", "--replace", dir["t.tar"], export).ShouldSucceed();
        Assert.Equal(["hostname"], Directory.EnumerateFileSystemEntries(Path.Combine(export, "etc")).Select(Path.GetFileName));
        Assert.False(Directory.Exists(Path.Combine(export, "d\uFFFD")));
        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(dir.Path), p => Path.GetFileName(p).Contains(".rfe-"));
        Assert.Contains("clean:", Run.Tool("check", export).ShouldSucceed().Stdout);
    }
}
