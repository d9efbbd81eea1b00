using System.Security.Cryptography;
using RootfsExport.TestSupport;

namespace RootfsExport.FeedWatcher.Tests;

/// <summary>
/// Type, mode, owner, content, link target and xattrs of every path of a tree, one comparable string per path:
/// a tree the real tool made as root (find and getfattr), or our export (files.db for owners, modes and xattrs;
/// the disk for content).
/// </summary>
internal static class TreeSnapshot
{
    public static Dictionary<string, string> OfHost(string root)
    {
        var xattrs = Xattrs(Run.Program("getfattr", "-R", "-P", "-h", "-d", "-m-", "-e", "hex", "--absolute-names", root).Stdout, root + "/");
        return Lines(Run.Program("find", root, "-mindepth", "1", "-printf", "%P\t%y\t%m\t%U:%G\n").ShouldSucceed().Stdout)
            .ToDictionary(f => f[0], f => Describe(root, f[0], f[1][0], f[2], f[3], xattrs.GetValueOrDefault(f[0], "")));
    }

    /// <summary>Owners, modes and xattrs from files.db (the disk holds placeholders), content from the disk.</summary>
    public static Dictionary<string, string> OfExport(string export)
    {
        var db = export + ".pseudo_state/files.db";
        var rows = Run.Program("sqlite3", "-separator", "\t", db, "select path, mode, uid, gid, dev, ino from files").ShouldSucceed().Stdout;
        var attrs = Lines(Run.Program("sqlite3", "-separator", "\t", db, "select dev, ino, name, hex(value) from xattrs order by name").ShouldSucceed().Stdout)
            .GroupBy(x => $"{x[0]}:{x[1]}").ToDictionary(g => g.Key, g => string.Join(' ', g.Select(x => $"{x[2]}=0x{x[3].ToLowerInvariant()}")));
        return Lines(rows).Where(f => f[0].StartsWith(export + "/", StringComparison.Ordinal)).ToDictionary(f => f[0][(export.Length + 1)..], f =>
        {
            var mode = Convert.ToUInt32(f[1]);
            var type = (mode & 0xf000) switch { 0x4000 => 'd', 0xa000 => 'l', 0x8000 => 'f', 0x2000 => 'c', 0x6000 => 'b', 0x1000 => 'p', _ => 's' };
            return Describe(export, f[0][(export.Length + 1)..], type, Convert.ToString(mode & 0xfff, 8), $"{f[2]}:{f[3]}", attrs.GetValueOrDefault($"{f[4]}:{f[5]}", ""));
        });
    }

    private static string Describe(string root, string rel, char type, string mode, string owner, string xattrs) =>
        $"{type} {mode} {owner} " + type switch
        {
            'f' => Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(Path.Combine(root, rel))))[..16],
            'l' => "-> " + new FileInfo(Path.Combine(root, rel)).LinkTarget,
            _ => "",
        } + (xattrs.Length > 0 ? " " + xattrs : "");

    /// <summary>getfattr -d -e hex output: "# file: PATH" then "name=0x..." lines, blank between files.</summary>
    public static Dictionary<string, string> Xattrs(string dump, string prefix)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var block in dump.Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            var lines = block.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            if (lines.Length < 2 || !lines[0].StartsWith("# file: " + prefix, StringComparison.Ordinal)) continue;
            result[lines[0][("# file: " + prefix).Length..]] = string.Join(' ', lines.Skip(1).Order(StringComparer.Ordinal));
        }
        return result;
    }

    private static IEnumerable<string[]> Lines(string text) => text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => l.Split('\t'));

    /// <summary>Paths whose description differs, "path: TOOL theirs, ours ours", ignored ones left out.</summary>
    public static List<string> Differences(Dictionary<string, string> theirs, Dictionary<string, string> ours, Func<string, bool> ignored, string tool) =>
        theirs.Keys.Union(ours.Keys).Order(StringComparer.Ordinal)
            .Where(p => !ignored(p) && theirs.GetValueOrDefault(p) != ours.GetValueOrDefault(p))
            .Select(p => $"{p}: {tool} {theirs.GetValueOrDefault(p)}, ours {ours.GetValueOrDefault(p)}").ToList();
}
