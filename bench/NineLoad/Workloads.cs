using System.Diagnostics;
using System.Net;
using RootfsExport.NineP.Protocol;

namespace RootfsExport.NineLoad;

public sealed record LoadOptions
{
    public required IPEndPoint Server { get; init; }
    /// <summary>The export path (diod wants the exported directory as aname; ours accepts it too).</summary>
    public required string Aname { get; init; }
    /// <summary>n_uname of the attach (diod run unprivileged only admits its own uid) and the gid of new files.</summary>
    public uint Uid { get; init; } = Caller.geteuid();
    public uint Gid { get; init; } = Caller.getegid();
    public int Connections { get; init; } = 1;
    /// <summary>Requests in flight per connection.</summary>
    public int Depth { get; init; } = 32;
    /// <summary>msize asked for; the server may answer less (diod 1.0.24: 65536).</summary>
    public uint Msize { get; init; } = 1024 * 1024 + P9.IoHeaderSize;
    public TimeSpan ReplyTimeout { get; init; } = TimeSpan.FromSeconds(30);
}

internal static partial class Caller
{
    [System.Runtime.InteropServices.LibraryImport("libc")] internal static partial uint geteuid();
    [System.Runtime.InteropServices.LibraryImport("libc")] internal static partial uint getegid();
}

/// <summary>What one run did: items are entries (walk), reads (read) or files (write).</summary>
public sealed record LoadResult(string Mode, int Connections, int Depth, uint Msize, long Items, long Requests, long Bytes, TimeSpan Elapsed)
{
    public double Seconds => Elapsed.TotalSeconds;

    public override string ToString() => string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"nineload: {Mode} connections={Connections} depth={Depth} msize={Msize} items={Items} requests={Requests} bytes={Bytes} " +
        $"seconds={Seconds:0.000} items/s={Items / Seconds:0} requests/s={Requests / Seconds:0} MB/s={Bytes / Seconds / 1e6:0.0}");
}

/// <summary>
/// The three loads of the benchmark. Each connection attaches on its own; the clock runs from the moment
/// all connections are attached (and, for writes, have their directory) until the last one is done.
/// </summary>
public static partial class Workloads
{
    private const uint OpenDirectory = 0x10000; // O_RDONLY | O_DIRECTORY, as v9fs opens a directory
    private const uint CreateFlags = 0x8042;    // O_RDWR | O_CREAT | O_LARGEFILE, what v9fs sends for `echo > new`
    private const uint RemoveDir = 0x200;       // AT_REMOVEDIR
    private const uint Eopnotsupp = 95;
    private const AttrMask KernelMask = AttrMask.Basic | AttrMask.Gen; // Linux 6.12 asks 0x17ff
    private const uint RootFid = 0;

    /// <summary>
    /// Every connection walks the whole export as `find -ls` through v9fs does: per directory clone + Tlopen +
    /// Treaddir until empty + Tclunk; per entry a one-name Twalk from its directory's fid, Tgetattr, Treadlink
    /// for symlinks, Tclunk. Items = entries seen (root included) summed over connections.
    /// </summary>
    public static Task<LoadResult> WalkAsync(LoadOptions o, CancellationToken ct) =>
        RunAsync("walk", o, ct, _ => Task.CompletedTask, async (c, _, counters) =>
        {
            await c.CallAsync<Rgetattr>(new Tgetattr(RootFid, KernelMask));
            Interlocked.Increment(ref counters.Items);
            await WalkDirAsync(c, RootFid, counters, ct);
        }, (_, _) => Task.CompletedTask);

    /// <summary>What a tree workload does with each regular file it walks to (the entry's fid stays the caller's).</summary>
    private delegate Task FileVisit(NineClient c, uint fid, Attributes attr, Counters counters);

    private static async Task WalkDirAsync(NineClient c, uint dirFid, Counters counters, CancellationToken ct, FileVisit? onFile = null)
    {
        ct.ThrowIfCancellationRequested();
        uint open = c.NewFid();
        await c.CallAsync<Rwalk>(new Twalk(dirFid, open, []));
        List<DirEntry> entries;
        try
        {
            await c.CallAsync<Rlopen>(new Tlopen(open, OpenDirectory));
            entries = await c.ReadDirAsync(open);
        }
        finally { await c.CheckAsync(new Tclunk(open)); }
        var children = new List<Task>(entries.Count);
        foreach (var e in entries)
            if (e.Name is not "." and not "..") children.Add(StatEntryAsync(c, dirFid, e.Name, counters, ct, onFile));
        await Task.WhenAll(children);
    }

