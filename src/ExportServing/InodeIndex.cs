using System.Runtime.InteropServices;

namespace RootfsExport.ExportServing;

/// <summary>
/// Every path of an inode, in the order they were recorded. Nearly every inode has one name: that path is the
/// entry's value itself, and only an inode with hard links gets a list (a list per row cost 100,000 rows 6 MB).
/// Not thread-safe: the owner locks.
/// </summary>
internal sealed class InodeIndex
{
    // the one path (string) or, for hard links, List<string>
    private readonly Dictionary<(long Dev, long Ino), object> _paths = new();

    public void Clear() => _paths.Clear();

    public void Add(long dev, long ino, string path)
    {
        ref var slot = ref CollectionsMarshal.GetValueRefOrAddDefault(_paths, (dev, ino), out bool exists);
        if (!exists) slot = path;
        else if (slot is List<string> links) links.Add(path);
        else slot = new List<string>(2) { (string)slot!, path };
    }

    public void Remove(long dev, long ino, string path)
    {
        if (!_paths.TryGetValue((dev, ino), out var value)) return;
        if (value is List<string> links)
        {
            links.Remove(path);
            if (links.Count == 1) _paths[(dev, ino)] = links[0];
            else if (links.Count == 0) _paths.Remove((dev, ino));
        }
        else if ((string)value == path) _paths.Remove((dev, ino));
    }

    /// <summary>The inode's first recorded path, or null.</summary>
    public string? First(long dev, long ino) =>
        !_paths.TryGetValue((dev, ino), out var value) ? null
        : value as string ?? (value is List<string> { Count: > 0 } links ? links[0] : null);

    /// <summary>Every path of the inode (a copy).</summary>
    public List<string> All(long dev, long ino) =>
        !_paths.TryGetValue((dev, ino), out var value) ? []
        : value is List<string> links ? [.. links] : [(string)value];
}
