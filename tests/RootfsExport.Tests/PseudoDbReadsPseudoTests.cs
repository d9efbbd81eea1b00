using RootfsExport.PseudoDb;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Tests;

/// <summary>A files.db written by real pseudo reads back correctly through PseudoDb.</summary>
public sealed class PseudoDbReadsPseudoTests : IClassFixture<GoldenRootfs>
{
    private readonly GoldenRootfs _golden;

    public PseudoDbReadsPseudoTests(GoldenRootfs golden) => _golden = golden;

    [Fact]
    public void Rows_links_and_raw_xattr_bytes_written_by_pseudo_read_back()
    {
        using var dir = new ScratchDir();
        var theirs = dir["theirs"];
        Run.Program("mkdir", [theirs], asUnprivileged: true).ShouldSucceed();
        PseudoPeer.Run(theirs + ".pseudo_state",
            $"tar --numeric-owner --xattrs --xattrs-include='*' --acls -xpzf {_golden.TarGz} -C {theirs}").ShouldSucceed();

        var state = PseudoState.ForExport(theirs);
        Assert.Null(state.LiveServerPid());
        using var db = FilesDb.Open(state, create: false);
        var console = db.GetByPath(theirs + "/dev/console")!;
        Assert.Equal(0x2000u | 0x180u, console.Mode);
        Assert.Equal(1281, console.Rdev);
        var sgid = db.GetByPath(theirs + "/sgid")!;
        Assert.Equal((0u, 42u, 0x4000u | 0x5edu), (sgid.Uid, sgid.Gid, sgid.Mode));
        var hostname = db.GetByPath(theirs + "/etc/hostname")!;
        Assert.Contains(db.GetByDevIno(hostname.Dev, hostname.Ino), r => r.Path == theirs + "/etc/hostname.hard");
        var ping = db.GetByPath(theirs + "/usr/bin/ping")!;
        Assert.Equal(Convert.FromHexString("0100000200200000000000000000000000000000"), db.GetXattr(ping.Dev, ping.Ino, "security.capability"));
        var acl = db.GetByPath(theirs + "/data/acl")!;
        var access = db.GetXattr(acl.Dev, acl.Ino, "system.posix_acl_access")!;
        Assert.Contains((byte)0xFF, access); // raw bytes survive: ids 0xFFFFFFFF
    }
}
