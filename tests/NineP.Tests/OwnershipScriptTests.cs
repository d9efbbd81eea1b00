using RootfsExport.ExportServing;
using RootfsExport.NineP.Server;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using RootfsExport.PseudoDb;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.NineP.Tests;

/// <summary>
/// pseudo's row semantics exist once (<see cref="IOwnershipStore"/>): the same script of changes run against the
/// transactional store over files.db and against the server's cached store leaves the same files.db, and real
/// pseudo reads the objects back with the owners, modes, device numbers and xattrs the script gave them.
/// </summary>
public sealed class OwnershipScriptTests : IDisposable
{
    private readonly ScratchDir _scratch = new("rfe-script");
    private string Export => _scratch["export"];

    public void Dispose() => _scratch.Dispose();

    /// <summary>The export on disk as the script leaves it: every row it ends with names one of these objects.</summary>
    private void MakeExport()
    {
        foreach (var d in new[] { "etc", "srv/deep", "dev", "bin" }) Directory.CreateDirectory(Path.Combine(Export, d));
        File.WriteAllText(Path.Combine(Export, "etc/a"), "a\n");
        Libc.LinkAt(Libc.AT_FDCWD, Path.Combine(Export, "etc/a"), Libc.AT_FDCWD, Path.Combine(Export, "etc/b"), 0);
        File.WriteAllText(Path.Combine(Export, "etc/c"), "c\n");
        File.WriteAllText(Path.Combine(Export, "srv/deep/f"), "f\n");
        File.WriteAllBytes(Path.Combine(Export, "dev/console"), []);
        File.CreateSymbolicLink(Path.Combine(Export, "bin/sh"), "busybox");
    }

    private FileRow Row(string rel, uint uid, uint gid, uint mode, long rdev = 0, string? at = null)
    {
        var full = Path.Combine(Export, rel);
        if (Libc.StatxAt(Libc.AT_FDCWD, full, Libc.AT_SYMLINK_NOFOLLOW, Libc.STATX_BASIC_STATS, out var st) != 0) throw PosixException.Last("stat", full);
        return new FileRow(ExportPaths.Join(ExportPaths.Canonical(Export), at ?? rel), st.Dev(), st.InoSigned(), uid, gid, mode, rdev);
    }

    /// <summary>A history that ends in the export above: renames of a subtree, links, chown/chmod through a link, a reused inode, xattrs.</summary>
    private List<Action<IOwnershipStore>> Script()
    {
        string P(string rel) => ExportPaths.Join(ExportPaths.Canonical(Export), rel);
        var a = Row("etc/a", 0, 0, 0x81a4);
        var c = Row("etc/c", 0, 0, 0x81a4);
        var f = Row("srv/deep/f", 0, 0, 0x81a4, at: "old/deep/f");
        return
        [
            s => s.PutNew(a),
            s => s.PutLink(a with { Path = P("etc/b") }),
            s => s.UpdateOwnership(s.Get(P("etc/b"))!, 1234, 42, 0x9ed), // reaches etc/a too, keeps S_IFREG
            s => s.PutNew(c with { Path = P("tmp/stale") }),
            s => s.SetXattr(s.Get(P("tmp/stale"))!, "user.gone", [1, 2]),
            s => s.PutNew(c with { Uid = 7, Gid = 8, Mode = 0x8180 }), // the inode reused: the stale row and its xattr go
            s => s.PutNew(Row("srv", 0, 0, 0x41ed)),
            s => s.PutNew(Row("srv/deep", 5, 5, 0x41c0, at: "old/deep")),
            s => s.PutNew(f with { Uid = 5, Gid = 6 }),
            s => s.PutNew(new FileRow(P("srv/deep"), 1, 97, 0, 0, 0x41ed, 0)), // replaced by the rename below, with what it held
            s => s.PutNew(new FileRow(P("srv/deep/gone"), 1, 96, 0, 0, 0x81a4, 0)),
            s => s.Rename(P("old/deep"), P("srv/deep"), targetExisted: true),
            s => s.SetXattr(s.Get(P("srv/deep/f"))!, "security.capability", [0, 0, 0, 2, 32, 0, 0, 0]),
            s => s.SetXattr(s.Get(P("srv/deep/f"))!, "user.note", "x"u8.ToArray()),
            s => Assert.True(s.RemoveXattr(s.Get(P("srv/deep/f"))!, "user.note")),
            s => Assert.False(s.RemoveXattr(s.Get(P("srv/deep/f"))!, "user.never")),
            s => Assert.Equal(["security.capability"], s.ListXattrs(s.Get(P("srv/deep/f"))!)),
            s => s.PutNew(Row("dev", 0, 0, 0x41ed)),
            s => s.PutNew(Row("dev/console", 0, 5, 0x2180, Libc.MakeDev(5, 1))),
            s => s.PutNew(Row("bin/sh", 0, 0, 0xa1ff) with { Path = P("bin/sh.old") }),
            s => s.Rename(P("bin/sh.old"), P("bin/sh"), targetExisted: false),
            s => s.PutNew(new FileRow(P("bin/gone/x"), 1, 99, 0, 0, 0x81a4, 0)),
            s => s.PutNew(new FileRow(P("bin/gone"), 1, 98, 0, 0, 0x41ed, 0)),
            s => s.DeleteTree(P("bin/gone")),
            s => s.PutLink(a with { Path = P("etc/a2") }),
            s => s.DeletePath(P("etc/a2")),
            s => Assert.Equal(P("etc/a"), s.ByInode(a.Dev, a.Ino)!.Path),
            s => s.Commit(),
        ];
    }

