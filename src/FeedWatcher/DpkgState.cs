using System.Text;
using RootfsExport.ExportTree;

namespace RootfsExport.FeedWatcher;

/// <summary>
/// dpkg's state: var/lib/dpkg/status and info/&lt;pkg&gt;[:arch].{list,md5sums,conffiles,postinst,...}, written as
/// dpkg writes them (compared with `dpkg --root` in the tests): status fields in dpkg's own order (fieldinfos[]
/// in lib/dpkg/parse.c), relation fields normalised, other fields after them in their control-file order; the
/// .list in archive order starting with "/."; every control member except control copied to info/.
/// </summary>
public sealed partial class DpkgState : PackageState
{
    public DpkgState(TargetTree tree, string root, List<ControlStanza> status) : base(tree, root, status) { }

    public override PackageFormat Format => PackageFormat.Deb;
    public override string NewConffileSuffix => ".dpkg-dist";

    /// <summary>dpkg's known fields in the order it writes them.</summary>
    private static readonly string[] FieldOrder =
    [
        "Package", "Essential", "Protected", "Status", "Priority", "Section", "Installed-Size", "Origin", "Maintainer", "Bugs",
        "Architecture", "Multi-Arch", "Source", "Version", "Config-Version", "Replaces", "Provides", "Depends", "Pre-Depends",
        "Recommends", "Suggests", "Breaks", "Conflicts", "Enhances", "Conffiles", "Filename", "Size", "MD5sum", "MSDOS-Filename",
        "Description", "Triggers-Pending", "Triggers-Awaited",
    ];

    private static readonly HashSet<string> RelationFields = new(StringComparer.OrdinalIgnoreCase)
        { "Replaces", "Provides", "Depends", "Pre-Depends", "Recommends", "Suggests", "Breaks", "Conflicts", "Enhances" };

    /// <summary>Fields of a .deb's control that dpkg does not keep in status.</summary>
    private static readonly HashSet<string> NotInStatus = new(StringComparer.OrdinalIgnoreCase) { "Filename", "Size", "MD5sum", "MSDOS-Filename" };

    /// <summary>info/ base name: "pkg", or "pkg:arch" for Multi-Arch: same.</summary>
    public static string InfoName(ControlStanza control) =>
        string.Equals(control["Multi-Arch"], "same", StringComparison.OrdinalIgnoreCase) ? $"{control.Package}:{control.Architecture}" : control.Package;

    private string InfoPath(string infoName, string suffix) => $"{InfoDir}/{infoName}.{suffix}";

    public override HashSet<string> List(string package)
    {
        var stanza = Installed(package);
        var list = ReadList(InfoPath(stanza is null ? package : InfoName(stanza), "list"));
        list.Remove("/.");
        return list;
    }

    public override IEnumerable<string> InfoFiles(string package)
    {
        var stanza = Installed(package);
        var prefix = (stanza is null ? package : InfoName(stanza)) + ".";
        return Tree.Entries(ExportPath.Parse(InfoDir))
            .Where(n => n.StartsWith(prefix, StringComparison.Ordinal) && n[prefix.Length..] is var rest && rest.Length > 0 && !rest.Contains('.') && !rest.Contains(':'))
            .Order(StringComparer.Ordinal)
            .Select(n => $"{InfoDir}/{n}");
    }

    /// <summary>A status stanza as dpkg writes it for this package.</summary>
    public static ControlStanza StatusStanza(ControlStanza control, string status, IEnumerable<(string Path, string Hash)> conffiles, string? configVersion)
    {
        var fields = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        var extra = new List<KeyValuePair<string, string>>();
        foreach (var (k, v) in control.Fields)
        {
            if (NotInStatus.Contains(k) || k.Equals("Status", StringComparison.OrdinalIgnoreCase) || k.Equals("Conffiles", StringComparison.OrdinalIgnoreCase)
                || k.Equals("Config-Version", StringComparison.OrdinalIgnoreCase)) continue;
            var canonical = FieldOrder.FirstOrDefault(f => f.Equals(k, StringComparison.OrdinalIgnoreCase));
            if (canonical is null) { extra.Add(new(k, v)); continue; }
            fields[canonical] = RelationFields.Contains(canonical) ? NormaliseRelations(v) : v;
        }
        if (fields.TryGetValue("Essential", out var ess) && !ess.Equals("yes", StringComparison.OrdinalIgnoreCase)) fields.Remove("Essential");
        if (fields.TryGetValue("Protected", out var prot) && !prot.Equals("yes", StringComparison.OrdinalIgnoreCase)) fields.Remove("Protected");
        if (fields.TryGetValue("Multi-Arch", out var ma) && ma.Equals("no", StringComparison.OrdinalIgnoreCase)) fields.Remove("Multi-Arch");
        if (fields.TryGetValue("Version", out var version)) fields["Version"] = NonAmbiguous(version);
        fields["Status"] = status;
        var cf = conffiles.ToList();
        if (cf.Count > 0) fields["Conffiles"] = string.Concat(cf.Select(c => $"\n {c.Path} {c.Hash}"));
        if (configVersion != null) fields["Config-Version"] = NonAmbiguous(configVersion);
        var s = new ControlStanza();
        foreach (var f in FieldOrder) if (fields.TryGetValue(f, out var v)) s[f] = v;
        foreach (var (k, v) in extra) s[k] = v;
        return s;
    }

