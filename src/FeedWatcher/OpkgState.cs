using System.Security.Cryptography;
using System.Text;
using RootfsExport.ExportTree;

namespace RootfsExport.FeedWatcher;

/// <summary>
/// opkg's on-target state in an export: var/lib/opkg/status (or legacy usr/lib/opkg/status) and
/// info/&lt;pkg&gt;.{list,control,conffiles,postinst,...}, read and written in opkg's own format so
/// opkg and run-postinsts on the board keep working.
/// </summary>
public sealed class OpkgState
{
    public string Export { get; }
    /// <summary>Relative directory: var/lib/opkg or usr/lib/opkg.</summary>
    public string Root { get; }
    public List<ControlStanza> Status { get; }

    private OpkgState(string export, string root, List<ControlStanza> status)
    {
        Export = export;
        Root = root;
        Status = status;
    }

    public static OpkgState? Load(string export)
    {
        foreach (var root in new[] { "var/lib/opkg", "usr/lib/opkg" })
        {
            var status = Path.Combine(export, root, "status");
            if (File.Exists(status))
                return new OpkgState(export, root, ControlStanza.ParseAll(File.ReadAllText(status), status));
        }
        return null;
    }

    public static OpkgState Empty(string export) => new(export, "var/lib/opkg", new List<ControlStanza>());

    public ControlStanza? Installed(string name) =>
        Status.FirstOrDefault(s => s.Package == name && (s["Status"] ?? "").Split(' ').LastOrDefault() is "installed" or "unpacked");

    public string InfoPath(string package, string suffix) => $"{Root}/info/{package}.{suffix}";

    /// <summary>The paths a package's .list says it owns.</summary>
    public HashSet<string> List(string package)
    {
        var path = Path.Combine(Export, InfoPath(package, "list"));
        return File.Exists(path)
            ? File.ReadAllLines(path).Select(l => l.Split('\t')[0].Trim()).Where(l => l.Length > 0).ToHashSet(StringComparer.Ordinal)
            : new HashSet<string>(StringComparer.Ordinal);
    }

    /// <summary>Conffile path → md5 recorded in status.</summary>
    public static Dictionary<string, string> Conffiles(ControlStanza? stanza)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in (stanza?["Conffiles"] ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 2) result[parts[0]] = parts[1];
        }
        return result;
    }

    public static string Md5(string file)
    {
        using var s = File.OpenRead(file);
        return Convert.ToHexStringLower(MD5.HashData(s));
    }

    /// <summary>The status stanza opkg writes for an installed package (its field order).</summary>
    public static ControlStanza StatusStanza(IpkFile ipk, string state, IEnumerable<(string Path, string Md5)> conffiles, long installedTime, bool autoInstalled)
    {
        var s = new ControlStanza();
        s["Package"] = ipk.Name;
        s["Version"] = ipk.Version;
        foreach (var f in new[] { "Depends", "Recommends", "Suggests", "Provides", "Replaces", "Conflicts" })
            if (ipk.Control[f] is { Length: > 0 } v) s[f] = v;
        s["Status"] = $"install ok {state}";
        if (ipk.Control["Essential"] is { } essential) s["Essential"] = essential;
        s["Architecture"] = ipk.Architecture;
        var cf = conffiles.ToList();
        if (cf.Count > 0) s["Conffiles"] = string.Concat(cf.Select(c => $"\n {c.Path} {c.Md5}"));
        s["Installed-Time"] = installedTime.ToString();
        if (autoInstalled) s["Auto-Installed"] = "yes";
        return s;
    }

    public string FormatStatus()
    {
        var sb = new StringBuilder();
        foreach (var s in Status) sb.Append(s).Append('\n');
        return sb.ToString();
    }

    public void Replace(ControlStanza stanza)
    {
        int i = Status.FindIndex(s => s.Package == stanza.Package);
        if (i >= 0) Status[i] = stanza;
        else Status.Add(stanza);
    }
}