    private static async Task StatEntryAsync(NineClient c, uint dirFid, string name, Counters counters, CancellationToken ct, FileVisit? onFile)
    {
        ct.ThrowIfCancellationRequested();
        uint fid = c.NewFid();
        var w = await c.CallAsync<Rwalk>(new Twalk(dirFid, fid, [name]));
        if (w.Qids.Count != 1) throw new InvalidDataException($"walk to '{name}' returned {w.Qids.Count} qids");
        try
        {
            var a = (await c.CallAsync<Rgetattr>(new Tgetattr(fid, KernelMask))).Attr;
            Interlocked.Increment(ref counters.Items);
            switch (a.Mode & 0xF000)
            {
                case 0x4000: await WalkDirAsync(c, fid, counters, ct, onFile); break;
                case 0xA000: await c.CallAsync<Rreadlink>(new Treadlink(fid)); break;
                case 0x8000 when onFile != null: await onFile(c, fid, a, counters); break;
            }
        }
        finally { await c.CheckAsync(new Tclunk(fid)); }
    }

    /// <summary>
    /// Every connection reads the whole file (path relative to the export) `passes` times with `depth` reads
    /// of msize − 24 bytes in flight. Items = Treads; bytes = data received.
    /// </summary>
    public static Task<LoadResult> ReadAsync(LoadOptions o, string path, int passes, CancellationToken ct)
    {
        var fids = new Dictionary<NineClient, (uint Fid, ulong Size)>();
        return RunAsync("read", o, ct, async c =>
        {
            uint fid = await WalkPathAsync(c, path);
            await c.CallAsync<Rlopen>(new Tlopen(fid, 0));
            var size = (await c.CallAsync<Rgetattr>(new Tgetattr(fid, AttrMask.Size))).Attr.Size;
            lock (fids) fids[c] = (fid, size);
        }, async (c, _, counters) =>
        {
            var (fid, size) = fids[c];
            uint chunk = c.Msize - P9.IoHeaderSize;
            for (int pass = 0; pass < passes; pass++)
            {
                long next = -chunk;
                var readers = Enumerable.Range(0, o.Depth).Select(async _ =>
                {
                    while (true)
                    {
                        ct.ThrowIfCancellationRequested();
                        long off = Interlocked.Add(ref next, chunk);
                        if ((ulong)off >= size) return;
                        int n = await c.ReadAsync(fid, (ulong)off, chunk);
                        if (n == 0) throw new InvalidDataException($"short file: EOF at {off} of {size}");
                        Interlocked.Increment(ref counters.Items);
                        Interlocked.Add(ref counters.Bytes, n);
                    }
                }).ToArray();
                await Task.WhenAll(readers);
            }
        }, async (c, _) => await c.CheckAsync(new Tclunk(fids[c].Fid)));
    }

