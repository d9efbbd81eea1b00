using RootfsExport.NineP.Protocol;
using RootfsExport.NineP.Server;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;

namespace RootfsExport.ExportServing;

/// <summary>The export as 9P sees it: Tattach and Twalk.</summary>
public sealed unsafe partial class ExportFileSystem
{
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
        long clock = ChangeClock.Now;
        var qids = WalkNames(fid, names, out var rel, out var holder, out var st);
        walked = null;
        if (rel is null) return qids;
        walked = new ExportFid(rel, fid.Uid);
        if (holder != null) walked.AdoptParent(holder);
        Track(walked);
        if (names.Count > 0) RecentWalk.Remember(walked, st, clock);
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

    private List<Qid> WalkNames(ExportFid fid, IReadOnlyList<string> names, out string? newRel, out HostDir? holder, out Statx st)
    {
        newRel = null;
        st = default;
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
            st = w.St;
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
}
