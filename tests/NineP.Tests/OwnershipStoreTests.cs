using RootfsExport.ExportServing;
using RootfsExport.NineP.Server;
using RootfsExport.PseudoDb;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.NineP.Tests;

/// <summary>The server's row cache keeps pseudo's rules by inode: links share ownership, a reused inode loses its stale rows.</summary>
public sealed class OwnershipStoreTests : IDisposable
{
    private readonly ScratchDir _scratch = new("rfe-store");
    private string DbFile => _scratch["files.db"];

    public void Dispose() => _scratch.Dispose();

    [Fact]
    public void A_chown_through_one_link_shows_on_every_link_and_a_reused_inode_drops_the_old_rows()
    {
        using (var db = FilesDb.OpenFile(DbFile))
        {
            db.InTransaction(() =>
            {
                db.PutNew(new FileRow("/x/a", 1, 100, 0, 0, 0x81a4, 0));
                db.PutLink(new FileRow("/x/b", 1, 100, 0, 0, 0x81a4, 0));
                db.PutNew(new FileRow("/x/other", 1, 200, 5, 5, 0x81a4, 0));
            });
        }
        using (var store = new OwnershipStore(FilesDb.OpenFile(DbFile, create: false)))
        {
            store.UpdateOwnership(store.Get("/x/b")!, 1234, 42, 0x9ed);
            Assert.Equal((1234u, 42u, 0x89edu), (store.Get("/x/a")!.Uid, store.Get("/x/a")!.Gid, store.Get("/x/a")!.Mode));
            store.Rename("/x/a", "/x/c", targetExisted: false);
            store.UpdateOwnership(store.Get("/x/c")!, 7, 7, 0x1a4);
            Assert.Equal(7u, store.Get("/x/b")!.Uid); // the renamed link is still a link of the same inode

            // inode 100 deleted on disk and reused by a new file: pseudo drops the old paths' rows
            store.PutNew(new FileRow("/x/new", 1, 100, 3, 3, 0x81a4, 0));
            Assert.Null(store.Get("/x/b"));
            Assert.Null(store.Get("/x/c"));
            store.UpdateOwnership(store.Get("/x/new")!, 9, 9, 0x1a4);
            Assert.Equal(5u, store.Get("/x/other")!.Uid);
        }
        using var check = FilesDb.OpenFile(DbFile, create: false);
        Assert.Equal(["/x/new", "/x/other"], check.All().Select(r => r.Path).Order().ToArray());
        Assert.Equal(9u, check.GetByPath("/x/new")!.Uid);
    }

    [Fact]
    public void Writes_reach_files_db_within_the_commit_window_and_a_burst_of_them_in_few_commits()
    {
        using (var db = FilesDb.OpenFile(DbFile)) { }
        using var store = new OwnershipStore(FilesDb.OpenFile(DbFile, create: false));
        using var reader = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={DbFile};Mode=ReadOnly");
        reader.Open();
        long Scalar(string sql)
        {
            using var c = reader.CreateCommand();
            c.CommandText = sql;
            return Convert.ToInt64(c.ExecuteScalar());
        }
        // a board creating a file every 10 ms, as the emulated guest does: each write waits longer than the
        // old 5 ms idle rule, so that rule made a commit of every one
        int commits = 0;
        long version = Scalar("PRAGMA data_version");
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < 20; i++)
        {
            store.PutNew(new FileRow($"/burst/f{i}", 1, 1000 + i, 0, 0, 0x81a4, 0));
            var next = clock.ElapsedMilliseconds + 10;
            while (clock.ElapsedMilliseconds < next)
            {
                long v = Scalar("PRAGMA data_version"); // changes with every commit of another connection
                if (v != version) { commits++; version = v; }
                Thread.Sleep(1);
            }
        }
        // the last write is on disk within the window (plus a generous margin), with the server still running
        var deadline = clock.ElapsedMilliseconds + OwnershipStore.CommitWindowMs + 5000;
        while (Scalar("SELECT count(*) FROM files WHERE path LIKE '/burst/%'") < 20 && clock.ElapsedMilliseconds < deadline) Thread.Sleep(5);
        Assert.Equal(20, Scalar("SELECT count(*) FROM files WHERE path LIKE '/burst/%'"));
        Assert.InRange(commits, 0, 5); // 20 writes over ~200 ms: one or two commits, not twenty
    }
}