    /// <summary>
    /// Every connection makes its own directory under dir (not timed), then creates `files` files of `size`
    /// bytes in it with `depth` files in flight: clone the directory fid, Tlcreate, Twrite, Tclunk. The files
    /// and directories are removed afterwards (not timed; Tunlinkat, or walk + Tremove where the server does
    /// not implement it, as diod 1.0.24) unless keep is set. Items = files; bytes = data written.
    /// </summary>
    public static Task<LoadResult> WriteAsync(LoadOptions o, string dir, int files, int size, bool keep, CancellationToken ct)
    {
        var data = new byte[size];
        new Random(5).NextBytes(data);
        var dirs = new Dictionary<NineClient, (uint Parent, uint Dir, string Name)>();
        int run = Environment.ProcessId;
        int nextConnection = 0;
        return RunAsync("write", o, ct, async c =>
        {
            uint parent = await WalkPathAsync(c, dir);
            var name = $"nineload-{run}-{Interlocked.Increment(ref nextConnection)}";
            await c.CallAsync<Rmkdir>(new Tmkdir(parent, name, 0x41ed, o.Gid));
            uint d = c.NewFid();
            await c.CallAsync<Rwalk>(new Twalk(parent, d, [name]));
            lock (dirs) dirs[c] = (parent, d, name);
        }, async (c, _, counters) =>
        {
            uint d = dirs[c].Dir;
            int next = -1;
            var writers = Enumerable.Range(0, o.Depth).Select(async _ =>
            {
                while (true)
                {
                    ct.ThrowIfCancellationRequested();
                    int k = Interlocked.Increment(ref next);
                    if (k >= files) return;
                    uint fid = c.NewFid();
                    await c.CallAsync<Rwalk>(new Twalk(d, fid, []));
                    await c.CallAsync<Rlcreate>(new Tlcreate(fid, FileName(k), CreateFlags, 0x81a4, o.Gid));
                    var written = (await c.CallAsync<Rwrite>(new Twrite(fid, 0, data))).Count;
                    if (written != data.Length) throw new InvalidDataException($"short write: {written} of {data.Length}");
                    await c.CheckAsync(new Tclunk(fid));
                    Interlocked.Increment(ref counters.Items);
                    Interlocked.Add(ref counters.Bytes, written);
                }
            }).ToArray();
            await Task.WhenAll(writers);
        }, async (c, _) =>
        {
            var (parent, d, name) = dirs[c];
            if (!keep)
            {
                int next = -1;
                await Task.WhenAll(Enumerable.Range(0, o.Depth).Select(async _ =>
                {
                    for (int k; (k = Interlocked.Increment(ref next)) < files;) await RemoveAsync(c, d, FileName(k), 0);
                }));
            }
            await c.CheckAsync(new Tclunk(d));
            if (!keep) await RemoveAsync(c, parent, name, RemoveDir);
            await c.CheckAsync(new Tclunk(parent));
        });
    }

    private static string FileName(int k) => $"f{k:D5}";

    private static async Task RemoveAsync(NineClient c, uint dirFid, string name, uint flags)
    {
        using (var r = await c.RpcAsync(new Tunlinkat(dirFid, name, flags)))
        {
            if (r.Type == MessageType.Runlinkat) return;
            if (r.Errno != Eopnotsupp) r.ThrowIfError(new Tunlinkat(dirFid, name, flags));
        }
        uint fid = c.NewFid();
        await c.CallAsync<Rwalk>(new Twalk(dirFid, fid, [name]));
        await c.CheckAsync(new Tremove(fid));
    }

    /// <summary>Walks from the root to a path inside the export (up to 16 names per Twalk) into a new fid.</summary>
    private static async Task<uint> WalkPathAsync(NineClient c, string path)
    {
        var names = path.Split('/', StringSplitOptions.RemoveEmptyEntries);
        uint fid = c.NewFid();
        await c.CallAsync<Rwalk>(new Twalk(RootFid, fid, []));
        for (int i = 0; i < names.Length; i += P9.MaxWalkElements)
        {
            var part = names.Skip(i).Take(P9.MaxWalkElements).ToArray();
            var w = await c.CallAsync<Rwalk>(new Twalk(fid, fid, part));
            if (w.Qids.Count != part.Length) throw new NineError(2, $"walk to {path}");
        }
        return fid;
    }

    private sealed class Counters
    {
        public long Items, Bytes;
    }

    /// <summary>Connects and attaches all connections, prepares each, then times the load over all of them together.</summary>
    private static async Task<LoadResult> RunAsync(string mode, LoadOptions o, CancellationToken ct,
        Func<NineClient, Task> prepare, Func<NineClient, int, Counters, Task> load, Func<NineClient, int, Task> finish)
    {
        var clients = new List<NineClient>();
        try
        {
            for (int i = 0; i < o.Connections; i++)
            {
                var c = await NineClient.ConnectAsync(o.Server, o.Depth, o.ReplyTimeout, ct);
                clients.Add(c);
                await c.MountAsync(o.Aname, o.Uid, o.Msize, RootFid);
                await prepare(c);
            }
            var counters = new Counters();
            long before = clients.Sum(c => Interlocked.Read(ref c.Requests));
            var clock = Stopwatch.StartNew();
            await Task.WhenAll(clients.Select((c, i) => Task.Run(() => load(c, i, counters), ct)));
            clock.Stop();
            long requests = clients.Sum(c => Interlocked.Read(ref c.Requests)) - before;
            await Task.WhenAll(clients.Select((c, i) => finish(c, i)));
            return new LoadResult(mode, o.Connections, o.Depth, clients[0].Msize, counters.Items, requests, counters.Bytes, clock.Elapsed);
        }
        finally
        {
            foreach (var c in clients) await c.DisposeAsync();
        }
    }
}
