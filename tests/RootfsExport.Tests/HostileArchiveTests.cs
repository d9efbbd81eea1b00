using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Tests;

/// <summary>
/// Each kind of hostile or broken archive is refused with a clear error, nothing outside the export is
/// touched, and no half export or stale database is left behind.
/// </summary>
public sealed class HostileArchiveTests
{
    /// <summary>Builds a tar with Python's tarfile, which writes whatever names and links we ask for.</summary>
    private static string MakeTar(ScratchDir dir, string name, string pythonMembers, string compression = "", string format = "PAX_FORMAT")
    {
        var path = dir[name];
        Run.Program("python3", "-c", $$"""
            import tarfile, io
            t = tarfile.open('{{path}}', 'w{{(compression.Length > 0 ? ":" + compression : "")}}', format=tarfile.{{format}})
            def d(n):
                i = tarfile.TarInfo(n); i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)
            def f(n, data=b'x'):
                i = tarfile.TarInfo(n); i.size = len(data); i.mode = 0o644; t.addfile(i, io.BytesIO(data))
            def sym(n, target):
                i = tarfile.TarInfo(n); i.type = tarfile.SYMTYPE; i.linkname = target; t.addfile(i)
            def hard(n, target):
                i = tarfile.TarInfo(n); i.type = tarfile.LNKTYPE; i.linkname = target; t.addfile(i)
            def ext(kind, records):
                # one raw extended header ('x' or 'g') holding the given PAX records
                data = b''
                for k, v in records:
                    r = b' ' + k.encode() + b'=' + v + b'\n'
                    n = len(r) + 1
                    while len(str(n).encode() + r) != n: n += 1
                    data += str(n).encode() + r
                i = tarfile.TarInfo('PaxHeaders/x'); i.type = kind.encode(); i.size = len(data)
                t.fileobj.write(i.tobuf(tarfile.USTAR_FORMAT, 'utf-8', 'strict'))
                t.fileobj.write(data + b'\0' * (-len(data) % 512)); t.offset += 512 + len(data) + (-len(data) % 512)
            d('./')
            {{pythonMembers}}
            t.close()
            """).ShouldSucceed();
        Run.Program("chmod", "a+r", path).ShouldSucceed();
        return path;
    }

