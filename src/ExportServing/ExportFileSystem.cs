using RootfsExport.NineP.Server;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;
using RootfsExport.PseudoDb;

namespace RootfsExport.ExportServing;

/// <summary>
/// The export as 9P sees it: host objects for content, sizes and times; the pseudo database for owner, mode
/// and device numbers. Every host access resolves below the export's directory fd with openat2
/// (RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS) or an *at() call on a single name with NOFOLLOW, so no client
/// request can reach or follow anything outside the export.
/// </summary>
public sealed unsafe partial class ExportFileSystem : INinePFileSystem<ExportFid>, IDisposable
{
    private const ulong Resolve = Libc.RESOLVE_BENEATH | Libc.RESOLVE_NO_SYMLINKS | Libc.RESOLVE_NO_MAGICLINKS;
    private const uint StatxMask = Libc.STATX_BASIC_STATS;
    
    private readonly int _rootFd;
    private readonly HostDir _root;
    private readonly long _rootDev;
    private readonly IOwnershipStore _store;
    internal IOwnershipStore Store => _store;
    private readonly LiveFids _liveFids = new();
    private readonly string[] _attachNames;
    private readonly BoardUsers _users;
    private const uint S_ISGID = 0x400, S_ISVTX = 0x200;
    internal const int MayRead = 4, MayWrite = 2, MayExec = 1;

    /// <summary>Canonical absolute path of the export: the prefix of every DB path.</summary>
    public string ExportPath { get; }

    /// <param name="qidDevice">the device whose inode numbers are qid paths as they are (a board's layer: the
    /// shared export's, so the two layers' qids differ when they sit on different file systems)</param>
    /// <param name="readUsersFile">where etc/passwd and etc/group are read (a board's layer: its merged view)</param>
    public ExportFileSystem(string exportPath, IOwnershipStore store, IEnumerable<string>? aliases = null,
        long? qidDevice = null, Func<string, string?>? readUsersFile = null)
    {
        ExportPath = ExportPaths.Canonical(exportPath);
        _store = store;
        _keyed = store is OwnershipStore cache && cache.KeyByRoot(ExportPath) ? cache : null;
        _rootFd = Libc.OpenAt(Libc.AT_FDCWD, ExportPath, Libc.O_RDONLY | Libc.O_DIRECTORY | Libc.O_CLOEXEC, 0);
        if (_rootFd < 0) throw PosixException.Last("open export", ExportPath);
        _rootDev = qidDevice ?? StatFd(_rootFd).Dev();
        _root = new HostDir(_rootFd, "", owned: false);
        _users = new BoardUsers(readUsersFile ?? ReadExportFile);
        _attachNames = new[] { ExportPath }.Concat((aliases ?? []).Select(a => Path.GetFullPath(a).TrimEnd('/'))).Distinct().ToArray();
    }

    // ---------------- paths and fids ----------------

    public string DbPath(string rel) => ExportPaths.Join(ExportPath, rel);

    internal static string Child(string dir, string name) => dir.Length == 0 ? name : dir + "/" + name;

    internal static string ParentOf(string rel)
    {
        int slash = rel.LastIndexOf('/');
        return slash < 0 ? "" : rel[..slash];
    }

    internal static string NameOf(string rel) => rel[(rel.LastIndexOf('/') + 1)..];

    /// <summary>A new fid: renames and unlinks keep it current from now on.</summary>
    internal ExportFid Track(ExportFid fid) => _liveFids.Add(Interned(fid));

    public void Clunk(ExportFid fid) => _liveFids.Remove(fid);

    // ---------------- host access ----------------

    /// <summary>
    /// Opens a relative path below the export without following any symlink; caller closes. Always non-blocking:
    /// a FIFO swapped in under a name must never park a server thread in open() (no effect on regular files).
    /// </summary>
    internal int OpenRel(string rel, int flags)
    {
        // openat2 refuses O_NONBLOCK together with O_PATH (which never blocks anyway)
        if ((flags & Libc.O_PATH) == 0) flags |= Libc.O_NONBLOCK;
        int fd = Libc.OpenAt2(_rootFd, rel.Length == 0 ? "." : rel, flags | Libc.O_CLOEXEC | Libc.O_NOFOLLOW, 0, Resolve);
        if (fd < 0) throw PosixException.Last("open", rel);
        return fd;
    }

