using RootfsExport.PseudoDb;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Tests;

/// <summary>update, exec, check and perms against real peers (pseudo, fakeroot), as the unprivileged user.</summary>
public sealed class ExportLifecycleTests : IClassFixture<GoldenRootfs>
{
    private readonly GoldenRootfs _golden;

    public ExportLifecycleTests(GoldenRootfs golden) => _golden = golden;

    /// <summary>A copy of the sample build the unprivileged user can modify.</summary>
    private static string CopySample(ScratchDir dir)
    {
        var build = dir["build"];
        Run.Program("cp", "-a", Repository.SampleBuild, build).ShouldSucceed();
        if (Run.IsRoot) Run.Program("chown", "-R", $"{Run.NobodyId}:{Run.NobodyId}", build).ShouldSucceed();
        return build;
    }

    [Fact]
    public void Update_creates_the_export_then_reports_up_to_date_then_swaps_in_a_newer_image()
    {
        using var dir = new ScratchDir();
        var build = CopySample(dir);
        var env = new Dictionary<string, string> { ["BUILDDIR"] = build };
        var first = Run.Tool(["update", "reference-base-image", "--no-feeds"], env, cwd: dir.Path).ShouldSucceed();
        var export = Path.Combine(build, "export", "reference-base-image-qemux86-64");
        Assert.Contains("created", first.Stdout);
        Assert.True(File.Exists(Path.Combine(export, "etc/os-release")));

        var second = Run.Tool(["update", "reference-base-image", "--no-feeds"], env, cwd: dir.Path).ShouldSucceed();
        Assert.Contains("image up to date", second.Stdout);

        // a newer image lands: OE writes a new timestamped file and moves the symlink
        var images = Path.Combine(build, "tmp/deploy/images/qemux86-64");
        var newer = Path.Combine(images, "reference-base-image-qemux86-64.rootfs-20261122120000.tar.gz");
        File.Copy(_golden.TarGz, newer);
        var link = Path.Combine(images, "reference-base-image-qemux86-64.rootfs.tar.zst");
        File.Delete(link);
        File.CreateSymbolicLink(Path.Combine(images, "reference-base-image-qemux86-64.rootfs.tar.gz"), Path.GetFileName(newer));
        if (Run.IsRoot) Run.Program("chown", "-R", $"{Run.NobodyId}:{Run.NobodyId}", images).ShouldSucceed();
        var third = Run.Tool(["update", "reference-base-image", "--no-feeds"], env, cwd: dir.Path).ShouldSucceed();
        Assert.Contains("replaced with the newer image", third.Stdout);
        Assert.True(File.Exists(Path.Combine(export, "usr/bin/suidprog")));
        Assert.False(File.Exists(Path.Combine(export, "etc/os-release")));
        Assert.Contains("clean:", Run.Tool("check", export).ShouldSucceed().Stdout);
        Assert.DoesNotContain(Directory.EnumerateFileSystemEntries(Path.Combine(build, "export")), p => Path.GetFileName(p).StartsWith('.'));
        var rows = PseudoPeer.Rows(export + ".pseudo_state/files.db", export);
        Assert.Equal("0 0 104755 0", rows["usr/bin/suidprog"]);
    }

    [Fact]
    public void Update_without_a_build_uses_the_bundled_sample_build()
    {
        using var dir = new ScratchDir();
        var env = new Dictionary<string, string> { ["ROOTFS_EXPORT_SAMPLE_BUILD"] = Repository.SampleBuild, ["BUILDDIR"] = "" };
        var result = Run.Tool(["update", "reference-base-image", "--no-feeds"], env, cwd: dir.Path).ShouldSucceed();
        Assert.Contains("bundled sample build", result.Stdout);
        var export = dir["export/reference-base-image-qemux86-64"];
        var rows = PseudoPeer.Rows(export + ".pseudo_state/files.db", export);
        Assert.Equal("0 42 100640 0", rows["etc/shadow"]);
        Assert.Equal("0 0 20600 1281", rows["dev/console"]);
    }

    [Fact]
    public void Boot_entries_are_root_owned_in_the_db_and_survive_a_newer_image()
    {
        using var dir = new ScratchDir();
        var build = CopySample(dir);
        var env = new Dictionary<string, string> { ["BUILDDIR"] = build };
        Run.Tool(["update", "reference-base-image", "--no-feeds"], env, cwd: dir.Path).ShouldSucceed();
        var export = Path.Combine(build, "export", "reference-base-image-qemux86-64");
        Run.Tool("bootspec", export, "--transport", "nfs", "--server", "192.168.7.1").ShouldSucceed();
        var entry = Directory.GetFiles(Path.Combine(export, "loader/entries"), "*.conf").Single();
        Assert.Contains("nfsroot=192.168.7.1:" + export, File.ReadAllText(entry));
        var rows = PseudoPeer.Rows(export + ".pseudo_state/files.db", export);
        Assert.StartsWith("0 0 100", rows["loader/entries/" + Path.GetFileName(entry)]);
        Assert.Contains("clean:", Run.Tool("check", export).ShouldSucceed().Stdout);

        // a newer image (same kernel) replaces the export: the entry is written again from the kept settings
        var images = Path.Combine(build, "tmp/deploy/images/qemux86-64");
        var real = Directory.GetFiles(images, "*.rootfs-*.tar.zst").Single();
        File.SetLastWriteTimeUtc(real, DateTime.UtcNow);
        var again = Run.Tool(["update", "reference-base-image", "--no-feeds"], env, cwd: dir.Path).ShouldSucceed();
        Assert.Contains("replaced with the newer image", again.Stdout);
        Assert.True(File.Exists(entry), again.All);
        Assert.Contains("clean:", Run.Tool("check", export).ShouldSucceed().Stdout);
    }

