using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Tests;

/// <summary>
/// Acceptance: the same golden tarball unpacked by rootfs-export (as uid 65534) and by `pseudo tar -x`
/// (as the same user) yields the same ownership, and real pseudo reads our database.
/// </summary>
public sealed class UnpackAgainstPseudoTests : IClassFixture<GoldenRootfs>
{
    private readonly GoldenRootfs _golden;

    public UnpackAgainstPseudoTests(GoldenRootfs golden) => _golden = golden;

    [Fact]
    public void Our_files_db_agrees_with_pseudo_tar_on_every_path()
    {
        using var dir = new ScratchDir();
        var ours = dir["ours"];
        var theirs = dir["theirs"];
        Run.Tool("unpack", _golden.TarGz, ours).ShouldSucceed();

        Run.Program("mkdir", [theirs], asUnprivileged: true).ShouldSucceed();
        PseudoPeer.Run(theirs + ".pseudo_state",
            $"tar --numeric-owner --xattrs --xattrs-include='*' --acls -xpzf {_golden.TarGz} -C {theirs}").ShouldSucceed();

        var ourRows = PseudoPeer.Rows(ours + ".pseudo_state/files.db", ours);
        var theirRows = PseudoPeer.Rows(theirs + ".pseudo_state/files.db", theirs);
        Assert.Equal(theirRows, ourRows);
        Assert.Equal(PseudoPeer.Xattrs(theirs + ".pseudo_state/files.db", theirs), PseudoPeer.Xattrs(ours + ".pseudo_state/files.db", ours));

        // the values the fixture set, spelled out
        Assert.Equal("0 0 20600 1281", ourRows["dev/console"]);
        Assert.Equal("0 6 60644 2048", ourRows["dev/sda"]);
        Assert.Equal("0 0 104755 0", ourRows["usr/bin/suidprog"]);
        Assert.Equal("0 42 42755 0", ourRows["sgid"]);
        Assert.Equal("1000 1000 40700 0", ourRows["home/user"]);
        Assert.Equal("998 997 100644 0", ourRows["etc/owned998"]);
        Assert.Equal("0 0 10600 0", ourRows["dev/initctl"]);
    }

    [Fact]
    public void Our_files_db_has_pseudo_schema_and_hard_links_share_an_inode()
    {
        using var dir = new ScratchDir();
        var ours = dir["export"];
        Run.Tool("unpack", _golden.TarGz, ours).ShouldSucceed();
        var db = ours + ".pseudo_state/files.db";
        var schema = Run.Program("sqlite3", db, ".schema").ShouldSucceed().Stdout;
        Assert.Contains("CREATE TABLE files ( id INTEGER PRIMARY KEY, path VARCHAR, dev INTEGER, ino INTEGER, uid INTEGER, gid INTEGER, mode INTEGER, rdev INTEGER, deleting INTEGER );", schema);
        Assert.Contains("CREATE INDEX xattrs_dev_ino_name ON xattrs ( dev, ino, name );", schema);
        Assert.Equal("8|-1|N/A (initial setup)", Run.Program("sqlite3", db, "select version, stamp, sql from migrations").ShouldSucceed().Stdout.Trim());
        var links = Run.Program("sqlite3", db, $"select count(distinct dev || ':' || ino) from files where path in ('{ours}/etc/hostname', '{ours}/etc/hostname.hard')").ShouldSucceed().Stdout.Trim();
        Assert.Equal("1", links);
        Assert.Equal("text|0100000200200000000000000000000000000000",
            Run.Program("sqlite3", db, "select typeof(value), hex(value) from xattrs where name = 'security.capability'").ShouldSucceed().Stdout.Trim());
    }

    [Fact]
    public void Real_pseudo_shows_the_owners_we_recorded()
    {
        using var dir = new ScratchDir();
        var ours = dir["export"];
        Run.Tool("unpack", _golden.TarGz, ours).ShouldSucceed();
        var state = ours + ".pseudo_state";

        var ls = PseudoPeer.Run(state, $"ls -ln {ours}/dev {ours}/usr/bin {ours}/home").ShouldSucceed().Stdout;
        Assert.Matches(@"crw------- 1 0 0 5, 1 .* console", ls);
        Assert.Matches(@"brw-r--r-- 1 0 6 8, 0 .* sda", ls);
        Assert.Matches(@"-rwsr-xr-x 1 0 0 .* suidprog", ls);
        Assert.Matches(@"drwx------ 2 1000 1000 .* user", ls);

        var stat = PseudoPeer.Run(state, $"stat -c '%n %f %u:%g %t,%T' {ours}/dev/console {ours}/dev/sda").ShouldSucceed().Stdout;
        Assert.Contains($"{ours}/dev/console 2180 0:0 5,1", stat);
        Assert.Contains($"{ours}/dev/sda 61a4 0:6 8,0", stat);

        var cap = PseudoPeer.Run(state, $"getcap {ours}/usr/bin/ping").ShouldSucceed().Stdout;
        Assert.Contains("cap_net_raw=ep", cap);

        var acl = PseudoPeer.Run(state, $"getfacl -n {ours}/data/acl").ShouldSucceed().Stdout;
        Assert.Contains("user:1000:rwx", acl);
        Assert.Contains("default:group:997:r-x", acl);

        var id = PseudoPeer.Run(state, $"stat -c %u:%g {ours}/etc/shadow").ShouldSucceed().Stdout.Trim();
        Assert.Equal("0:42", id);
    }

    [Fact]
    public void On_disk_everything_belongs_to_the_user_and_stays_writable()
    {
        using var dir = new ScratchDir();
        var ours = dir["export"];
        Run.Tool("unpack", _golden.TarGz, ours).ShouldSucceed();
        var owners = Run.Shell($"find {ours} -printf '%U:%G %m %y %p\\n'").ShouldSucceed().Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var expectedOwner = Run.IsRoot ? $"{Run.NobodyId}:{Run.NobodyId}" : null;
        foreach (var line in owners)
        {
            var f = line.Split(' ');
            if (expectedOwner != null) Assert.Equal(expectedOwner, f[0]);
            var mode = Convert.ToUInt32(f[1], 8);
            if (f[2] == "l") continue;
            Assert.True((mode & 0xc00) == 0, $"setuid/setgid on disk: {line}");
            Assert.True((mode & 0x12) == 0, $"group/other write on disk: {line}");
            Assert.True((mode & 0x180) == 0x180, $"owner cannot read+write: {line}");
        }
        Assert.Contains(owners, l => l.EndsWith($" f {ours}/dev/console")); // device: placeholder file
        Assert.Contains(owners, l => l.EndsWith($" p {ours}/dev/initctl")); // fifo: real fifo
        Assert.Equal("", Run.Shell($"getfattr -d -m - {ours}/usr/bin/ping").Stdout.Trim()); // xattrs live in the DB only
        // the unprivileged user can modify and remove what was unpacked
        Run.Shell($"echo changed > {ours}/etc/shadow && rm -rf {ours}/home/user", asUnprivileged: true).ShouldSucceed();
    }
}