    /// <summary>The directory at rel, opened from the root (the root itself for ""); caller releases.</summary>
    internal HostDir OpenDir(string rel) =>
        rel.Length == 0 ? _root : new HostDir(OpenRel(rel, Libc.O_PATH | Libc.O_DIRECTORY), rel);

    /// <summary>The directory at rel, which is the name `name` in the open directory `holder`.</summary>
    private static HostDir OpenDirIn(HostDir holder, string name, string rel)
    {
        int fd = Libc.OpenAt2(holder.Fd, name, Libc.O_PATH | Libc.O_DIRECTORY | Libc.O_CLOEXEC | Libc.O_NOFOLLOW, 0, Resolve);
        if (fd < 0) throw PosixException.Last("open", rel);
        return new HostDir(fd, rel);
    }

    /// <summary>
    /// Where a fid's object is for a single-name *at() call: the directory holding it (leased) and its name
    /// there; the root is (root fd, "").
    /// </summary>
    private readonly struct Place(HostDir dir, string name) : IDisposable
    {
        public int DirFd => dir.Fd;
        public HostDir Dir => dir;
        public string Name => name;
        public bool IsRoot => name.Length == 0;
        public void Dispose() => dir?.Release(); // default(Place): nothing leased
    }

    private Place Locate(ExportFid fid)
    {
        if (fid.Detached) throw new NinePException(Errno.ENOENT, "the fid's name was removed");
        var rel = fid.Path;
        if (rel.Length == 0) return new Place(_root, "");
        var dir = fid.LeaseParent(rel) ?? fid.KeepParent(OpenDir(ParentOf(rel)));
        return new Place(dir, NameOf(rel));
    }

    /// <summary>A directory fid's own directory, for *at() calls on its children; caller releases.</summary>
    private HostDir DirOf(ExportFid fid)
    {
        var rel = fid.Path;
        if (rel.Length == 0) return _root;
        var self = fid.LeaseSelf(rel);
        if (self != null) return self;
        using var at = Locate(fid);
        return fid.KeepSelf(OpenDirIn(at.Dir, at.Name, rel));
    }

    private Statx StatFid(ExportFid fid)
    {
        using var at = Locate(fid);
        return Stat(at);
    }

    private static Statx Stat(in Place at) => at.IsRoot ? StatFd(at.DirFd) : StatAt(at.DirFd, at.Name);

    /// <summary>Opens a fid's object (never a symlink: O_NOFOLLOW; never blocking: a FIFO swapped in); caller closes.</summary>
    private int OpenFid(ExportFid fid, int flags)
    {
        using var at = Locate(fid);
        int fd = Libc.OpenAt(at.DirFd, at.IsRoot ? "." : at.Name, flags | Libc.O_NONBLOCK | Libc.O_CLOEXEC | Libc.O_NOFOLLOW, 0);
        if (fd < 0) throw PosixException.Last("open", fid.Path);
        return fd;
    }

    internal static Statx StatFd(int fd)
    {
        if (Libc.StatxAt(fd, "", Libc.AT_EMPTY_PATH | Libc.AT_SYMLINK_NOFOLLOW, StatxMask, out var st) != 0) throw PosixException.Last("stat");
        return st;
    }

    internal static Statx StatAt(int dirFd, string name)
    {
        if (Libc.StatxAt(dirFd, name, Libc.AT_SYMLINK_NOFOLLOW, StatxMask, out var st) != 0) throw PosixException.Last("stat", name);
        return st;
    }

    internal Statx StatRel(string rel)
    {
        if (rel.Length == 0) return StatFd(_rootFd);
        using var dir = OpenDir(ParentOf(rel));
        return StatAt(dir.Fd, NameOf(rel));
    }

    public void Dispose() => Libc.Close(_rootFd);
}