    [Fact]
    public void Update_does_not_replace_an_export_it_did_not_make()
    {
        using var b = new ScratchDir();
        var build = CopySample(b);
        var export = b["foreign"];
        // made the runqemu-extract-sdk way: tar under pseudo
        Run.Program("mkdir", [export], asUnprivileged: true).ShouldSucceed();
        PseudoPeer.Run(export + ".pseudo_state", $"tar --numeric-owner -xpzf {_golden.TarGz} -C {export}").ShouldSucceed();
        var r = Run.Tool(["update", "reference-base-image", "--no-feeds", "--export", export], new Dictionary<string, string> { ["BUILDDIR"] = build }, cwd: b.Path);
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("was not made by 'rootfs-export update'", r.Stderr);
        Assert.True(File.Exists(Path.Combine(export, "usr/bin/suidprog")));
    }

    [Fact]
    public void Update_names_what_is_missing()
    {
        using var dir = new ScratchDir();
        var build = CopySample(dir);
        var env = new Dictionary<string, string> { ["BUILDDIR"] = build };
        var result = Run.Tool(["update", "core-image-minimal", "--no-feeds"], env, cwd: dir.Path);
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("no rootfs tarball of 'core-image-minimal' for MACHINE 'qemux86-64'", result.Stderr);
    }

    [Fact]
    public void Exec_runs_under_pseudo_with_the_recorded_owners_and_records_new_files()
    {
        using var dir = new ScratchDir();
        var export = dir["export"];
        Run.Tool("unpack", _golden.TarGz, export).ShouldSucceed();
        var stat = Run.Tool("exec", export, "--", "stat", "-c", "%u:%g %a", $"{export}/etc/shadow").ShouldSucceed();
        Assert.Equal("0:42 640", stat.Stdout.Trim());
        Run.Tool("exec", export, "--", "sh", "-c", $"echo new > {export}/etc/new && chown 5:7 {export}/etc/new && mknod {export}/dev/ttyS0 c 4 64").ShouldSucceed();
        var rows = PseudoPeer.Rows(export + ".pseudo_state/files.db", export);
        Assert.StartsWith("5 7 100", rows["etc/new"]);
        Assert.Equal("0 0 20644 1088", rows["dev/ttyS0"].Replace("20600", "20644"));
        Assert.Contains("clean:", Run.Tool("check", export).ShouldSucceed().Stdout);
    }

    [Fact]
    public void A_live_pseudo_server_is_refused_with_how_to_stop_it()
    {
        using var dir = new ScratchDir();
        var export = dir["export"];
        Run.Tool("unpack", _golden.TarGz, export).ShouldSucceed();
        var state = export + ".pseudo_state";
        // a pseudo server that stays up (-t 0: no idle timeout) while we try to write
        // pseudo -d's parent can die of the SIGUSR1 its daemon sends when set up (a race in pseudo on a busy
        // machine, exit 138): what counts is that the server holds the lock, so wait for that.
        Run.Program("pseudo", ["-d", "-t", "0"], asUnprivileged: true, env: PseudoPeer.Env(state));
        try
        {
            for (int i = 0; i < 200 && new PseudoState(state).LiveServerPid() is null; i++) Thread.Sleep(50);
            Assert.NotNull(new PseudoState(state).LiveServerPid());
            var result = Run.Tool("unpack", "--replace", _golden.TarGz, export);
            Assert.Equal(1, result.ExitCode);
            Assert.Contains("pseudo -S", result.Stderr);
            Assert.Contains("holds", result.Stderr);
        }
        finally
        {
            Run.Program("pseudo", ["-S"], asUnprivileged: true, env: PseudoPeer.Env(state));
        }
    }

