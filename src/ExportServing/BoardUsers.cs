namespace RootfsExport.ExportServing;

/// <summary>
/// The board's own users and groups, from the export's etc/passwd and etc/group: which groups a uid acts with
/// when the server checks permissions for an access=user attach. 9P carries only the uid, so the groups are
/// those the board's files give the user (its primary group and every group listing it), which is what a
/// login or a daemon's initgroups() gives it there. Re-read when either file changes, checked once a second.
/// </summary>
public sealed class BoardUsers(Func<string, string?> readExportFile)
{
    private readonly object _lock = new();
    private Dictionary<uint, HashSet<uint>> _groups = new();
    private string _source = "";
    private long _checkedAt = -1; // never

    /// <summary>Whether uid acts with gid: its primary group or a supplementary one.</summary>
    public bool InGroup(uint uid, uint gid)
    {
        Refresh();
        lock (_lock) return _groups.TryGetValue(uid, out var g) && g.Contains(gid);
    }

    private void Refresh()
    {
        long now = Environment.TickCount64;
        lock (_lock)
        {
            if (_checkedAt >= 0 && now - _checkedAt < 1000) return;
            _checkedAt = now;
        }
        var passwd = readExportFile("etc/passwd") ?? "";
        var group = readExportFile("etc/group") ?? "";
        var source = passwd + "\0" + group;
        lock (_lock)
        {
            if (source == _source) return;
            _source = source;
            _groups = Parse(passwd, group);
        }
    }

    private static Dictionary<uint, HashSet<uint>> Parse(string passwd, string group)
    {
        var primary = new Dictionary<uint, uint>();
        var uidOf = new Dictionary<string, uint>(StringComparer.Ordinal);
        foreach (var f in Records(passwd))
            if (f.Length >= 4 && uint.TryParse(f[2], out var uid) && uint.TryParse(f[3], out var gid))
            {
                primary.TryAdd(uid, gid);
                uidOf.TryAdd(f[0], uid);
            }
        var groups = primary.ToDictionary(p => p.Key, p => new HashSet<uint> { p.Value });
        foreach (var f in Records(group))
        {
            if (f.Length < 4 || !uint.TryParse(f[2], out var gid)) continue;
            foreach (var member in f[3].Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                if (uidOf.TryGetValue(member, out var uid))
                {
                    if (!groups.TryGetValue(uid, out var set)) groups[uid] = set = new HashSet<uint>();
                    set.Add(gid);
                }
        }
        return groups;
    }

    private static IEnumerable<string[]> Records(string text) =>
        text.Split('\n').Where(l => l.Length > 0 && l[0] != '#').Select(l => l.Split(':'));
}
