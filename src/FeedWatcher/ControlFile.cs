using System.Text;

namespace RootfsExport.FeedWatcher;

/// <summary>
/// One RFC 822-style stanza of a control or status file: fields in their original order, continuation
/// lines (starting with a space) kept verbatim, so what we write back is what opkg/dpkg wrote.
/// </summary>
public sealed class ControlStanza
{
    private readonly List<KeyValuePair<string, string>> _fields = new();
    /// <summary>The stanza's text as read, kept while no field changes: what dpkg/opkg wrote is written back byte for byte.</summary>
    private string? _raw;

    public IReadOnlyList<KeyValuePair<string, string>> Fields => _fields;

    public string? this[string name]
    {
        get => _fields.FirstOrDefault(f => f.Key.Equals(name, StringComparison.OrdinalIgnoreCase)).Value;
        set
        {
            _raw = null;
            int i = _fields.FindIndex(f => f.Key.Equals(name, StringComparison.OrdinalIgnoreCase));
            if (value is null) { if (i >= 0) _fields.RemoveAt(i); }
            else if (i >= 0) _fields[i] = new(_fields[i].Key, value);
            else _fields.Add(new(name, value));
        }
    }

    public string Package => this["Package"] ?? "";
    public string Version => this["Version"] ?? "";
    public string Architecture => this["Architecture"] ?? "";

    /// <summary>Parses all stanzas of a file (blank lines separate them).</summary>
    public static List<ControlStanza> ParseAll(string text, string source)
    {
        var result = new List<ControlStanza>();
        ControlStanza? current = null;
        int lineNo = 0;
        foreach (var raw in text.Replace("\r\n", "\n").Split('\n'))
        {
            lineNo++;
            if (raw.Trim().Length == 0) { current = null; continue; }
            if (current != null) current._raw += raw + "\n";
            if (raw[0] is ' ' or '\t')
            {
                if (current is null || current._fields.Count == 0) throw new UserFacingException($"{source}:{lineNo}: continuation line without a field");
                var last = current._fields[^1];
                current._fields[^1] = new(last.Key, last.Value + "\n" + raw);
                continue;
            }
            int colon = raw.IndexOf(':');
            if (colon <= 0) throw new UserFacingException($"{source}:{lineNo}: expected 'Field: value', got '{raw}'");
            if (current is null) { current = new ControlStanza { _raw = raw + "\n" }; result.Add(current); }
            current._fields.Add(new(raw[..colon], raw[(colon + 1)..].Trim()));
        }
        return result;
    }

    public static ControlStanza Parse(string text, string source) =>
        ParseAll(text, source).FirstOrDefault() ?? throw new UserFacingException($"{source}: empty control file");

    public override string ToString()
    {
        if (_raw != null) return _raw;
        var sb = new StringBuilder();
        foreach (var (k, v) in _fields) sb.Append(k).Append(v.StartsWith('\n') ? ":" : ": ").Append(v).Append('\n');
        return sb.ToString();
    }

    /// <summary>Depends-style list: "a (>= 1), b | c" → groups of alternatives.</summary>
    public IReadOnlyList<IReadOnlyList<Relation>> Relations(string field) =>
        (this[field] ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(group => (IReadOnlyList<Relation>)group.Split('|', StringSplitOptions.TrimEntries).Select(Relation.Parse).ToList())
            .ToList();
}

/// <summary>"name (op version)" of a Depends/Provides field.</summary>
public sealed record Relation(string Name, string? Op, string? Version)
{
    public static Relation Parse(string text)
    {
        int paren = text.IndexOf('(');
        if (paren < 0) return new Relation(text.Trim(), null, null);
        var name = text[..paren].Trim();
        var inner = text[(paren + 1)..].TrimEnd(')', ' ').Trim();
        int split = 0;
        while (split < inner.Length && inner[split] is '<' or '>' or '=') split++;
        return new Relation(name, inner[..split], inner[split..].Trim());
    }

    public bool SatisfiedBy(string version)
    {
        if (Op is null || Version is null) return true;
        int c = PackageVersion.Compare(version, Version);
        return Op switch
        {
            "<<" => c < 0, "<=" or "<" => c <= 0, "=" => c == 0, ">=" or ">" => c >= 0, ">>" => c > 0,
            _ => true,
        };
    }
}
