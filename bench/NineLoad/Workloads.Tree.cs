using RootfsExport.NineP.Protocol;

namespace RootfsExport.NineLoad;

/// <summary>Loads over the whole tree: reading every file, and changing some (a board's copy-up).</summary>
public static partial class Workloads
{
    /// <summary>
    /// Every connection walks the whole export as <see cref="WalkAsync"/> does and reads each regular file once,
    /// start to end, as `cat` through v9fs does: clone its fid, Tlopen read-only, Treads of msize − 24 bytes
    /// one after another until a short one, Tclunk. Items = entries seen; bytes = data read.
    /// </summary>
    public static Task<LoadResult> ReadAllAsync(LoadOptions o, CancellationToken ct) =>
        RunAsync("readall", o, ct, _ => Task.CompletedTask, async (c, _, counters) =>
        {
            await c.CallAsync<Rgetattr>(new Tgetattr(RootFid, KernelMask));
            Interlocked.Increment(ref counters.Items);
            await WalkDirAsync(c, RootFid, counters, ct, ReadFileAsync);
        }, (_, _) => Task.CompletedTask);

    private static async Task ReadFileAsync(NineClient c, uint fid, Attributes attr, Counters counters)
    {
        uint open = c.NewFid();
        await c.CallAsync<Rwalk>(new Twalk(fid, open, []));
        try
        {
            await c.CallAsync<Rlopen>(new Tlopen(open, 0));
            uint chunk = c.Msize - P9.IoHeaderSize;
            ulong offset = 0;
            for (int n = (int)chunk; n == chunk;)
            {
                n = await c.ReadAsync(open, offset, chunk);
                offset += (ulong)n;
            }
            if (offset != attr.Size) throw new InvalidDataException($"read {offset} bytes of a {attr.Size}-byte file");
            Interlocked.Add(ref counters.Bytes, (long)offset);
        }
        finally { await c.CheckAsync(new Tclunk(open)); }
    }

    /// <summary>
    /// Walks the whole export and sets the modification time of every regular file whose inode number is a multiple
    /// of `every` (the same files in every run on one export), to a fixed time: on a board's aname each is copied up
    /// into the board's layer with its directories, as a board that ran a while has them. Needs the owner's or
    /// root's attach (--uid 0). Items = entries seen; bytes = files changed.
    /// </summary>
    public static Task<LoadResult> TouchAsync(LoadOptions o, int every, CancellationToken ct) =>
        RunAsync("touch", o, ct, _ => Task.CompletedTask, async (c, _, counters) =>
        {
            await c.CallAsync<Rgetattr>(new Tgetattr(RootFid, KernelMask));
            Interlocked.Increment(ref counters.Items);
            await WalkDirAsync(c, RootFid, counters, ct, async (cc, fid, attr, n) =>
            {
                if (attr.Qid.Path % (ulong)every != 0) return;
                await cc.CallAsync<Rsetattr>(new Tsetattr(fid, SetAttrMask.Mtime | SetAttrMask.MtimeSet, 0, 0, 0, 0, 0, 0, 1_700_000_000, 0));
                Interlocked.Increment(ref n.Bytes);
            });
        }, (_, _) => Task.CompletedTask);
}