    private static void AssertRefused(ScratchDir dir, string tar, string expectedMessage)
    {
        var export = dir["export"];
        var result = Run.Tool("unpack", tar, export);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains(expectedMessage, result.Stderr);
        Assert.StartsWith("rootfs-export: error: ", result.Stderr);
        Assert.DoesNotContain("   at ", result.Stderr); // a message, not a stack trace
        Assert.False(Directory.Exists(export), "a half export was left behind");
        Assert.False(Directory.Exists(export + ".pseudo_state"), "a stale state directory was left behind");
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir["outside"]));
        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(dir.Path), p => Path.GetFileName(p).Contains(".rfe-new-"));
    }

    private static ScratchDir NewDir()
    {
        var dir = new ScratchDir();
        Directory.CreateDirectory(dir["outside"]);
        Run.Program("chmod", "777", dir["outside"]).ShouldSucceed();
        return dir;
    }

    [Fact]
    public void Dot_dot_entry_is_refused()
    {
        using var dir = NewDir();
        AssertRefused(dir, MakeTar(dir, "t.tar", "f('etc/ok')\nf('../outside/evil')"), "'../outside/evil' contains '..'");
    }

    [Fact]
    public void Absolute_entry_is_refused()
    {
        using var dir = NewDir();
        AssertRefused(dir, MakeTar(dir, "t.tar", $"f('{dir["outside"]}/evil')"), "is an absolute path");
    }

    [Fact]
    public void Entry_through_a_symlink_is_refused()
    {
        using var dir = NewDir();
        AssertRefused(dir, MakeTar(dir, "t.tar", $"sym('escape', '{dir["outside"]}')\nf('escape/evil')"),
            "'escape/evil' would be written through 'escape', which is a symlink");
    }

    [Fact]
    public void Entry_through_a_relative_symlink_is_refused()
    {
        using var dir = NewDir();
        AssertRefused(dir, MakeTar(dir, "t.tar", "d('etc')\nsym('etc/up', '../../outside')\nf('etc/up/evil')"),
            "which is a symlink");
    }

    [Fact]
    public void Hard_link_to_outside_is_refused()
    {
        using var dir = NewDir();
        File.WriteAllText(dir["secret"], "secret");
        Run.Program("chmod", "666", dir["secret"]).ShouldSucceed();
        AssertRefused(dir, MakeTar(dir, "t.tar", "hard('etc-secret', '../secret')"), "contains '..'");
        Assert.Equal(1, new FileInfo(dir["secret"]).Length > 0 ? 1 : 0);
    }

    [Fact]
    public void Hard_link_through_a_symlink_is_refused()
    {
        using var dir = NewDir();
        File.WriteAllText(dir["outside/secret"], "secret");
        var tar = MakeTar(dir, "t.tar", $"sym('o', '{dir["outside"]}')\nhard('stolen', 'o/secret')");
        File.Delete(dir["outside/secret"]);
        AssertRefused(dir, tar, "which is a symlink");
    }

    [Fact]
    public void Truncated_archive_is_reported_with_its_offset()
    {
        using var dir = NewDir();
        var full = MakeTar(dir, "full.tar", "f('a', b'a' * 5000)\nf('b', b'b' * 5000)");
        var cut = dir["cut.tar"];
        File.WriteAllBytes(cut, File.ReadAllBytes(full)[..6000]);
        Run.Program("chmod", "a+r", cut).ShouldSucceed();
        AssertRefused(dir, cut, "corrupt or truncated archive at byte");
    }

    [Fact]
    public void Truncated_zstd_archive_is_reported()
    {
        using var dir = NewDir();
        var full = MakeTar(dir, "full.tar", "import os\nf('a', os.urandom(300000))");
        Run.Program("zstd", "-q", "-19", full, "-o", dir["full.tar.zst"]).ShouldSucceed();
        var bytes = File.ReadAllBytes(dir["full.tar.zst"]);
        File.WriteAllBytes(dir["cut.tar.zst"], bytes[..(bytes.Length / 2)]);
        Run.Program("chmod", "a+r", dir["cut.tar.zst"]).ShouldSucceed();
        AssertRefused(dir, dir["cut.tar.zst"], "truncated");
    }

    [Fact]
    public void Corrupt_gzip_is_reported()
    {
        using var dir = NewDir();
        var full = MakeTar(dir, "full.tar.gz", "f('a', b'hello' * 1000)", "gz");
        var bytes = File.ReadAllBytes(full);
        for (int i = 20; i < bytes.Length - 10; i += 7) bytes[i] ^= 0x5a;
        File.WriteAllBytes(full, bytes);
        AssertRefused(dir, full, "full.tar.gz");
    }

    [Fact]
    public void Not_a_tarball_is_reported()
    {
        using var dir = NewDir();
        File.WriteAllText(dir["notes.tar"], new string('x', 2048));
        Run.Program("chmod", "a+r", dir["notes.tar"]).ShouldSucceed();
        AssertRefused(dir, dir["notes.tar"], "checksum");
    }

    [Fact]
    public void Existing_export_is_not_overwritten_without_replace()
    {
        using var dir = NewDir();
        var tar = MakeTar(dir, "t.tar", "f('etc/a', b'one')");
        Run.Tool("unpack", tar, dir["export"]).ShouldSucceed();
        var again = Run.Tool("unpack", tar, dir["export"]);
        Assert.Equal(1, again.ExitCode);
        Assert.Contains("already exists", again.Stderr);
        Assert.Equal("one", File.ReadAllText(dir["export/etc/a"]));
    }

    [Fact]
    public void Failed_replace_keeps_the_old_export_and_database()
    {
        using var dir = NewDir();
        var good = MakeTar(dir, "good.tar", "f('etc/a', b'one')");
        var bad = MakeTar(dir, "bad.tar", "f('etc/b', b'two')\nf('../evil')");
        Run.Tool("unpack", good, dir["export"]).ShouldSucceed();
        var before = File.ReadAllBytes(dir["export.pseudo_state/files.db"]);
        var result = Run.Tool("unpack", "--replace", bad, dir["export"]);
        Assert.Equal(1, result.ExitCode);
        Assert.Equal("one", File.ReadAllText(dir["export/etc/a"]));
        Assert.False(File.Exists(dir["export/etc/b"]));
        Assert.Equal(before, File.ReadAllBytes(dir["export.pseudo_state/files.db"]));
        Run.Tool("check", dir["export"]).ShouldSucceed();
    }

    [Theory]
    [InlineData("gz")]
    [InlineData("bz2")]
    [InlineData("xz")]
    [InlineData("zst")]
    public void Every_compression_OE_uses_unpacks(string compression)
    {
        using var dir = NewDir();
        var tar = MakeTar(dir, "t.tar", "f('etc/hostname', b'board\\n')\nf('usr/bin/x', b'x' * 200000)");
        var compressed = dir[$"t.tar.{compression}"];
        var tool = compression switch { "gz" => "gzip -9 -n", "bz2" => "bzip2", "xz" => "xz -6 --check=crc32 -T2 --block-size=65536", _ => "zstd -q -3 --block-size=65536" };
        // two members/frames concatenated, as pbzip2, multi-threaded xz and zstd --threads write
        Run.Shell($"head -c 100000 {tar} | {tool} -c > {compressed} && tail -c +100001 {tar} | {tool} -c >> {compressed} && chmod a+r {compressed}").ShouldSucceed();
        Run.Tool("unpack", compressed, dir["export"]).ShouldSucceed();
        Assert.Equal("board\n", File.ReadAllText(dir["export/etc/hostname"]));
        Assert.Equal(200000, new FileInfo(dir["export/usr/bin/x"]).Length);
        Run.Tool("check", dir["export"]).ShouldSucceed();
    }

    // ---- issue #18: valid archives beyond every cache and limit, interrupted and concurrent runs ----

    [Fact]
    public void More_directories_and_hard_links_than_the_directory_cache_holds()
    {
        using var dir = NewDir();
        // 700 directories, then 700 hard links each reaching into a directory long evicted from the 512-entry cache
        var tar = MakeTar(dir, "t.tar", """
            for i in range(700):
                d('d%d' % i); f('d%d/f' % i, b'%d' % i)
            for i in range(700):
                hard('d%d/h' % ((i + 350) % 700), 'd%d/f' % i)
            """);
        Run.Tool("unpack", tar, dir["export"]).ShouldSucceed();
        Assert.Equal("5", File.ReadAllText(dir["export/d355/h"]));
        Assert.Equal(2, (int)Run.Program("stat", "-c", "%h", dir["export/d0/f"]).ShouldSucceed().Stdout.Trim()[0] - '0');
        Run.Tool("check", dir["export"]).ShouldSucceed();
    }

    /// <summary>A chain of directories whose full path is longer than PATH_MAX (4096), with a file at the bottom.</summary>
    private static string DeepChain(int levels) => $"p = ''\nfor i in range({levels}):\n    p += 'level%05d/' % i; d(p)\nf(p + 'bottom', b'deep')";

    [Fact]
    public void Replacing_a_tree_deeper_than_PATH_MAX_leaves_no_staging_directory()
    {
        using var dir = NewDir();
        var deep = MakeTar(dir, "deep.tar", DeepChain(500)); // 5,000 bytes of path
        var flat = MakeTar(dir, "flat.tar", "f('etc/a', b'flat')");
        Run.Tool("unpack", deep, dir["export"]).ShouldSucceed();
        Run.Tool("unpack", "--replace", flat, dir["export"]).ShouldSucceed();
        Assert.Equal("flat", File.ReadAllText(dir["export/etc/a"]));
        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(dir.Path), p => Path.GetFileName(p).Contains(".rfe-new-"));
        Run.Tool("unpack", "--replace", deep, dir["export"]).ShouldSucceed();
        Run.Tool("unpack", "--replace", flat, dir["export"]).ShouldSucceed();
        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(dir.Path), p => Path.GetFileName(p).Contains(".rfe-new-"));
    }

    /// <summary>
    /// A tar.zst that takes a while to unpack and is small on disk: a deep chain, 40,000 files (objects and rows
    /// are what cost time: zeros are skipped as holes, 1.6 GB of them took 0.5 s), then 400 MB of zeros.
    /// </summary>
    private static string SlowArchive(ScratchDir dir, string name, string extra = "")
    {
        var tar = MakeTar(dir, name + ".tar", DeepChain(400) + "\nd('many/')\nfor k in range(40000): f('many/%05d' % k, b'x')\n" + extra + "\n" +
            "i = tarfile.TarInfo('big'); i.size = 400 << 20; i.mode = 0o644; t.addfile(i, open('/dev/zero', 'rb'))");
        Run.Program("zstd", "-q", "-1", "--rm", tar, "-o", dir[name + ".tar.zst"]).ShouldSucceed();
        Run.Program("chmod", "a+r", dir[name + ".tar.zst"]).ShouldSucceed();
        return dir[name + ".tar.zst"];
    }

    private static bool Staging(ScratchDir dir) =>
        Directory.EnumerateFileSystemEntries(dir.Path).Any(p => Path.GetFileName(p).Contains(".rfe-new-"));

    [Fact]
    public void The_next_run_recovers_after_SIGTERM_in_the_middle_of_an_unpack()
    {
        using var dir = NewDir();
        var slow = SlowArchive(dir, "slow");
        using (var first = new BackgroundTool(["unpack", slow, dir["export"]]))
        {
            first.WaitUntil(() => Staging(dir), "the unpack has started");
            Posix.Native.Signals.Kill(first.Pid, Posix.Native.Signals.SIGTERM);
            Assert.True(first.WaitForExit(30_000));
        }
        Assert.False(Directory.Exists(dir["export"]));
        var flat = MakeTar(dir, "flat.tar", "f('etc/a', b'flat')");
        Run.Tool("unpack", flat, dir["export"]).ShouldSucceed();
        Assert.False(Staging(dir), "the interrupted run's staging directory is still there");
        Run.Tool("check", dir["export"]).ShouldSucceed();
    }

    [Fact]
    public void A_second_run_on_the_same_export_waits_and_says_for_whom()
    {
        using var dir = NewDir();
        var slow = SlowArchive(dir, "slow");
        var other = MakeTar(dir, "other.tar", "f('etc/b', b'second')");
        using var first = new BackgroundTool(["unpack", slow, dir["export"]]);
        first.WaitUntil(() => Staging(dir), "the first unpack has started");
        var second = Run.Tool("unpack", "--replace", other, dir["export"]).ShouldSucceed();
        Assert.Contains($"waiting for {dir["export"]}: pid {first.Pid} (rootfs-export unpack {slow}", second.Stderr);
        Assert.True(first.WaitForExit(60_000));
        Assert.Contains("created", first.Output); // the first run finished too, before the second replaced its export
        Assert.Equal("second", File.ReadAllText(dir["export/etc/b"]));
        Assert.False(File.Exists(dir["export/big"]));
        Assert.False(Staging(dir));
        Run.Tool("check", dir["export"]).ShouldSucceed();
    }

    private static void AssertShortLine(RunResult result)
    {
        var line = Assert.Single(result.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.True(line.Length < 600, $"an error line of {line.Length} characters");
        Assert.DoesNotContain(line, c => char.IsControl(c));
    }

    [Fact]
    public void Names_that_are_not_UTF8_are_refused_never_merged()
    {
        using var dir = NewDir();
        // 'a\xff' and 'a\xfe' (Python writes the raw bytes, hdrcharset=BINARY): decoded, both were 'a\uFFFD'
        var tar = MakeTar(dir, "t.tar", "f('a\\udcff', b'1')\nf('a\\udcfe', b'2')");
        AssertRefused(dir, tar, "the name 'a\\xff' (header at byte");
        Assert.Contains("is not UTF-8", Run.Tool("unpack", tar, dir["export"]).Stderr);
        var gnu = MakeTar(dir, "gnu.tar", "f('etc/b\\udc80d', b'1')", format: "GNU_FORMAT");
        AssertRefused(dir, gnu, "'etc/b\\x80d'");
    }

    [Fact]
    public void A_device_number_too_large_for_dev_t_is_refused()
    {
        using var dir = NewDir();
        var tar = MakeTar(dir, "t.tar", "i = tarfile.TarInfo('dev/huge'); i.type = tarfile.CHRTYPE; i.devmajor = 1 << 40; i.devminor = 3; t.addfile(i)", format: "GNU_FORMAT");
        AssertRefused(dir, tar, "entry 'dev/huge': device number 1099511627776,3 is too large for dev_t");
    }

    [Theory]
    [InlineData("x")]
    [InlineData("g")]
    public void Extended_headers_piling_up_are_bounded(string kind)
    {
        using var dir = NewDir();
        // two 9 MiB extended headers before one member: each is allowed, together they pass the 16 MiB bound
        var tar = MakeTar(dir, "t.tar", $"ext('{kind}', [('SCHILY.xattr.user.a', b'a' * (9 << 20))])\next('{kind}', [('SCHILY.xattr.user.b', b'b' * (9 << 20))])\nf('etc/a')");
        AssertRefused(dir, tar, "add up to more than 16 MiB");
        AssertShortLine(Run.Tool("unpack", tar, dir["export"]));
    }

    [Fact]
    public void A_symlink_as_the_root_entry_says_so()
    {
        using var dir = NewDir();
        AssertRefused(dir, MakeTar(dir, "t.tar", "sym('.', '/')"), "entry '.' is a symlink in place of the export root, which must be a directory");
    }

    [Fact]
    public void A_one_MiB_name_gives_one_short_line()
    {
        using var dir = NewDir();
        var tar = MakeTar(dir, "t.tar", "f('a' * (1 << 20))");
        AssertRefused(dir, tar, "characters elided");
        AssertShortLine(Run.Tool("unpack", tar, dir["export"]));
    }

    [Fact]
    public void A_NUL_in_a_name_is_escaped_in_the_message()
    {
        using var dir = NewDir();
        var tar = MakeTar(dir, "t.tar", "ext('x', [('path', b'etc/a\\x00b')])\nf('etc/placeholder')");
        AssertRefused(dir, tar, "'etc/a\\0b' contains a NUL byte");
        AssertShortLine(Run.Tool("unpack", tar, dir["export"]));
    }

    [Fact]
    public void A_FIFO_or_a_directory_as_the_tarball_is_named_for_what_it_is()
    {
        using var dir = NewDir();
        Run.Program("mkfifo", "-m", "666", dir["fifo.tar"]).ShouldSucceed();
        Directory.CreateDirectory(dir["dir.tar"]);
        AssertRefused(dir, dir["fifo.tar"], "is a FIFO, not a tarball");
        AssertRefused(dir, dir["dir.tar"], "is a directory, not a tarball");
    }

    [Fact]
    public void Gzip_with_trailing_garbage_is_refused_as_GNU_tar_refuses_it_and_zero_padding_is_fine()
    {
        using var dir = NewDir();
        var gz = File.ReadAllBytes(MakeTar(dir, "t.tar.gz", "f('etc/a', b'hello')", "gz"));
        File.WriteAllBytes(dir["junk.tar.gz"], [.. gz, .. "garbage\n"u8]);
        File.WriteAllBytes(dir["zeros.tar.gz"], [.. gz, .. new byte[1024]]);
        Run.Program("chmod", "a+r", dir["junk.tar.gz"], dir["zeros.tar.gz"]).ShouldSucceed();
        AssertRefused(dir, dir["junk.tar.gz"], $"trailing garbage after the compressed data at byte {gz.Length} of the file");
        Run.Tool("unpack", dir["zeros.tar.gz"], dir["export"]).ShouldSucceed();
        Assert.Equal("hello", File.ReadAllText(dir["export/etc/a"]));
    }

    [Fact]
    public void Five_thousand_levels_unpack_and_check_in_linear_time()
    {
        using var dir = NewDir();
        // 5,000 nested directories (31 MB of PAX names): quadratic walks took over 120 s; linear is ~4 s of CPU
        var tar = MakeTar(dir, "deep.tar", "p = ''\nfor i in range(5000):\n    p += 'd/'; d(p)\nf(p + 'bottom', b'deep')");
        // the run's time limit is the guard (a hostile archive must not hang the tool), not a speed target
        Run.Tool(["unpack", tar, dir["export"]], null, timeout: TimeSpan.FromSeconds(100)).ShouldSucceed();
        var rows = Run.Program("sqlite3", dir["export.pseudo_state/files.db"], "select count(*) from files").ShouldSucceed().Stdout.Trim();
        Assert.Equal("5002", rows);
        // check walks the same tree in one pass, one directory fd at a time
        Assert.Contains("clean: 5002 objects", Run.Tool(["check", dir["export"]], null, timeout: TimeSpan.FromSeconds(100)).ShouldSucceed().Stdout);
        Run.Tool(["check", "--repair", dir["export"]], null, timeout: TimeSpan.FromSeconds(100)).ShouldSucceed();
    }
}
