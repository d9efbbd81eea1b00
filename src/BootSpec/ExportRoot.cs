namespace RootfsExport.BootSpec;

/// <summary>
/// Looks at an export as if it were "/": symlinks are resolved component by component with absolute
/// targets restarting at the export root and ".." stopping there, so nothing outside the export is ever
/// reached (the export's /boot/Image -> /boot/Image-6.6.1 means the export's file, not the host's).
/// </summary>
public sealed class ExportRoot
{
    private const int MaxLinks = 40; // as the kernel's MAXSYMLINKS

    /// <summary>The export directory on the host, absolute, without a trailing '/'.</summary>
    public string HostPath { get; }

    public ExportRoot(string hostPath)
    {
        var full = Path.GetFullPath(hostPath);
        HostPath = full.Length > 1 ? full.TrimEnd('/') : full;
    }

    /// <summary>Host path of a resolved in-export path ("/boot/Image-6.6.1").</summary>
    public string Host(string resolved) => resolved == "/" ? HostPath : HostPath + resolved;

    /// <summary>
    /// Resolves a path inside the export ("/etc/os-release", "boot/Image") to its symlink-free form
    /// ("/usr/lib/os-release"), or null when it does not exist or loops.
    /// </summary>
    public string? Resolve(string path)
    {
        var done = new List<string>();
        var todo = new LinkedList<string>(Split(path));
        int links = 0;
        while (todo.First is { } node)
        {
            var c = node.Value;
            todo.RemoveFirst();
            if (c is "" or ".") continue;
            if (c == "..")
            {
                if (done.Count > 0) done.RemoveAt(done.Count - 1);
                continue;
            }
            var host = HostPath + "/" + string.Join('/', done.Append(c));
            var info = new FileInfo(host);
            string? target;
            try { target = info.LinkTarget; }
            catch (IOException) { return null; }
            catch (UnauthorizedAccessException) { return null; }
            if (target is not null)
            {
                if (++links > MaxLinks) return null;
                if (target.StartsWith('/')) done.Clear();
                foreach (var t in Split(target).Reverse()) todo.AddFirst(t);
                continue;
            }
            bool isDir = Directory.Exists(host);
            if (!isDir && !File.Exists(host)) return null;
            if (todo.Count > 0 && todo.Any(t => t is not ("" or ".")) && !isDir) return null;
            done.Add(c);
        }
        return "/" + string.Join('/', done);
    }

    /// <summary>The resolved path if it names a regular file (after resolving links inside the export).</summary>
    public string? ResolveFile(string path)
    {
        var r = Resolve(path);
        return r is not null && File.Exists(Host(r)) ? r : null;
    }

    public string? ResolveDirectory(string path)
    {
        var r = Resolve(path);
        return r is not null && Directory.Exists(Host(r)) ? r : null;
    }

    /// <summary>Names in an in-export directory (resolved first), sorted ordinally; empty when it is missing.</summary>
    public IReadOnlyList<string> List(string dir)
    {
        var r = ResolveDirectory(dir);
        if (r is null) return [];
        try
        {
            var names = Directory.EnumerateFileSystemEntries(Host(r)).Select(Path.GetFileName).OfType<string>().ToList();
            names.Sort(StringComparer.Ordinal);
            return names;
        }
        catch (IOException) { return []; }
        catch (UnauthorizedAccessException) { return []; }
    }

    public string? ReadText(string path, int maxBytes = 1 << 20)
    {
        var r = ResolveFile(path);
        if (r is null) return null;
        try
        {
            using var fs = new FileStream(Host(r), FileMode.Open, FileAccess.Read);
            if (fs.Length > maxBytes) return null;
            using var reader = new StreamReader(fs);
            return reader.ReadToEnd();
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    public static string Join(string dir, string name) => dir.EndsWith('/') ? dir + name : dir + "/" + name;

    private static string[] Split(string p) => p.Split('/');
}