    [Fact]
    public void Check_finds_stale_rows_and_repair_fixes_them_and_a_moved_export()
    {
        using var dir = new ScratchDir();
        var export = dir["export"];
        Run.Tool("unpack", _golden.TarGz, export).ShouldSucceed();
        Run.Shell($"rm {export}/etc/owned998 && echo x > {export}/etc/behind-our-back", asUnprivileged: true).ShouldSucceed();
        var check = Run.Tool("check", export);
        Assert.Equal(1, check.ExitCode);
        Assert.Contains($"StaleRow       {export}/etc/owned998", check.Stdout);
        Assert.Contains($"MissingRow     {export}/etc/behind-our-back", check.Stdout);
        Run.Tool("check", "--repair", export).ShouldSucceed();
        Assert.Contains("clean:", Run.Tool("check", export).ShouldSucceed().Stdout);

        // the export directory is moved together with its state: every path is rewritten
        var moved = dir["moved"];
        Run.Shell($"mv {export} {moved} && mv {export}.pseudo_state {moved}.pseudo_state", asUnprivileged: true).ShouldSucceed();
        var movedCheck = Run.Tool("check", moved);
        Assert.Equal(1, movedCheck.ExitCode);
        Assert.Contains("Moved", movedCheck.Stdout);
        Run.Tool("check", "--repair", moved).ShouldSucceed();
        Assert.Contains("clean:", Run.Tool("check", moved).ShouldSucceed().Stdout);
        var stat = PseudoPeer.Run(moved + ".pseudo_state", $"stat -c %u:%g {moved}/etc/shadow").ShouldSucceed().Stdout.Trim();
        Assert.Equal("0:42", stat);
    }

    [Fact]
    public void Fakeroot_save_file_round_trips_through_real_fakeroot()
    {
        using var dir = new ScratchDir();
        var export = dir["export"];
        Run.Tool("unpack", _golden.TarGz, export).ShouldSucceed();
        Run.Tool("perms", "export", export, "--format", "fakeroot", "-o", dir["save"]).ShouldSucceed();
        // real fakeroot loads our save file and shows the recorded owners
        var ls = Run.Program("fakeroot", ["-i", dir["save"], "--", "stat", "-c", "%n %u:%g %a %t,%T", $"{export}/etc/shadow", $"{export}/dev/console", $"{export}/usr/bin/suidprog"], asUnprivileged: true).ShouldSucceed().Stdout;
        Assert.Contains($"{export}/etc/shadow 0:42 640", ls);
        Assert.Contains($"{export}/dev/console 0:0 600 5,1", ls);
        Assert.Contains($"{export}/usr/bin/suidprog 0:0 4755", ls);

        // and what fakeroot saves after a chown comes back into files.db
        Run.Program("fakeroot", ["-i", dir["save"], "-s", dir["save2"], "--", "chown", "123:456", $"{export}/etc/hostname"], asUnprivileged: true).ShouldSucceed();
        Run.Tool("perms", "import", export, dir["save2"], "--format", "fakeroot").ShouldSucceed();
        var rows = PseudoPeer.Rows(export + ".pseudo_state/files.db", export);
        Assert.StartsWith("123 456 ", rows["etc/hostname"]);
        Assert.StartsWith("123 456 ", rows["etc/hostname.hard"]);
        Assert.Equal("0 0 20600 1281", rows["dev/console"]);
    }

    [Fact]
    public void Ptxdist_perms_round_trip_and_create_device_nodes()
    {
        using var dir = new ScratchDir();
        var export = dir["export"];
        Run.Tool("unpack", _golden.TarGz, export).ShouldSucceed();
        var perms = Run.Tool("perms", "export", export, "--format", "ptxdist").ShouldSucceed().Stdout;
        Assert.Contains("n\u001f/dev/console\u001f0\u001f0\u001f0600\u001fc\u001f5\u001f1\n", perms);
        Assert.Contains("f\u001f/usr/bin/suidprog\u001f0\u001f0\u001f04755\n", perms);
        Assert.Contains("d\u001f/sgid\u001f0\u001f42\u001f02755\n", perms);

        File.WriteAllText(dir["busybox.perms"], "f\u001f/etc/hostname\u001f0\u001f5\u001f0600\nn\u001f/dev/ttyS1\u001f0\u001f20\u001f0660\u001fc\u001f4\u001f65\n");
        Run.Program("chmod", "a+r", dir["busybox.perms"]).ShouldSucceed();
        Run.Tool("perms", "import", export, dir["busybox.perms"], "--format", "ptxdist").ShouldSucceed();
        var rows = PseudoPeer.Rows(export + ".pseudo_state/files.db", export);
        Assert.Equal("0 5 100600 0", rows["etc/hostname"]);
        Assert.Equal("0 20 20660 1089", rows["dev/ttyS1"]);
        Assert.True(File.Exists(Path.Combine(export, "dev/ttyS1")));
        Assert.Contains("clean:", Run.Tool("check", export).ShouldSucceed().Stdout);
    }

    [Fact]
    public void Bad_perms_file_names_the_line_and_field()
    {
        using var dir = new ScratchDir();
        var export = dir["export"];
        Run.Tool("unpack", _golden.TarGz, export).ShouldSucceed();
        File.WriteAllText(dir["bad.perms"], "f\u001f/etc/hostname\u001f0\u001f0\u001f0644\nf\u001f/etc/passwd\u001froot\u001f0\u001f0644\n");
        Run.Program("chmod", "a+r", dir["bad.perms"]).ShouldSucceed();
        var result = Run.Tool("perms", "import", export, dir["bad.perms"], "--format", "ptxdist");
        Assert.Equal(1, result.ExitCode);
        Assert.Contains("bad.perms:2: field 'uid' is not a valid number: 'root'", result.Stderr);
    }
}
