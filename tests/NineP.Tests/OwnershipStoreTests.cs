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
}
