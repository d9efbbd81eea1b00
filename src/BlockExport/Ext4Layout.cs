using System.Globalization;
using System.Text.RegularExpressions;

namespace RootfsExport.BlockExport;

/// <summary>Reading e2fsprogs' own reports of an image (dumpe2fs), and speaking to debugfs.</summary>
public static partial class Ext4Layout
{
    /// <summary>
    /// The inodes in use: the root (2), lost+found (11) and every used inode from 12 on, from dumpe2fs's
    /// per-group "Free inodes:" ranges (what is not free in a group is in use).
    /// </summary>
    public static IEnumerable<long> UsedInodes(string image)
    {
        var text = HostPrograms.Run(HostPrograms.Require("dumpe2fs", "e2fsprogs"), [image]);
        long perGroup = long.Parse(PerGroup().Match(text).Groups[1].Value, CultureInfo.InvariantCulture);
        long group = -1;
        foreach (var line in text.Split('\n'))
        {
            if (GroupLine().Match(line) is { Success: true } g) { group = long.Parse(g.Groups[1].Value, CultureInfo.InvariantCulture); continue; }
            if (group < 0 || !line.StartsWith("  Free inodes: ", StringComparison.Ordinal)) continue;
            var free = new List<(long From, long To)>();
            foreach (var range in line["  Free inodes: ".Length..].Split(", ", StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var ab = range.Split('-');
                free.Add((long.Parse(ab[0], CultureInfo.InvariantCulture), long.Parse(ab[^1], CultureInfo.InvariantCulture)));
            }
            for (long ino = group * perGroup + 1; ino <= (group + 1) * perGroup; ino++)
                if ((ino == 2 || ino >= 11) && !free.Any(f => ino >= f.From && ino <= f.To)) yield return ino;
        }
    }

    /// <summary>A path as one debugfs argument: in double quotes, a quote doubled (lib/ss's parser).</summary>
    public static string Quote(string path)
    {
        if (path.Contains('\n') || path.Contains('\r'))
            throw new UserFacingException($"'{path.Replace("\n", "\\n")}': a file name with a line break cannot be given to debugfs; rename it or set SOURCE_DATE_EPOCH no older than its mtime");
        return "\"" + path.Replace("\"", "\"\"") + "\"";
    }

    /// <summary>debugfs exits 0 when a command of its -f file fails; its complaints on stderr are the failures.</summary>
    public static void ThrowOnDebugfsErrors(int exitCode, string stderr)
    {
        var complaints = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Where(l => !l.StartsWith("debugfs ", StringComparison.Ordinal)).ToList();
        if (exitCode != 0 || complaints.Count > 0)
            throw new UserFacingException($"debugfs failed (exit {exitCode}): {string.Join(" | ", complaints.Take(4))}");
    }

    [GeneratedRegex(@"^Inodes per group:\s+(\d+)", RegexOptions.Multiline)]
    private static partial Regex PerGroup();

    [GeneratedRegex(@"^Group (\d+): ")]
    private static partial Regex GroupLine();
}
