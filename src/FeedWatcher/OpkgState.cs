using System.Security.Cryptography;
using System.Text;

namespace RootfsExport.FeedWatcher;

/// <summary>
/// The target's package-manager state in an export, read and written in that manager's own format so it keeps
/// working on the board: opkg (var/lib/opkg or legacy usr/lib/opkg), dpkg (var/lib/dpkg) or rpm.
/// </summary>
public abstract class PackageState
{
    public string Export { get; }
    /// <summary>Relative directory of the state: var/lib/opkg, usr/lib/opkg, var/lib/dpkg, var/lib/rpm.</summary>
    public string Root { get; }
    public abstract PackageFormat Format { get; }
    /// <summary>Name of the feed directory under tmp/deploy: ipk, deb, rpm.</summary>
    public string FeedKind => Format.ToString().ToLowerInvariant();
    /// <summary>What a kept user conffile's new version is called: &lt;file&gt;-opkg, .dpkg-dist, .rpmnew.</summary>
    public abstract string NewConffileSuffix { get; }
    /// <summary>Relative paths this state keeps besides the info/ files (for the journal's roll-forward).</summary>
    public List<ControlStanza> Status { get; }

    protected PackageState(string export, string root, List<ControlStanza> status)
    {
        Export = export;
        Root = root;
        Status = status;
    }

    /// <summary>Finds the state of an export: opkg first (var/lib as OE has it, legacy usr/lib, usr/share as PTXdist's
    /// opkg.conf sets status_file), then dpkg, then rpm.</summary>
    public static PackageState? Load(string export, string stateDir)
    {
        foreach (var root in new[] { "var/lib/opkg", "usr/lib/opkg", "usr/share/opkg" })
        {
            var status = Path.Combine(export, root, "status");
            if (File.Exists(status)) return new OpkgState(export, root, ControlStanza.ParseAll(File.ReadAllText(status), status));
        }
        var dpkg = Path.Combine(export, "var/lib/dpkg/status");
        if (File.Exists(dpkg)) return new DpkgState(export, ControlStanza.ParseAll(File.ReadAllText(dpkg), dpkg));
        if (Directory.Exists(Path.Combine(export, "var/lib/rpm"))) return RpmState.Open(export, stateDir);
        return null;
    }

    public ControlStanza? Installed(string name) =>
        Status.FirstOrDefault(s => s.Package == name && (s["Status"] ?? "").Split(' ').LastOrDefault() is "installed" or "unpacked" or "half-configured");

    public IEnumerable<ControlStanza> InstalledPackages() =>
        Status.Where(s => (s["Status"] ?? "").Split(' ').LastOrDefault() is "installed" or "unpacked" or "half-configured");

    /// <summary>The paths a package's file list says it owns (target-absolute).</summary>
    public abstract HashSet<string> List(string package);

    /// <summary>Conffile path → hash recorded for the installed package.</summary>
    public static Dictionary<string, string> Conffiles(ControlStanza? stanza)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var line in (stanza?["Conffiles"] ?? "").Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length >= 2) result[parts[0]] = parts[1];
        }
        return result;
    }

    /// <summary>Does the file still have the content a recorded hash describes (md5, or "sha256:" from an rpmdb)?</summary>
    public static bool Matches(string file, string recorded)
    {
        if (!recorded.StartsWith("sha256:")) return Md5(file) == recorded;
        using var s = File.OpenRead(file);
        return Convert.ToHexStringLower(SHA256.HashData(s)) == recorded["sha256:".Length..];
    }

    public static string Md5(string file)
    {
        using var s = File.OpenRead(file);
        return Convert.ToHexStringLower(MD5.HashData(s));
    }

    /// <summary>
    /// The files (relative path → content) that record a package as applied: status and info files. The
    /// status stanza is replaced in <see cref="Status"/> too.
    /// </summary>
    public abstract List<(string Path, byte[] Content, bool Executable)> Record(PackageFile pkg, ControlStanza? old, IReadOnlyList<string> list,
        IReadOnlyList<(string Path, string Hash)> conffiles, bool unpacked, bool autoInstalled, long now);

    /// <summary>Relative paths of a package's info files that may exist from an older version (removed if not rewritten).</summary>
    public abstract IEnumerable<string> InfoFiles(string package);

    /// <summary>Drops a removed package's stanza; returns the state files to write.</summary>
    public virtual List<(string Path, byte[] Content, bool Executable)> Forget(string package)
    {
        Status.RemoveAll(s => s.Package == package);
        return [($"{Root}/status", Utf8(FormatStatus()), false)];
    }

    public string FormatStatus()
    {
        var sb = new StringBuilder();
        foreach (var s in Status) sb.Append(s).Append('\n');
        return sb.ToString();
    }

    protected void Replace(ControlStanza stanza)
    {
        int i = Status.FindIndex(s => s.Package == stanza.Package);
        if (i >= 0) Status[i] = stanza;
        else Status.Add(stanza);
    }

    protected HashSet<string> ReadList(string relative)
    {
        var path = Path.Combine(Export, relative);
        return File.Exists(path)
            ? File.ReadAllLines(path).Select(l => l.Split('\t')[0].TrimEnd()).Where(l => l.Length > 0).ToHashSet(StringComparer.Ordinal)
            : new HashSet<string>(StringComparer.Ordinal);
    }

    protected static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);
}

