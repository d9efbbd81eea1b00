using System.Security.Cryptography;
using System.Text;
using RootfsExport.ExportTree;

namespace RootfsExport.FeedWatcher;

/// <summary>
/// opkg's state: status (or legacy usr/lib/opkg/status) and info/&lt;pkg&gt;.{list,control,conffiles,postinst,...}
/// in opkg's format.
/// </summary>
public sealed class OpkgState : PackageState
{
    public OpkgState(TargetTree tree, string root, List<ControlStanza> status) : base(tree, root, status) { }

    public override PackageFormat Format => PackageFormat.Ipk;
    public override string NewConffileSuffix => "-opkg";

    public string InfoPath(string package, string suffix) => $"{InfoDir}/{package}.{suffix}";

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
            // opkg extracts the control members into info/ with the modes the control.tar gives them
            bool executable = pkg.ControlModes.TryGetValue(name, out var mode) ? (mode & 0x49) != 0 : name is "preinst" or "postinst" or "prerm" or "postrm";
            files.Add((InfoPath(pkg.Name, name), content, executable));
        }
        bool auto = autoInstalled || old?["Auto-Installed"] == "yes";
        Replace(StatusStanza(pkg, unpacked ? "unpacked" : "installed", conffiles, now, auto));
        files.Add((StatusFile, Utf8(FormatStatus()), false));
        return files;
    }
}
