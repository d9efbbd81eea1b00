using System.Text;
using System.Text.RegularExpressions;

namespace RootfsExport.BootSpec;

/// <summary>A Boot Loader Specification Type #1 entry (one <c>loader/entries/*.conf</c> file).</summary>
public sealed record BootEntry
{
    public string? Title { get; init; }
    public string? Version { get; init; }
    public string? MachineId { get; init; }
    public string? SortKey { get; init; }
    public string? Linux { get; init; }
    public string? Efi { get; init; }
    /// <summary>Every initrd line in order (the spec uses all; barebox only the last, so we write one).</summary>
    public IReadOnlyList<string> Initrd { get; init; } = [];
    /// <summary>All options lines joined by a space, as the spec says.</summary>
    public string? Options { get; init; }
    public string? Devicetree { get; init; }
    public string? DevicetreeOverlay { get; init; }
    public string? Architecture { get; init; }
    /// <summary>barebox-only <c>linux-appendroot</c>.</summary>
    public bool? LinuxAppendRoot { get; init; }
    /// <summary>Keys this reader does not model, in file order.</summary>
    public IReadOnlyList<KeyValuePair<string, string>> Other { get; init; } = [];
    /// <summary>The file name (with .conf) the entry was read from or will be written to.</summary>
    public string FileName { get; init; } = "";
    /// <summary>True when the file carries our marker comment, i.e. rootfs-export may overwrite or remove it.</summary>
    public bool WrittenByUs { get; init; }

    /// <summary>Boot counting parsed from the file name: tries left / done, or null without counting.</summary>
    public (int Left, int Done)? BootCounter => BlsFileName.Counter(FileName);

    /// <summary>An entry whose tries-left counter reached 0.</summary>
    public bool IsBad => BootCounter is { Left: 0 };
}

/// <summary>Reads and writes entry files as the spec describes them.</summary>
public static class BlsEntryFormat
{
    /// <summary>First line of every entry we write; only files starting with it are ever replaced or removed.</summary>
    public const string Marker = "# written by rootfs-export";

    /// <summary>
    /// Parses an entry: '#' lines are comments, a line is "key, one or more blanks, value"; options lines are
    /// concatenated, initrd lines collected, for every other key the last line wins (as barebox does).
    /// </summary>
    public static BootEntry Parse(string text, string fileName)
    {
        var e = new BootEntry { FileName = fileName, WrittenByUs = IsOurs(text) };
        var initrd = new List<string>();
        var options = new List<string>();
        var other = new List<KeyValuePair<string, string>>();
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r', ' ', '\t');
            var trimmed = line.TrimStart(' ', '\t');
            if (trimmed.Length == 0 || trimmed[0] == '#') continue;
            int sep = trimmed.IndexOfAny([' ', '\t']);
            string key = sep < 0 ? trimmed : trimmed[..sep];
            string value = sep < 0 ? "" : trimmed[sep..].TrimStart(' ', '\t');
            switch (key)
            {
                case "title": e = e with { Title = value }; break;
                case "version": e = e with { Version = value }; break;
                case "machine-id": e = e with { MachineId = value }; break;
                case "sort-key": e = e with { SortKey = value }; break;
                case "linux": e = e with { Linux = value }; break;
                case "efi": e = e with { Efi = value }; break;
                case "initrd": initrd.Add(value); break;
                case "options": if (value.Length > 0) options.Add(value); break;
                case "devicetree": e = e with { Devicetree = value }; break;
                case "devicetree-overlay": e = e with { DevicetreeOverlay = value }; break;
                case "architecture": e = e with { Architecture = value }; break;
                case "linux-appendroot": e = e with { LinuxAppendRoot = value == "true" }; break;
                default: other.Add(new(key, value)); break;
            }
        }
        return e with { Initrd = initrd, Options = options.Count > 0 ? string.Join(' ', options) : null, Other = other };
    }

    public static bool IsOurs(string text) => text.StartsWith(Marker, StringComparison.Ordinal);

    /// <summary>The entry as we write it: marker comment, then one key per line, values aligned.</summary>
    public static string Format(BootEntry e)
    {
        var s = new StringBuilder();
        s.Append(Marker).Append("; rewritten by 'rootfs-export bootspec' and 'update', edits here are lost\n");
        void Line(string key, string? value)
        {
            if (value is null) return;
            if (value.Contains('\n') || value.Contains('\r')) throw new BootSpecException(key, "contains a line break");
            s.Append(key.PadRight(10)).Append(' ').Append(value).Append('\n');
        }
        Line("title", e.Title);
        Line("version", e.Version);
        Line("machine-id", e.MachineId);
        Line("sort-key", e.SortKey);
        Line("linux", e.Linux);
        Line("efi", e.Efi);
        foreach (var i in e.Initrd) Line("initrd", i);
        Line("devicetree", e.Devicetree);
        Line("devicetree-overlay", e.DevicetreeOverlay);
        Line("architecture", e.Architecture);
        if (e.LinuxAppendRoot is bool ar) Line("linux-appendroot", ar ? "true" : "false");
        foreach (var (k, v) in e.Other) Line(k, v);
        Line("options", e.Options);
        return s.ToString();
    }

    /// <summary>Reads every <c>*.conf</c> in an entries directory (symlinks and other non-files are skipped).</summary>
    public static List<BootEntry> ReadDirectory(string entriesDir)
    {
        var list = new List<BootEntry>();
        if (!Directory.Exists(entriesDir)) return list;
        foreach (var path in Directory.EnumerateFiles(entriesDir, "*.conf"))
        {
            var fi = new FileInfo(path);
            if (fi.LinkTarget is not null) continue;
            list.Add(Parse(File.ReadAllText(path), fi.Name));
        }
        return list;
    }

    /// <summary>Sorts as the spec says (see <see cref="BootEntryOrder"/>).</summary>
    public static List<BootEntry> Sorted(IEnumerable<BootEntry> entries)
    {
        var l = entries.ToList();
        l.Sort(BootEntryOrder.Instance);
        return l;
    }
}