    /// <summary>dpkg drops a zero epoch unless the upstream part contains a colon.</summary>
    private static string NonAmbiguous(string version)
    {
        var v = PackageVersion.Parse(version);
        return v.Epoch == 0 && version.TrimStart().StartsWith("0:") && !v.Upstream.Contains(':') ? version.Trim()[2..] : version.Trim();
    }

    /// <summary>"a(>=1) ,b|c (<< 2)" → "a (>= 1), b | c (<< 2)", as dpkg re-serialises relation fields.</summary>
    public static string NormaliseRelations(string value)
    {
        var groups = value.Replace('\n', ' ').Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        return string.Join(", ", groups.Select(g => string.Join(" | ", g.Split('|', StringSplitOptions.TrimEntries).Select(alt =>
        {
            var r = Relation.Parse(alt);
            if (r.Op is null) return r.Name;
            var op = r.Op switch { "<" => "<=", ">" => ">=", var o => o };
            return $"{r.Name} ({op} {r.Version})";
        }))));
    }

    public override List<(string Path, byte[] Content, bool Executable)> Record(PackageFile pkg, ControlStanza? old, IReadOnlyList<string> list,
        IReadOnlyList<(string Path, string Hash)> conffiles, bool unpacked, bool autoInstalled, long now)
    {
        var info = InfoName(pkg.Control);
        var files = new List<(string, byte[], bool)>
        {
            (InfoPath(info, "list"), Utf8(string.Concat(new[] { "/." }.Concat(list).Select(p => p + "\n"))), false),
        };
        foreach (var (name, content) in pkg.ControlMembers)
        {
            if (name is "debian-binary" || name.Contains('/')) continue;
            files.Add((InfoPath(info, name), content, name is "preinst" or "postinst" or "prerm" or "postrm" or "config"));
        }
        // unpacked over a configured version: dpkg remembers which version was configured
        string? configVersion = unpacked && old != null ? old["Config-Version"] ?? (old["Status"]?.EndsWith(" installed") == true ? old.Version : null) : null;
        Replace(StatusStanza(pkg.Control, unpacked ? "install ok unpacked" : "install ok installed", conffiles, configVersion));
        ActivateTriggers(pkg, list);
        // dpkg writes its database sorted by name, then architecture
        Status.Sort((a, b) => string.CompareOrdinal(a.Package, b.Package) is var c && c != 0 ? c : string.CompareOrdinal(a.Architecture, b.Architecture));
        files.Add((StatusFile, Utf8(FormatStatus()), false));
        return files;
    }
}

/// <summary>dpkg's triggers as `dpkg --unpack` records them (deb-triggers(5)).</summary>
public sealed partial class DpkgState
{
    /// <summary>
    /// The package's own `activate*` directives and the file triggers (triggers/File) of the paths it ships make the
    /// interested packages (triggers/&lt;name&gt;, triggers/File) wait with Triggers-Pending, as dpkg records it
    /// when it unpacks; the board's `dpkg --configure -a` then runs them.
    /// </summary>
    private void ActivateTriggers(PackageFile pkg, IReadOnlyList<string> list)
    {
        var triggers = $"{Root}/triggers";
        if (pkg.ControlMembers.TryGetValue("triggers", out var own))
            foreach (var words in Lines(Encoding.UTF8.GetString(own)))
                if (words is [var directive, var name, ..] && directive.StartsWith("activate", StringComparison.Ordinal) && !name.Contains('/'))
                    foreach (var interested in Lines(Tree.ReadAllText(ExportPath.Parse($"{triggers}/{name}")) ?? ""))
                        Pend(interested[0], name);
        foreach (var words in Lines(Tree.ReadAllText(ExportPath.Parse($"{triggers}/File")) ?? ""))
            if (words is [var path, var interested, ..] && list.Any(p => p == path || p.StartsWith(path.TrimEnd('/') + "/", StringComparison.Ordinal)))
                Pend(interested, path);
    }

    private static IEnumerable<string[]> Lines(string text) =>
        text.Split('\n').Select(l => l.Split('#')[0].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)).Where(w => w.Length > 0);

    /// <summary>A trigger is pending only for a package that is configured (or already waiting for triggers).</summary>
    private void Pend(string interest, string trigger)
    {
        var name = interest.Split('/')[0].Split(':')[0];
        var stanza = Status.FirstOrDefault(s => s.Package == name && (s["Status"] ?? "").Split(' ').LastOrDefault() is "installed" or "triggers-pending" or "triggers-awaited");
        if (stanza is null) return;
        var pending = (stanza["Triggers-Pending"] ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries).ToList();
        if (!pending.Contains(trigger)) pending.Add(trigger);
        stanza["Triggers-Pending"] = string.Join(' ', pending);
        if (!stanza["Status"]!.EndsWith(" triggers-awaited")) stanza["Status"] = "install ok triggers-pending";
        Status[Status.IndexOf(stanza)] = InDpkgOrder(stanza);
    }

    /// <summary>dpkg writes its known fields in its own order (Triggers-Pending after Description), others after them.</summary>
    private static ControlStanza InDpkgOrder(ControlStanza stanza)
    {
        var ordered = new ControlStanza();
        foreach (var f in FieldOrder) if (stanza[f] is { } v) ordered[f] = v;
        foreach (var (k, v) in stanza.Fields) if (ordered[k] is null) ordered[k] = v;
        return ordered;
    }
}
