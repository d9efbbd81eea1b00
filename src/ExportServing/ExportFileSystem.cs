using System.Buffers.Binary;
using System.Runtime.InteropServices;
using System.Text;
using RootfsExport.NineP.Protocol;
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
    private const long UtimeNow = (1L << 30) - 1, UtimeOmit = (1L << 30) - 2;
    
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
    internal ExportFid Track(ExportFid fid) => _liveFids.Add(fid);

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

    // ---------------- ownership ----------------

    /// <summary>The mode the client sees: the DB's when it describes this object, the host's otherwise.</summary>
    internal static uint EffectiveMode(in Statx st, FileRow? row)
    {
        uint hostType = st.Mode & Libc.S_IFMT;
        if (row is null) return st.Mode;
        uint dbType = row.Mode & Libc.S_IFMT;
        if (dbType == hostType) return row.Mode;
        // Device nodes and sockets are empty regular files on disk.
        if (hostType == Libc.S_IFREG && dbType is Libc.S_IFCHR or Libc.S_IFBLK or Libc.S_IFSOCK) return row.Mode;
        return st.Mode; // a stale row (pseudo would drop it): trust the disk
    }

    internal FileRow? RowFor(string rel, in Statx st)
    {
        var row = _store.Get(DbPath(rel));
        if (row is null) return null;
        return EffectiveMode(st, row) == row.Mode ? row : null;
    }

    /// <summary>The object's row, recorded from the host's values first when the DB has none.</summary>
    private FileRow EnsureRow(string rel, in Statx st)
    {
        var row = RowFor(rel, st);
        if (row != null) return row;
        row = new FileRow(DbPath(rel), st.Dev(), st.InoSigned(), st.Uid, st.Gid, st.Mode, 0);
        _store.PutNew(row);
        return row;
    }

    private ulong QidPath(in Statx st)
    {
        long dev = st.Dev();
        return dev == _rootDev ? st.Ino : st.Ino ^ ((ulong)dev << 44);
    }

    internal static QidType QidTypeOf(uint mode) => (mode & Libc.S_IFMT) switch
    {
        Libc.S_IFDIR => QidType.Dir,
        Libc.S_IFLNK => QidType.Symlink,
        _ => QidType.File,
    };

    internal Qid QidOf(string rel, in Statx st) => new(QidTypeOf(EffectiveMode(st, _store.Get(DbPath(rel)))), 0, QidPath(st));

    internal static bool IsDir(in Statx st) => (st.Mode & Libc.S_IFMT) == Libc.S_IFDIR;

    /// <summary>Linux's new_encode_dev, which the v9fs client decodes Rgetattr's rdev with.</summary>
    private static ulong KernelDev(long glibcDev)
    {
        ulong major = Libc.Major(glibcDev), minor = Libc.Minor(glibcDev);
        return (minor & 0xff) | (major << 8) | ((minor & ~0xffUL) << 12);
    }

    // ---------------- permissions (fids attached as a board user other than root: access=user) ----------------

    /// <summary>etc/passwd or etc/group of the export, for <see cref="BoardUsers"/>; null when absent.</summary>
    internal string? ReadExportFile(string rel)
    {
        int fd;
        try { fd = OpenRel(rel, Libc.O_RDONLY); }
        catch (PosixException) { return null; }
        using var stream = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(fd, ownsHandle: true), FileAccess.Read, 0);
        var buf = new byte[1 << 20];
        int n = 0, r;
        while (n < buf.Length && (r = stream.Read(buf, n, buf.Length - n)) > 0) n += r;
        return Encoding.UTF8.GetString(buf, 0, n);
    }

    /// <summary>Whether uid gets `want` (MayRead/MayWrite/MayExec) from the owner, group or other bits.</summary>
    private bool Permits(uint uid, FileRow? row, in Statx st, int want)
    {
        uint mode = EffectiveMode(st, row), owner = row?.Uid ?? st.Uid, group = row?.Gid ?? st.Gid;
        uint bits = uid == owner ? mode >> 6 : _users.InGroup(uid, group) ? mode >> 3 : mode;
        return ((int)bits & want) == want;
    }

    /// <summary>Root may do anything (CAP_DAC_OVERRIDE), so its requests cost no check at all.</summary>
    internal void Require(ExportFid fid, FileRow? row, in Statx st, int want, string what)
    {
        if (fid.Uid != 0 && !Permits(fid.Uid, row, st, want)) throw new NinePException(Errno.EACCES, $"{what}: permission denied");
    }

    /// <summary>Search (and for a change, write) permission in the directory dir.</summary>
    internal void RequireInDir(ExportFid fid, HostDir dir, int want)
    {
        if (fid.Uid == 0) return;
        var st = StatFd(dir.Fd);
        Require(fid, RowFor(dir.Rel, st), st, want, dir.Rel.Length == 0 ? "/" : dir.Rel);
    }

    private void RequireOpen(ExportFid fid, in Statx st, uint flags)
    {
        if (fid.Uid == 0) return;
        int want = (flags & 3) switch { 0 => MayRead, 1 => MayWrite, 2 => MayRead | MayWrite, _ => 0 };
        if ((flags & Libc.O_TRUNC) != 0) want |= MayWrite;
        Require(fid, RowFor(fid.Path, st), st, want, fid.Path);
    }

    /// <summary>Removing or replacing name in dir: write and search on dir, and in a sticky directory ownership.</summary>
    internal void RequireMayDelete(ExportFid fid, HostDir dir, string name)
    {
        if (fid.Uid == 0) return;
        var dst = StatFd(dir.Fd);
        var drow = RowFor(dir.Rel, dst);
        Require(fid, drow, dst, MayWrite | MayExec, dir.Rel.Length == 0 ? "/" : dir.Rel);
        if ((EffectiveMode(dst, drow) & S_ISVTX) == 0) return;
        var st = StatAt(dir.Fd, name);
        var row = RowFor(Child(dir.Rel, name), st);
        if (fid.Uid != (row?.Uid ?? st.Uid) && fid.Uid != (drow?.Uid ?? dst.Uid))
            throw new NinePException(Errno.EPERM, $"{name}: sticky directory, not the owner");
    }

    /// <summary>
    /// Owner, group and mode of a new object in dir: the attaching user; a setgid directory's group (and for a
    /// directory its setgid bit), else the gid the client sent: the creating process's fsgid, which only the
    /// board knows (newgrp, setgid programs). The mode is the client's, its umask applied there.
    /// </summary>
    private (uint Uid, uint Gid, uint Mode) NewOwner(ExportFid dfid, HostDir dir, uint gid, uint mode, bool isDir)
    {
        uint uid = dfid.Uid;
        var dst = StatFd(dir.Fd);
        var drow = RowFor(dir.Rel, dst);
        if ((EffectiveMode(dst, drow) & S_ISGID) != 0)
        {
            gid = drow?.Gid ?? dst.Gid;
            if (isDir) mode |= S_ISGID;
            // a file handed a group its creator is not in must not be setgid to it
            if (!isDir && uid != 0 && !_users.InGroup(uid, gid)) mode &= ~S_ISGID;
        }
        return (uid, gid, mode);
    }

    /// <summary>
    /// Tsetattr by a user other than root, by Linux's rules: only the owner changes mode or times, nobody gives a
    /// file away, the owner changes the group to one of theirs; a chmod that sets setgid without that group
    /// drops the bit. Returns what is to be applied.
    /// </summary>
    private SetAttrValues CheckSetAttr(ExportFid fid, FileRow? row, in Statx st, SetAttrMask v, SetAttrValues m)
    {
        uint uid = fid.Uid;
        if (uid == 0) return m;
        uint owner = row?.Uid ?? st.Uid, group = row?.Gid ?? st.Gid;
        bool isOwner = uid == owner;
        if ((v & SetAttrMask.Uid) != 0 && !(isOwner && m.Uid == owner)) throw new NinePException(Errno.EPERM, "chown: not root");
        if ((v & SetAttrMask.Gid) != 0 && !(isOwner && (m.Gid == group || _users.InGroup(uid, m.Gid))))
            throw new NinePException(Errno.EPERM, "chgrp: not the owner or not a member");
        if ((v & SetAttrMask.Mode) != 0)
        {
            if (!isOwner) throw new NinePException(Errno.EPERM, "chmod: not the owner");
            uint newGroup = (v & SetAttrMask.Gid) != 0 ? m.Gid : group;
            if (!IsDir(st) && !_users.InGroup(uid, newGroup)) m = m with { Mode = m.Mode & ~S_ISGID };
        }
        if ((v & SetAttrMask.Size) != 0 && !(fid.Fd >= 0 && fid.Writable)) Require(fid, row, st, MayWrite, fid.Path);
        if ((v & (SetAttrMask.AtimeSet | SetAttrMask.MtimeSet)) != 0 && !isOwner) throw new NinePException(Errno.EPERM, "utimes: not the owner");
        if ((v & (SetAttrMask.Atime | SetAttrMask.Mtime)) != 0 && !isOwner) Require(fid, row, st, MayWrite, fid.Path);
        return m;
    }

    // ---------------- operations ----------------

    /// <summary>Tattach: aname must be the export or a directory inside it.</summary>
    public ExportFid Attach(string aname, uint uid, out Qid qid)
    {
        var rel = AttachPath(aname);
        var st = StatRel(rel);
        if (!IsDir(st)) throw new NinePException(Errno.ENOTDIR, "aname is not a directory");
        qid = QidOf(rel, st);
        return Track(new ExportFid(rel, uid));
    }

    /// <summary>aname's path inside the export.</summary>
    internal string AttachPath(string aname)
    {
        var name = aname.Length > 1 ? aname.TrimEnd('/') : aname;
        string? rel = null;
        if (name.Length == 0) rel = "";
        else
            foreach (var root in _attachNames)
            {
                if (name == root) { rel = ""; break; }
                var prefix = root == "/" ? "/" : root + "/";
                if (name.StartsWith(prefix, StringComparison.Ordinal)) { rel = name[prefix.Length..]; break; }
            }
        if (rel is null) throw new NinePException(Errno.EPERM, $"aname '{aname}' is not inside the export {ExportPath}");
        foreach (var part in rel.Split('/', StringSplitOptions.None))
            if (rel.Length > 0) NinePNames.Check(part);
        return rel;
    }

    /// <summary>
    /// Twalk from fid: '..' at the export root stays at the root; symlinks are returned, never followed. On
    /// success NewRel is the new fid's path and Holder the directory its object is in (leased to the new fid).
    /// </summary>
    public List<Qid> Walk(ExportFid fid, IReadOnlyList<string> names, out ExportFid? walked)
    {
        var qids = WalkNames(fid, names, out var rel, out var holder);
        walked = null;
        if (rel is null) return qids;
        walked = new ExportFid(rel, fid.Uid);
        if (holder != null) walked.AdoptParent(holder);
        Track(walked);
        return qids;
    }

    /// <summary>Where a walk is: the path reached, its stat when known, the directories held on the way.</summary>
    private struct WalkState
    {
        public string Cur;
        public Statx St;
        public bool Known; // the starting point is only stat'ed for '.' and '..': for a name, opening it fails with ENOTDIR by itself
        public HostDir? Up; // the directory holding Cur, when this walk reached Cur by a name
        public HostDir? At; // Cur itself, once a name was looked up in it
    }

    private List<Qid> WalkNames(ExportFid fid, IReadOnlyList<string> names, out string? newRel, out HostDir? holder)
    {
        newRel = null;
        holder = null;
        var qids = new List<Qid>(names.Count);
        if (fid.Detached) throw new NinePException(Errno.ENOENT, "the fid's name was removed");
        var w = new WalkState { Cur = fid.Path };
        if (names.Count == 0) // a clone
        {
            newRel = w.Cur;
            holder = w.Cur.Length == 0 ? null : fid.LeaseParent(w.Cur);
            return qids;
        }
        try
        {
            for (int i = 0; i < names.Count; i++)
            {
                try { qids.Add(names[i] is "." or ".." ? StepDot(ref w, names[i]) : StepName(fid, ref w, names[i])); }
                catch when (i > 0)
                {
                    return qids; // partial walk: newfid is not created
                }
            }
            newRel = w.Cur;
            holder = w.Up;
            w.Up = null;
            return qids;
        }
        finally
        {
            w.Up?.Release();
            w.At?.Release();
        }
    }

    private Qid StepDot(ref WalkState w, string n)
    {
        if (!w.Known) { w.St = StatRel(w.Cur); w.Known = true; }
        if (!IsDir(w.St)) throw new NinePException(Errno.ENOTDIR, "walk through a non-directory");
        if (n == "..")
        {
            w.Cur = ParentOf(w.Cur);
            w.St = StatRel(w.Cur);
            w.Up?.Release(); w.Up = null;
            w.At?.Release(); w.At = null;
        }
        return QidOf(w.Cur, w.St);
    }

    private Qid StepName(ExportFid fid, ref WalkState w, string n)
    {
        w.At ??= w.Up != null ? OpenDirIn(w.Up, NameOf(w.Cur), w.Cur) : w.Cur == fid.Path ? DirOf(fid) : OpenDir(w.Cur);
        RequireInDir(fid, w.At, MayExec);
        var next = Child(w.Cur, n);
        w.St = StatAt(w.At.Fd, n);
        w.Known = true;
        var qid = QidOf(next, w.St);
        w.Up?.Release();
        w.Up = w.At;
        w.At = null;
        w.Cur = next;
        return qid;
    }

    public Attributes GetAttr(ExportFid fid, AttrMask request)
    {
        var st = StatObject(fid, out bool fromFd);
        var row = ObjectRow(fid, st, fromFd);
        uint mode = EffectiveMode(st, row);
        return new Attributes(
            AttrMask.Basic, new Qid(QidTypeOf(mode), 0, QidPath(st)), mode,
            row?.Uid ?? st.Uid, row?.Gid ?? st.Gid, st.Nlink,
            row != null ? KernelDev(row.Rdev) : KernelDev(st.Rdev()),
            st.Size, st.BlkSize, st.Blocks,
            (ulong)st.Atime.Sec, st.Atime.Nsec, (ulong)st.Mtime.Sec, st.Mtime.Nsec, (ulong)st.Ctime.Sec, st.Ctime.Nsec,
            0, 0, 0, 0);
    }

    /// <summary>
    /// The fid's open fd, or the fd that pins its object since its name went; -1 when the fid reaches its object
    /// by name. Either fd stays valid while the caller holds its reference on the fid.
    /// </summary>
    private static int ObjectFd(ExportFid fid) => fid.Fd >= 0 ? fid.Fd : fid.Pin;

    /// <summary>The fid's object: through its fd when it has one (so an open, unlinked file still answers), else by name.</summary>
    private Statx StatObject(ExportFid fid, out bool fromFd)
    {
        int fd = ObjectFd(fid);
        fromFd = fd >= 0;
        return fromFd ? StatFd(fd) : StatFid(fid);
    }

    /// <summary>
    /// The row describing the object stat'ed through the fid: its name's row while the name is its own, else a
    /// row of another link of the inode, else the row it had when its name went.
    /// </summary>
    private FileRow? ObjectRow(ExportFid fid, in Statx st, bool fromFd)
    {
        if (!fid.Detached)
        {
            var row = RowFor(fid.Path, st);
            if (!fromFd || row is null || (row.Dev == st.Dev() && row.Ino == st.InoSigned())) return row;
        }
        var link = _store.ByInode(st.Dev(), st.InoSigned());
        if (link != null && EffectiveMode(st, link) == link.Mode) return link;
        return fid.Orphan?.Row;
    }

    /// <summary>/proc's name for an fd: reaches exactly the object the fd holds (O_PATH fds cannot be fchmod'ed).</summary>
    private static string ProcFd(int fd) => $"/proc/self/fd/{fd}";

    public void SetAttr(ExportFid fid, SetAttrMask v, in SetAttrValues values)
    {
        int fd = ObjectFd(fid);
        using var at = fd >= 0 ? default : Locate(fid);
        var st = fd >= 0 ? StatFd(fd) : Stat(at);
        var m = CheckSetAttr(fid, ObjectRow(fid, st, fd >= 0), st, v, values);
        if ((v & (SetAttrMask.Mode | SetAttrMask.Uid | SetAttrMask.Gid)) != 0) SetOwnership(fid, st, v, m, fd, at);
        if ((v & SetAttrMask.Size) != 0) Truncate(fid, st, m.Size, fd);
        if ((v & (SetAttrMask.Atime | SetAttrMask.Mtime)) != 0) SetTimes(fid, st, v, m, fd, at);
        // Every chown changes the ctime, even one to the same owner (the client sends CTIME alone for
        // chown(-1, -1)); the owner lives in the DB only, so touch the host inode's ctime with a chown that
        // changes nothing else. Best effort: the change itself is already recorded.
        if ((v & (SetAttrMask.Mode | SetAttrMask.Uid | SetAttrMask.Gid | SetAttrMask.Ctime)) != 0)
            _ = fd >= 0 ? Libc.FchownAt(fd, "", uint.MaxValue, uint.MaxValue, Libc.AT_EMPTY_PATH)
                : at.IsRoot ? Libc.FchownAt(_rootFd, "", uint.MaxValue, uint.MaxValue, Libc.AT_EMPTY_PATH)
                : Libc.FchownAt(at.DirFd, at.Name, uint.MaxValue, uint.MaxValue, Libc.AT_SYMLINK_NOFOLLOW);
    }

    private void SetOwnership(ExportFid fid, in Statx st, SetAttrMask v, in SetAttrValues m, int fd, in Place at)
    {
        var row = ObjectRow(fid, st, fd >= 0) ?? EnsureRow(fid.Path, st);
        uint uid = (v & SetAttrMask.Uid) != 0 ? m.Uid : row.Uid;
        uint gid = (v & SetAttrMask.Gid) != 0 ? m.Gid : row.Gid;
        uint mode = (v & SetAttrMask.Mode) != 0 ? m.Mode & 0xfff : row.Mode & 0xfff;
        if (fid.Orphan is { } orphan && ReferenceEquals(orphan.Row, row))
            orphan.Row = row with { Uid = uid, Gid = gid, Mode = (row.Mode & Libc.S_IFMT) | mode }; // no name: nothing to record
        else
            _store.UpdateOwnership(row, uid, gid, mode);
        if ((v & SetAttrMask.Mode) == 0 || (st.Mode & Libc.S_IFMT) == Libc.S_IFLNK) return;
        uint onDisk = StMode.OnDisk(mode, IsDir(st));
        // NOFOLLOW: a symlink swapped in since the stat must not redirect the chmod
        int rc = fd >= 0 ? (fd == fid.Fd ? Libc.Fchmod(fd, onDisk) : Libc.FchmodAt(Libc.AT_FDCWD, ProcFd(fd), onDisk, 0))
            : at.IsRoot ? Libc.Fchmod(_rootFd, onDisk) : Libc.FchmodAt(at.DirFd, at.Name, onDisk, Libc.AT_SYMLINK_NOFOLLOW);
        if (rc != 0) throw PosixException.Last("chmod", fid.Path);
    }

    private void Truncate(ExportFid fid, in Statx st, ulong size, int fd)
    {
        if (IsDir(st)) throw new NinePException(Errno.EISDIR, "truncate a directory");
        if ((st.Mode & Libc.S_IFMT) != Libc.S_IFREG) throw new NinePException(Errno.EINVAL, "truncate a special file");
        if (size > long.MaxValue) throw new NinePException(Errno.EFBIG, "size");
        bool ownFd = !(fid.Fd >= 0 && fid.Writable);
        int w = !ownFd ? fid.Fd
            : fd >= 0 ? Libc.OpenAt(Libc.AT_FDCWD, ProcFd(fd), Libc.O_WRONLY | Libc.O_NONBLOCK | Libc.O_CLOEXEC, 0)
            : OpenFid(fid, Libc.O_WRONLY);
        if (w < 0) throw PosixException.Last("open", fid.Path);
        try { if (Libc.Ftruncate(w, (long)size) != 0) throw PosixException.Last("truncate", fid.Path); }
        finally { if (ownFd) Libc.Close(w); }
    }

    private void SetTimes(ExportFid fid, in Statx st, SetAttrMask v, in SetAttrValues m, int fd, in Place at)
    {
        var times = stackalloc Timespec[2];
        times[0] = TimeFor(v, SetAttrMask.Atime, SetAttrMask.AtimeSet, m.AtimeSec, m.AtimeNsec);
        times[1] = TimeFor(v, SetAttrMask.Mtime, SetAttrMask.MtimeSet, m.MtimeSec, m.MtimeNsec);
        int rc;
        if (fd >= 0)
        {
            // through /proc a symlink would be followed: a symlink whose name went keeps its times
            if ((st.Mode & Libc.S_IFMT) == Libc.S_IFLNK) return;
            rc = Libc.UtimensAt(Libc.AT_FDCWD, ProcFd(fd), times, 0);
        }
        else rc = at.IsRoot ? Libc.Futimens(_rootFd, times) : Libc.UtimensAt(at.DirFd, at.Name, times, Libc.AT_SYMLINK_NOFOLLOW);
        if (rc != 0) throw PosixException.Last("utimensat", fid.Path);
    }

    private static Timespec TimeFor(SetAttrMask v, SetAttrMask bit, SetAttrMask setBit, ulong sec, ulong nsec)
    {
        if ((v & bit) == 0) return new Timespec { Sec = 0, Nsec = UtimeOmit };
        if ((v & setBit) == 0) return new Timespec { Sec = 0, Nsec = UtimeNow };
        if (nsec >= 1_000_000_000) throw new NinePException(Errno.EINVAL, "nanoseconds out of range");
        return new Timespec { Sec = (long)sec, Nsec = (long)nsec };
    }

    public Qid Open(ExportFid fid, uint flags)
    {
        var rel = fid.Path;
        var st = StatFid(fid);
        RequireOpen(fid, st, flags);
        if (IsDir(st))
        {
            if ((flags & 3) != Libc.O_RDONLY) throw new NinePException(Errno.EISDIR, "open a directory for writing");
        }
        else
        {
            if ((st.Mode & Libc.S_IFMT) == Libc.S_IFLNK) throw new NinePException(Errno.ELOOP, "open a symlink");
            int acc = (int)(flags & 3) == 3 ? Libc.O_RDWR : (int)(flags & 3);
            int extra = (int)flags & (Libc.O_TRUNC | Libc.O_APPEND);
            fid.Fd = OpenFid(fid, acc | extra);
            fid.Writable = acc != Libc.O_RDONLY;
        }
        return QidOf(rel, st);
    }

    public Qid Create(ExportFid fid, string name, uint flags, uint mode, uint gid)
    {
        var dirRel = fid.Path;
        using var dir = DirOf(fid);
        RequireInDir(fid, dir, MayWrite | MayExec);
        (uint uid, gid, mode) = NewOwner(fid, dir, gid, mode, isDir: false);
        int acc = (int)(flags & 3) == 3 ? Libc.O_RDWR : (int)(flags & 3);
        int fd = Libc.OpenAt(dir.Fd, name, acc | ((int)flags & Libc.O_APPEND) | Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW | Libc.O_CLOEXEC,
            StMode.OnDisk(mode, false));
        if (fd < 0) throw PosixException.Last("create", name);
        try
        {
            var st = StatFd(fd);
            var rel = Child(dirRel, name);
            _store.PutNew(new FileRow(DbPath(rel), st.Dev(), st.InoSigned(), uid, gid, Libc.S_IFREG | (mode & 0xfff), 0));
            fid.Fd = fd;
            fid.Writable = acc != Libc.O_RDONLY;
            fid.Path = rel;
            return new Qid(QidType.File, 0, QidPath(st));
        }
        catch
        {
            Libc.Close(fd);
            throw;
        }
    }

    public Qid Mkdir(ExportFid dfid, string name, uint mode, uint gid)
    {
        var rel = Child(dfid.Path, name);
        using var dir = DirOf(dfid);
        RequireInDir(dfid, dir, MayWrite | MayExec);
        (uint uid, gid, mode) = NewOwner(dfid, dir, gid, mode, isDir: true);
        if (Libc.MkdirAt(dir.Fd, name, StMode.OnDisk(mode, true)) != 0) throw PosixException.Last("mkdir", name);
        var st = StatAt(dir.Fd, name);
        _store.PutNew(new FileRow(DbPath(rel), st.Dev(), st.InoSigned(), uid, gid, Libc.S_IFDIR | (mode & 0xfff), 0));
        return new Qid(QidType.Dir, 0, QidPath(st));
    }

    public Qid Symlink(ExportFid dfid, string name, string target, uint gid)
    {
        if (target.Length == 0 || target.Contains('\0')) throw new NinePException(Errno.EINVAL, "bad symlink target");
        var rel = Child(dfid.Path, name);
        using var dir = DirOf(dfid);
        RequireInDir(dfid, dir, MayWrite | MayExec);
        (uint uid, gid, _) = NewOwner(dfid, dir, gid, 0x1ff, isDir: false);
        if (Libc.SymlinkAt(target, dir.Fd, name) != 0) throw PosixException.Last("symlink", name);
        var st = StatAt(dir.Fd, name);
        _store.PutNew(new FileRow(DbPath(rel), st.Dev(), st.InoSigned(), uid, gid, Libc.S_IFLNK | 0x1ff, 0));
        return new Qid(QidType.Symlink, 0, QidPath(st));
    }

    /// <summary>Device nodes and sockets become empty regular files (the DB row carries type and rdev); FIFOs are real.</summary>
    public Qid Mknod(ExportFid dfid, string name, uint mode, uint major, uint minor, uint gid)
    {
        var rel = Child(dfid.Path, name);
        uint type = mode & Libc.S_IFMT;
        if (type == 0) type = Libc.S_IFREG;
        using var dir = DirOf(dfid);
        RequireInDir(dfid, dir, MayWrite | MayExec);
        // device nodes need CAP_MKNOD on the board: only root makes them (FIFOs, sockets and files anyone)
        if (dfid.Uid != 0 && type is Libc.S_IFCHR or Libc.S_IFBLK) throw new NinePException(Errno.EPERM, "mknod of a device by a user");
        (uint uid, gid, mode) = NewOwner(dfid, dir, gid, mode, isDir: false);
        switch (type)
        {
            case Libc.S_IFIFO:
                if (Libc.MknodAt(dir.Fd, name, Libc.S_IFIFO | StMode.OnDisk(mode, false), 0) != 0) throw PosixException.Last("mkfifo", name);
                break;
            case Libc.S_IFCHR or Libc.S_IFBLK or Libc.S_IFSOCK or Libc.S_IFREG:
                int fd = Libc.OpenAt(dir.Fd, name, Libc.O_WRONLY | Libc.O_CREAT | Libc.O_EXCL | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, StMode.OnDisk(mode, false));
                if (fd < 0) throw PosixException.Last("mknod", name);
                Libc.Close(fd);
                break;
            default:
                throw new NinePException(Errno.EINVAL, "mknod of a directory or symlink");
        }
        var st = StatAt(dir.Fd, name);
        long rdev = type is Libc.S_IFCHR or Libc.S_IFBLK ? Libc.MakeDev(major, minor) : 0;
        _store.PutNew(new FileRow(DbPath(rel), st.Dev(), st.InoSigned(), uid, gid, type | (mode & 0xfff), rdev));
        return new Qid(QidType.File, 0, QidPath(st));
    }

    public void Link(ExportFid dfid, ExportFid fid, string name)
    {
        var srcRel = fid.Path;
        if (srcRel.Length == 0) throw new NinePException(Errno.EPERM, "link the export root");
        using var from = Locate(fid);
        var st = Stat(from);
        if (IsDir(st)) throw new NinePException(Errno.EPERM, "hard link to a directory");
        var row = EnsureRow(srcRel, st);
        using (var to = DirOf(dfid))
        {
            RequireInDir(dfid, to, MayWrite | MayExec);
            if (Libc.LinkAt(from.DirFd, from.Name, to.Fd, name, 0) != 0) throw PosixException.Last("link", name);
        }
        _store.PutLink(row with { Path = DbPath(Child(dfid.Path, name)) });
    }

    /// <summary>Trename: the fid's object into newDir under newName.</summary>
    public void Rename(ExportFid fid, ExportFid newDir, string newName)
    {
        if (fid.Path.Length == 0) throw new NinePException(Errno.EBUSY, "rename the export root");
        using var from = Locate(fid);
        using var to = DirOf(newDir);
        Rename(fid, from.Dir, Child(from.Dir.Rel, from.Name), to, newName);
    }

    /// <summary>Trenameat: oldName in oldDir to newName in newDir.</summary>
    public void RenameAt(ExportFid oldDir, string oldName, ExportFid newDir, string newName)
    {
        using var from = DirOf(oldDir);
        using var to = DirOf(newDir);
        Rename(oldDir, from, Child(from.Rel, oldName), to, newName); // from.Rel: the path of the directory we hold, as Unlink does
    }

    private void Rename(ExportFid who, HostDir from, string oldRel, HostDir to, string newName)
    {
        var newRel = Child(to.Rel, newName);
        if (newRel == oldRel) return;
        bool targetExisted = Libc.StatxAt(to.Fd, newName, Libc.AT_SYMLINK_NOFOLLOW, StatxMask, out _) == 0;
        RequireMayDelete(who, from, NameOf(oldRel));
        if (targetExisted) RequireMayDelete(who, to, newName); else RequireInDir(who, to, MayWrite | MayExec);
        // fids on a replaced target keep reaching the replaced object, as a process's open file does
        var replaced = targetExisted ? PrepareDetach(to, newName, newRel) : null;
        if (Libc.RenameAt2(from.Fd, NameOf(oldRel), to.Fd, newName, 0) != 0)
        {
            int e = Marshal.GetLastPInvokeError();
            replaced?.Abandon();
            throw new PosixException(e, "rename", newName);
        }
        replaced?.Apply();
        _store.Rename(DbPath(oldRel), DbPath(newRel), targetExisted);
        _liveFids.Rename(oldRel, newRel);
    }

    /// <summary>
    /// The fids naming an object whose name an unlink or a rename is about to take: each gets an O_PATH fd of the
    /// object (unless it has it open) and the object's row, shared. Applied only once the operation succeeded.
    /// </summary>
    private sealed class Detachment(List<(ExportFid ExportFid, int Pin)> fids, OrphanRow orphan)
    {
        public void Apply()
        {
            foreach (var (f, pin) in fids)
            {
                f.Orphan = orphan;
                if (pin >= 0) f.Pin = pin;
                f.Detached = true;
                f.Release();
            }
        }

        public void Abandon()
        {
            foreach (var (f, pin) in fids)
            {
                if (pin >= 0) Libc.Close(pin);
                f.Release();
            }
        }
    }

    private Detachment? PrepareDetach(HostDir dir, string name, string rel)
    {
        var naming = _liveFids.Naming(rel);
        if (naming.Count == 0 || Libc.StatxAt(dir.Fd, name, Libc.AT_SYMLINK_NOFOLLOW, StatxMask, out var st) != 0) return null;
        var fids = new List<(ExportFid, int)>(naming.Count);
        foreach (var f in naming)
        {
            if (!f.TryAddRef()) continue; // clunked meanwhile
            int pin = f.Fd >= 0 ? -1 : Libc.OpenAt(dir.Fd, name, Libc.O_PATH | Libc.O_NOFOLLOW | Libc.O_CLOEXEC, 0);
            if (f.Fd < 0 && pin < 0) { f.Release(); continue; }
            fids.Add((f, pin));
        }
        var row = RowFor(rel, st) ?? new FileRow(DbPath(rel), st.Dev(), st.InoSigned(), st.Uid, st.Gid, st.Mode, 0);
        return new Detachment(fids, new OrphanRow(row));
    }

    public void UnlinkAt(ExportFid dirFid, string name, uint flags)
    {
        using var d = DirOf(dirFid);
        RequireMayDelete(dirFid, d, name);
        Unlink(d, name, (flags & Libc.AT_REMOVEDIR) != 0);
    }

    private void Unlink(HostDir d, string name, bool dir)
    {
        var rel = Child(d.Rel, name);
        var removed = PrepareDetach(d, name, rel);
        if (Libc.UnlinkAt(d.Fd, name, dir ? Libc.AT_REMOVEDIR : 0) != 0)
        {
            int e = Marshal.GetLastPInvokeError();
            removed?.Abandon();
            throw new PosixException(e, dir ? "rmdir" : "unlink", name);
        }
        removed?.Apply();
        var path = DbPath(rel);
        if (dir) _store.DeleteTree(path); else _store.DeletePath(path);
    }

    public void Remove(ExportFid fid)
    {
        if (fid.Path.Length == 0) throw new NinePException(Errno.EBUSY, "remove the export root");
        using var at = Locate(fid);
        RequireMayDelete(fid, at.Dir, at.Name);
        Unlink(at.Dir, at.Name, IsDir(Stat(at)));
    }

    public string ReadLink(ExportFid fid)
    {
        var rel = fid.Path;
        if (rel.Length == 0) throw new NinePException(Errno.EINVAL, "not a symlink");
        using var at = Locate(fid);
        var buf = new byte[4096];
        fixed (byte* p = buf)
        {
            nint n = Libc.ReadlinkAt(at.DirFd, at.Name, p, (nuint)buf.Length);
            if (n < 0) throw PosixException.Last("readlink", rel);
            return Encoding.UTF8.GetString(buf, 0, (int)n);
        }
    }

    public FsStats StatFs(ExportFid fid)
    {
        if (Libc.Fstatfs(_rootFd, out var s) != 0) throw PosixException.Last("statfs");
        return new FsStats((uint)s.Type, (uint)s.Bsize, s.Blocks, s.Bfree, s.Bavail, s.Files, s.Ffree, s.Fsid, (uint)s.Namelen);
    }

    /// <summary>Locks are the board's business (the kernel keeps them per mount): every request succeeds.</summary>
    public byte Lock(ExportFid fid, in LockRange range, uint flags) => LockValues.Success;

    public LockRange GetLock(ExportFid fid, in LockRange range) => range with { Type = LockValues.Unlock };

    /// <summary>Reads file data into dest by pread; returns the byte count.</summary>
    public int Read(ExportFid fid, ulong offset, Span<byte> dest)
    {
        int fd = fid.Fd;
        if (fd < 0) throw new NinePException(Errno.EBADF, "fid not open");
        if (offset > long.MaxValue) throw new NinePException(Errno.EINVAL, "offset");
        fixed (byte* p = dest)
        {
            int total = 0;
            while (total < dest.Length)
            {
                nint r = Libc.Pread(fd, p + total, (nuint)(dest.Length - total), (long)offset + total);
                if (r < 0)
                {
                    int e = Marshal.GetLastPInvokeError();
                    if (e == Errno.EINTR) continue;
                    if (e == Errno.EAGAIN && total > 0) break;
                    throw new PosixException(e, "read", fid.Path);
                }
                if (r == 0) break;
                total += (int)r;
            }
            return total;
        }
    }

    public uint Write(ExportFid fid, ulong offset, ReadOnlySpan<byte> data)
    {
        int fd = fid.Fd;
        if (fd < 0 || !fid.Writable) throw new NinePException(Errno.EBADF, "fid not open for writing");
        if (offset > long.MaxValue) throw new NinePException(Errno.EINVAL, "offset");
        fixed (byte* p = data)
        {
            int total = 0;
            while (total < data.Length)
            {
                nint r = Libc.Pwrite(fd, p + total, (nuint)(data.Length - total), (long)offset + total);
                if (r < 0)
                {
                    int e = Marshal.GetLastPInvokeError();
                    if (e == Errno.EINTR) continue;
                    if (total > 0) break;
                    throw new PosixException(e, "write", fid.Path);
                }
                total += (int)r;
            }
            return (uint)total;
        }
    }

    public void Fsync(ExportFid fid, bool dataOnly)
    {
        int fd = fid.Fd;
        if (fd < 0) return;
        if ((dataOnly ? Libc.Fdatasync(fd) : Libc.Fsync(fd)) != 0) throw PosixException.Last("fsync", fid.Path);
    }

    /// <summary>The directory's entries with '.' and '..', typed by files.db where its row describes them.</summary>
    public List<DirEntry> ReadDir(ExportFid fid) => Snapshot(fid);

    private List<DirEntry> Snapshot(ExportFid fid)
    {
        var rel = fid.Path;
        int fd = OpenFid(fid, Libc.O_RDONLY | Libc.O_DIRECTORY);
        using var dir = HostDirectory.FromFd(fd);
        var self = StatFd(fd);
        Statx parent;
        if (rel.Length == 0) parent = self;
        else
            using (var at = Locate(fid))
                parent = StatFd(at.DirFd);
        var entries = dir.ReadEntries();
        var result = new List<DirEntry>(entries.Count + 2)
        {
            new(new Qid(QidType.Dir, 0, QidPath(self)), 1, 4, "."),
            new(new Qid(QidType.Dir, 0, QidPath(parent)), 2, 4, ".."),
        };
        var dev = self.Dev();
        foreach (var e in entries)
        {
            var childRel = Child(rel, e.Name);
            uint hostType = (uint)e.Type << 12;
            var row = _store.Get(DbPath(childRel));
            uint type = hostType;
            if (row != null)
            {
                uint dbType = row.Mode & Libc.S_IFMT;
                if (dbType == hostType || (hostType == Libc.S_IFREG && dbType is Libc.S_IFCHR or Libc.S_IFBLK or Libc.S_IFSOCK) || e.Type == 0)
                    type = dbType;
            }
            ulong qpath = dev == _rootDev ? e.Ino : e.Ino ^ ((ulong)dev << 44);
            result.Add(new DirEntry(new Qid(QidTypeOf(type), 0, qpath), (ulong)result.Count + 1, (byte)(type >> 12), e.Name));
        }
        return result;
    }

    // ---------------- xattrs (kept in the DB, never on the host) ----------------

    public byte[] XattrWalk(ExportFid fid, string name, out ExportFid attrFid)
    {
        var value = XattrGet(fid, name);
        attrFid = Track(new ExportFid(fid.Path, fid.Uid));
        return value;
    }

    private byte[] XattrGet(ExportFid fid, string name)
    {
        var st = StatObject(fid, out bool fromFd);
        var row = ObjectRow(fid, st, fromFd);
        if (name.Length == 0)
        {
            if (row is null) return [];
            var list = new MemoryStream();
            foreach (var n in _store.ListXattrs(row)) { list.Write(Encoding.UTF8.GetBytes(n)); list.WriteByte(0); }
            return list.ToArray();
        }
        return (row is null ? null : _store.GetXattr(row, name)) ?? throw new NinePException(Errno.ENODATA, "no such xattr");
    }

    public void XattrCreate(ExportFid fid, string name, ulong size, uint flags)
    {
        if (fid.Uid != 0 && !name.StartsWith("user.", StringComparison.Ordinal))
            throw new NinePException(Errno.EPERM, "only root sets trusted., security. and system. xattrs");
        StatFid(fid);
    }

    /// <summary>At clunk: the bytes written must match attr_size; an empty value with no data removes the xattr.</summary>
    public void XattrSet(ExportFid fid, string name, byte[] value, uint flags)
    {
        var rel = fid.Path;
        var st = StatFid(fid);
        var row = EnsureRow(rel, st);
        bool exists = _store.GetXattr(row, name) != null;
        if ((flags & Libc.XATTR_CREATE) != 0 && exists) throw new NinePException(Errno.EEXIST, "xattr exists");
        if ((flags & Libc.XATTR_REPLACE) != 0 && !exists) throw new NinePException(Errno.ENODATA, "no such xattr");
        if (value.Length == 0 && (flags & Libc.XATTR_CREATE) == 0)
        {
            // v9fs removexattr = xattrcreate with size 0 (and XATTR_REPLACE from the VFS)
            if (!_store.RemoveXattr(row, name) && (flags & Libc.XATTR_REPLACE) != 0) throw new NinePException(Errno.ENODATA, "no such xattr");
            return;
        }
        _store.SetXattr(row, name, value);
    }

    public void Dispose() => Libc.Close(_rootFd);
}