/// <summary>
/// The spec's menu order: bad entries last; with sort-key on both: sort-key, then machine-id ascending
/// (strcmp, an empty value lower), then version descending; an entry with sort-key before one without;
/// finally the file name without ".conf", descending version order.
/// </summary>
public sealed class BootEntryOrder : IComparer<BootEntry>
{
    public static readonly BootEntryOrder Instance = new();

    public int Compare(BootEntry? x, BootEntry? y)
    {
        if (ReferenceEquals(x, y)) return 0;
        if (x is null) return 1;
        if (y is null) return -1;
        if (x.IsBad != y.IsBad) return x.IsBad ? 1 : -1;
        bool kx = !string.IsNullOrEmpty(x.SortKey), ky = !string.IsNullOrEmpty(y.SortKey);
        if (kx && ky)
        {
            int c = StrCmp(x.SortKey, y.SortKey);
            if (c != 0) return c;
            c = StrCmp(x.MachineId, y.MachineId);
            if (c != 0) return c;
            c = -UapiVersion.Compare(x.Version, y.Version);
            if (c != 0) return c;
        }
        else if (kx != ky) return kx ? -1 : 1;
        return -UapiVersion.Compare(Stem(x.FileName), Stem(y.FileName));
    }

    private static string Stem(string name) => name.EndsWith(".conf", StringComparison.Ordinal) ? name[..^5] : name;

    /// <summary>strcmp on UTF-8; an unset or empty string compares lower.</summary>
    private static int StrCmp(string? a, string? b)
    {
        bool ea = string.IsNullOrEmpty(a), eb = string.IsNullOrEmpty(b);
        if (ea || eb) return ea == eb ? 0 : ea ? -1 : 1;
        return Math.Sign(Encoding.UTF8.GetBytes(a!).AsSpan().SequenceCompareTo(Encoding.UTF8.GetBytes(b!)));
    }
}

/// <summary>Entry file names: the spec's character set and boot counting suffix.</summary>
public static partial class BlsFileName
{
    /// <summary>
    /// <c>rootfs-export-&lt;token&gt;-&lt;version&gt;.conf</c> with every character outside
    /// <c>A-Z a-z 0-9 + - _ .</c> replaced by '_', a trailing "+N" / "+N-M" (which would read as a boot
    /// counter) defused, and the whole name kept within 255 characters.
    /// </summary>
    public static string For(string token, string version)
    {
        var stem = Sanitize($"rootfs-export-{token}-{version}");
        var m = CounterSuffix().Match(stem);
        if (m.Success) stem = stem[..m.Index] + "_" + stem[(m.Index + 1)..];
        if (stem.Length > 250) stem = stem[..250];
        return stem + ".conf";
    }

    public static string Sanitize(string s)
    {
        var sb = new StringBuilder(s.Length);
        foreach (var c in s) sb.Append(IsAllowed(c) ? c : '_');
        return sb.ToString();
    }

    public static bool IsAllowed(char c) => char.IsAsciiLetterOrDigit(c) || c is '+' or '-' or '_' or '.';

    public static bool IsValid(string name) => name.Length is >= 1 and <= 255 && name.All(IsAllowed);

    /// <summary>The entry's name without boot counting and ".conf", so a renamed (counted) file still matches.</summary>
    public static string Identity(string fileName)
    {
        var stem = fileName.EndsWith(".conf", StringComparison.Ordinal) ? fileName[..^5] : fileName;
        var m = CounterSuffix().Match(stem);
        return m.Success ? stem[..m.Index] : stem;
    }

    public static (int Left, int Done)? Counter(string fileName)
    {
        var stem = fileName.EndsWith(".conf", StringComparison.Ordinal) ? fileName[..^5] : fileName;
        var m = CounterSuffix().Match(stem);
        if (!m.Success) return null;
        int left = int.TryParse(m.Groups[1].Value, out var l) ? l : int.MaxValue;
        int done = m.Groups[2].Success && int.TryParse(m.Groups[2].Value, out var d) ? d : 0;
        return (left, done);
    }

    [GeneratedRegex(@"\+([0-9]+)(?:-([0-9]+))?$")]
    private static partial Regex CounterSuffix();
}