    private static (string Rows, string Xattrs) Dump(string dbFile)
    {
        using var db = FilesDb.OpenFile(dbFile, create: false);
        return (string.Join('\n', db.All().Select(r => $"{r.Path} {r.Dev} {r.Ino} {r.Uid} {r.Gid} {Convert.ToString(r.Mode, 8)} {r.Rdev}")),
            string.Join('\n', db.AllXattrs().Select(x => $"{x.Dev} {x.Ino} {x.Name} {Convert.ToHexString(x.Value)}")));
    }

    [Fact]
    public void One_script_leaves_the_same_files_db_through_both_stores_and_pseudo_reads_it_back()
    {
        MakeExport();
        var script = Script();
        var sqlDb = _scratch["sql.db"];
        using (var db = FilesDb.OpenFile(sqlDb))
        using (var store = new FilesDbStore(db))
            foreach (var step in script) step(store);
        var state = PseudoState.ForExport(Export);
        using (FilesDb.Open(state)) { }
        using (var store = new OwnershipStore(FilesDb.Open(state, create: false)))
            foreach (var step in script) step(store);

        var expected = Dump(sqlDb);
        Assert.Equal(expected, Dump(state.FilesDbPath));
        Assert.Contains("/etc/c ", expected.Rows);
        Assert.DoesNotContain("stale", expected.Rows);
        Assert.DoesNotContain("gone", expected.Rows + expected.Xattrs);

        Run.RequirePeer("pseudo");
        if (Run.IsRoot) Run.Program("chown", "-R", $"{Run.NobodyId}:{Run.NobodyId}", _scratch.Path).ShouldSucceed();
        var env = new Dictionary<string, string> { ["PSEUDO_PREFIX"] = "/usr", ["PSEUDO_LOCALSTATEDIR"] = state.Directory };
        try
        {
            var names = new[] { "etc/a", "etc/b", "etc/c", "srv/deep", "srv/deep/f", "dev/console", "bin/sh" };
            var stat = Run.Program("pseudo", new[] { "stat", "-c", "%n %u %g %a %F %t,%T" }.Concat(names.Select(n => Path.Combine(Export, n))),
                asUnprivileged: true, env: env, timeout: TimeSpan.FromMinutes(1)).ShouldSucceed().Stdout;
            var seen = stat.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l[(Export.Length + 1)..]).ToArray();
            Assert.Equal(new[]
            {
                "etc/a 1234 42 4755 regular file 0,0", "etc/b 1234 42 4755 regular file 0,0", "etc/c 7 8 600 regular file 0,0",
                "srv/deep 5 5 700 directory 0,0", "srv/deep/f 5 6 644 regular file 0,0", "dev/console 0 5 600 character special file 5,1",
                "bin/sh 0 0 777 symbolic link 0,0",
            }, seen);
            var caps = Run.Program("pseudo", ["getfattr", "-e", "hex", "-n", "security.capability", Path.Combine(Export, "srv/deep/f")],
                asUnprivileged: true, env: env, timeout: TimeSpan.FromMinutes(1)).ShouldSucceed().Stdout;
            Assert.Contains("security.capability=0x0000000220000000", caps);
        }
        finally
        {
            Run.Program("pseudo", ["-S"], asUnprivileged: true, env: env, timeout: TimeSpan.FromMinutes(1));
        }
    }
}
