using RootfsExport.ExportTree;
using RootfsExport.PseudoDb;

namespace RootfsExport.FeedWatcher;

/// <summary>
/// rpm payloads name owners (user/group names); the target's etc/passwd and etc/group turn them into ids.
/// Unknown names map to root and are collected for the output (rpm on the target would do the same).
/// </summary>
public sealed class OwnerNames
{
    private readonly Dictionary<string, uint> _users;
    private readonly Dictionary<string, uint> _groups;
    public SortedSet<string> Unknown { get; } = new(StringComparer.Ordinal);

    private OwnerNames(Dictionary<string, uint> users, Dictionary<string, uint> groups)
    {
        _users = users;
        _groups = groups;
    }

    /// <summary>etc/passwd and etc/group of the export, read confined to it (a symlink there is followed within the export only).</summary>
    public static OwnerNames FromExport(TargetTree tree) => new(Read(tree, "etc/passwd"), Read(tree, "etc/group"));

    private static Dictionary<string, uint> Read(TargetTree tree, string file)
    {
        var map = new Dictionary<string, uint>(StringComparer.Ordinal) { ["root"] = 0 };
        var text = tree.ReadAllText(tree.Resolve(file, followLast: true, file));
        if (text is null) return map;
        foreach (var line in text.Split('\n'))
            if (line.Split(':') is [var name, _, var id, ..] && uint.TryParse(id, out var n)) map.TryAdd(name, n);
        return map;
    }

    public (uint Uid, uint Gid) Resolve((string User, string Group) names)
    {
        if (!_users.TryGetValue(names.User, out var uid)) { Unknown.Add($"user '{names.User}'"); uid = 0; }
        if (!_groups.TryGetValue(names.Group, out var gid)) { Unknown.Add($"group '{names.Group}'"); gid = 0; }
        return (uid, gid);
    }
}

/// <summary>
/// PTXdist's platform-*/state/&lt;pkg&gt;.perms: authoritative owners and modes of a package's files, and its
/// device nodes (which the ipk does not carry). Applied after the package's data.
/// </summary>
public sealed class PermsFile
{
    public required string Path { get; init; }
    public required IReadOnlyList<PermsRecord> Records { get; init; }

    /// <summary>The .perms for a PTXdist package: state/&lt;pkg&gt;.perms, or &lt;pkg&gt;.perms next to the ipk (package repos).</summary>
    public static PermsFile? For(string platformDir, string packagePath, string package)
    {
        foreach (var candidate in new[] { System.IO.Path.Combine(platformDir, "state", package + ".perms"), System.IO.Path.Combine(System.IO.Path.GetDirectoryName(packagePath)!, package + ".perms") })
        {
            if (!File.Exists(candidate)) continue;
            using var reader = new StreamReader(candidate);
            return new PermsFile { Path = candidate, Records = PtxdistPerms.Parse(reader, System.IO.Path.GetFileName(candidate)) };
        }
        return null;
    }

    public void Apply(ExportWriter writer, string where)
    {
        foreach (var rec in Records)
        {
            var path = ExportPath.ParseTargetAbsolute(rec.Path, $"{System.IO.Path.GetFileName(Path)}: path");
            if (rec.Kind == PermsKind.Node)
            {
                var kind = rec.NodeType switch { 'c' => EntryKind.CharDevice, 'b' => EntryKind.BlockDevice, _ => EntryKind.Fifo };
                writer.Special(path, kind, new EntryMeta(rec.Uid, rec.Gid, rec.Mode, kind == EntryKind.Fifo ? 0 : Posix.Native.Libc.MakeDev(rec.Major, rec.Minor)));
                continue;
            }
            if (!writer.TryStat(path, out _)) throw new UserFacingException($"{where}: {System.IO.Path.GetFileName(Path)} lists {rec.Path}, which the package does not contain");
            writer.SetOwnership(path, rec.Uid, rec.Gid, rec.Mode & 0xfff);
        }
    }

    /// <summary>Target paths of the device nodes (they belong to the package's file list).</summary>
    public IEnumerable<string> Nodes => Records.Where(r => r.Kind == PermsKind.Node).Select(r => r.Path);
}
