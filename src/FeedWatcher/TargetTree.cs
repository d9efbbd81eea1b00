using Microsoft.Win32.SafeHandles;
using RootfsExport.ExportTree;
using RootfsExport.Posix;
using RootfsExport.Posix.Native;

namespace RootfsExport.FeedWatcher;

/// <summary>
/// The export as the target sees it, read only through *at() calls below the export's directory fd with
/// O_NOFOLLOW, one component at a time. A board is root on its side and may plant any symlink
/// (`etc -> /`, `etc/foo.conf -> /home/user/.ssh/id_rsa`), so no read here ever goes through the host's
/// resolution of a path. Where the target's own package manager would follow a symlink (merged /usr:
/// `bin -> usr/bin`), <see cref="Resolve"/> follows it the way the board's kernel would, with the export as
/// its root: absolute targets start at the export root and `..` stops there.
/// </summary>
public sealed class TargetTree : IDisposable
{
    private const int MaxSymlinkHops = 40; // the kernel's limit
    private readonly HostDirectory _root;
    private readonly Dictionary<string, string?> _links = new(StringComparer.Ordinal);

    public string Export { get; }

    private TargetTree(string export, HostDirectory root)
    {
        Export = export;
        _root = root;
    }

    /// <summary>The export a whole update holds: its root fd, already opened by the handle, is shared (a duplicate).</summary>
    public static TargetTree Open(ExportHandle export) => new(export.Path, export.Root.Duplicate());

    /// <summary>
    /// The real location, inside the export, of a target path (absolute or export-relative): symlinks in its
    /// directories are followed within the export, the last component only when <paramref name="followLast"/>.
    /// </summary>
    public ExportPath Resolve(string targetPath, bool followLast, string what = "path")
    {
        var pending = new LinkedList<string>(targetPath.Split('/', StringSplitOptions.RemoveEmptyEntries));
        var resolved = new List<string>();
        int hops = 0;
        while (pending.First is { } node)
        {
            var c = node.Value;
            pending.RemoveFirst();
            if (c == ".") continue;
            if (c == "..") { if (resolved.Count > 0) resolved.RemoveAt(resolved.Count - 1); continue; }
            var candidate = string.Join('/', resolved.Append(c));
            if ((pending.Count > 0 || followLast) && LinkTarget(candidate) is { } target)
            {
                if (++hops > MaxSymlinkHops)
                    throw new UserFacingException($"{what} '{targetPath}': more than {MaxSymlinkHops} symlinks in the export (a loop?)");
                if (target.StartsWith('/')) resolved.Clear();
                foreach (var part in target.Split('/', StringSplitOptions.RemoveEmptyEntries).Reverse()) pending.AddFirst(part);
                continue;
            }
            resolved.Add(c);
        }
        return resolved.Count == 0 ? ExportPath.Root : ExportPath.Parse(string.Join('/', resolved), what);
    }

    /// <summary>Forget what was learnt about symlinks (after the export changed under a path).</summary>
    public void Forget() => _links.Clear();

    private string? LinkTarget(string relative)
    {
        if (_links.TryGetValue(relative, out var cached)) return cached;
        var path = ExportPath.Parse(relative);
        string? target = null;
        using (var parent = OpenDirectory(path.Parent))
            if (parent != null && parent.TryStat(path.Name, out var st) && StMode.IsSymlink(st.Mode)) target = parent.ReadLink(path.Name);
        _links[relative] = target;
        return target;
    }

    /// <summary>A directory of the export, walked without following anything; null when it is not a directory there.</summary>
    public HostDirectory? OpenDirectory(ExportPath path)
    {
        var dir = _root.Duplicate();
        foreach (var component in path.Components)
        {
            try
            {
                var next = dir.OpenDirectory(component);
                dir.Dispose();
                dir = next;
            }
            catch (PosixException e) when (e.Errno is Errno.ENOENT or Errno.ENOTDIR or Errno.ELOOP or Errno.EACCES)
            {
                dir.Dispose();
                return null;
            }
        }
        return dir;
    }

    public bool TryStat(ExportPath path, out Statx st)
    {
        st = default;
        if (path.IsRoot) { st = _root.StatSelf(); return true; }
        using var parent = OpenDirectory(path.Parent);
        return parent != null && parent.TryStat(path.Name, out st);
    }

    public bool IsRegularFile(ExportPath path) => TryStat(path, out var st) && StMode.IsRegular(st.Mode);

    public bool IsDirectory(ExportPath path) => TryStat(path, out var st) && StMode.IsDirectory(st.Mode);

    /// <summary>A regular file's content, opened with O_NOFOLLOW; null when there is no regular file at the path.</summary>
    public Stream? OpenRead(ExportPath path)
    {
        if (path.IsRoot) return null;
        using var parent = OpenDirectory(path.Parent);
        if (parent is null || !parent.TryStat(path.Name, out var st) || !StMode.IsRegular(st.Mode)) return null;
        int fd;
        try { fd = parent.OpenFile(path.Name, Libc.O_RDONLY); }
        catch (PosixException e) when (e.Errno is Errno.ENOENT or Errno.ELOOP) { return null; } // replaced meanwhile
        return new FileStream(new SafeFileHandle(fd, ownsHandle: true), FileAccess.Read, bufferSize: 0);
    }

    public byte[]? ReadAllBytes(ExportPath path)
    {
        using var s = OpenRead(path);
        if (s is null) return null;
        var m = new MemoryStream();
        s.CopyTo(m);
        return m.ToArray();
    }

    public string? ReadAllText(ExportPath path) => ReadAllBytes(path) is { } b ? System.Text.Encoding.UTF8.GetString(b) : null;

    /// <summary>Names in a directory of the export (empty when it is not a directory).</summary>
    public List<string> Entries(ExportPath path)
    {
        using var dir = OpenDirectory(path);
        return dir?.ReadEntries().Select(e => e.Name).ToList() ?? [];
    }

    public void Dispose() => _root.Dispose();
}