/// <summary>
/// opkg's state: status (or legacy usr/lib/opkg/status) and info/&lt;pkg&gt;.{list,control,conffiles,postinst,...}
/// in opkg's format.
/// </summary>
public sealed class OpkgState : PackageState
{
    public OpkgState(string export, string root, List<ControlStanza> status) : base(export, root, status) { }

    public override PackageFormat Format => PackageFormat.Ipk;
    public override string NewConffileSuffix => "-opkg";

    public string InfoPath(string package, string suffix) => $"{Root}/info/{package}.{suffix}";

    public override HashSet<string> List(string package) => ReadList(InfoPath(package, "list"));

    public override IEnumerable<string> InfoFiles(string package) =>
        new[] { "list", "control", "conffiles", "preinst", "postinst", "prerm", "postrm" }.Select(s => InfoPath(package, s));

    /// <summary>The status stanza opkg writes for an installed package (its field order).</summary>
    public static ControlStanza StatusStanza(PackageFile pkg, string state, IEnumerable<(string Path, string Md5)> conffiles, long installedTime, bool autoInstalled)
    {
        var s = new ControlStanza();
        s["Package"] = pkg.Name;
        s["Version"] = pkg.Version;
        foreach (var f in new[] { "Depends", "Recommends", "Suggests", "Provides", "Replaces", "Conflicts" })
            if (pkg.Control[f] is { Length: > 0 } v) s[f] = v;
        s["Status"] = $"install ok {state}";
        if (pkg.Control["Essential"] is { } essential) s["Essential"] = essential;
        s["Architecture"] = pkg.Architecture;
        var cf = conffiles.ToList();
        if (cf.Count > 0) s["Conffiles"] = string.Concat(cf.Select(c => $"\n {c.Path} {c.Md5}"));
        s["Installed-Time"] = installedTime.ToString();
        if (autoInstalled) s["Auto-Installed"] = "yes";
        return s;
    }

    public override List<(string Path, byte[] Content, bool Executable)> Record(PackageFile pkg, ControlStanza? old, IReadOnlyList<string> list,
        IReadOnlyList<(string Path, string Hash)> conffiles, bool unpacked, bool autoInstalled, long now)
    {
        var files = new List<(string, byte[], bool)>
        {
            (InfoPath(pkg.Name, "list"), Utf8(string.Concat(list.Select(p => p + "\n"))), false),
            (InfoPath(pkg.Name, "control"), Utf8(pkg.Control.ToString()), false),
        };
        foreach (var (name, content) in pkg.ControlMembers)
        {
            if (name is "debian-binary" || name.Contains('/')) continue;
            files.Add((InfoPath(pkg.Name, name), content, name is "preinst" or "postinst" or "prerm" or "postrm"));
        }
        bool auto = autoInstalled || old?["Auto-Installed"] == "yes";
        Replace(StatusStanza(pkg, unpacked ? "unpacked" : "installed", conffiles, now, auto));
        files.Add(($"{Root}/status", Utf8(FormatStatus()), false));
        return files;
    }
}
