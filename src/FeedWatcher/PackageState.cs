using System.Security.Cryptography;
using System.Text;
using RootfsExport.ExportTree;

namespace RootfsExport.FeedWatcher;

/// <summary>
/// The target's package-manager state in an export, read and written in that manager's own format so it keeps
/// working on the board: opkg (var/lib/opkg or legacy usr/lib/opkg), dpkg (var/lib/dpkg) or rpm.
/// </summary>
public abstract class PackageState
{
    /// <summary>The export, read confined to it.</summary>
    public TargetTree Tree { get; }
    public string Export => Tree.Export;
    /// <summary>Relative directory of the state: var/lib/opkg, usr/lib/opkg, var/lib/dpkg, var/lib/rpm.</summary>
    public string Root { get; }
    /// <summary>Export-relative status file and info directory (opkg.conf may put them elsewhere than Root).</summary>
    public string StatusFile { get; init; }
    public string InfoDir { get; init; }
    public abstract PackageFormat Format { get; }
    /// <summary>Name of the feed directory under tmp/deploy: ipk, deb, rpm.</summary>
    public string FeedKind => Format.ToString().ToLowerInvariant();
    /// <summary>What a kept user conffile's new version is called: &lt;file&gt;-opkg, .dpkg-dist, .rpmnew.</summary>
    public abstract string NewConffileSuffix { get; }
    public List<ControlStanza> Status { get; }

    protected PackageState(TargetTree tree, string root, List<ControlStanza> status)
    {
        Tree = tree;
        Root = root;
        StatusFile = root + "/status";
        InfoDir = root + "/info";
        Status = status;
    }

    /// <summary>
    /// Finds the state of an export: opkg where the target's opkg.conf puts it (PTXdist: usr/share/opkg), else
    /// var/lib/opkg, then legacy usr/lib/opkg; then dpkg, then rpm. Every path is resolved inside the export.
    /// </summary>
    /// <param name="rpmTool">finds the rpm program that writes an rpmdb (asked only for rpm targets)</param>
    public static PackageState? Load(TargetTree tree, string stateDir, Func<string?>? rpmTool = null)
    {
        foreach (var (statusFile, infoDir) in OpkgConf.Locations(tree))
        {
            var status = tree.Resolve(statusFile, followLast: true, "opkg status file");
            if (tree.ReadAllText(status) is not { } text) continue;
            var info = tree.Resolve(infoDir, followLast: true, "opkg info_dir");
            return new OpkgState(tree, status.Parent.Value, ControlStanza.ParseAll(text, "/" + status.Value)) { StatusFile = status.Value, InfoDir = info.Value };
        }
        var dpkg = tree.Resolve("var/lib/dpkg", followLast: true, "dpkg admin directory");
        if (tree.ReadAllText(ExportPath.Parse(dpkg.Value + "/status")) is { } dpkgText)
            return new DpkgState(tree, dpkg.Value, ControlStanza.ParseAll(dpkgText, "/" + dpkg.Value + "/status"));
        var rpmdb = tree.Resolve("var/lib/rpm", followLast: true, "rpm database directory");
        if (tree.IsDirectory(rpmdb)) return RpmState.Open(tree, rpmdb, stateDir, rpmTool?.Invoke());
        // a symlink the board planted that leads nowhere inside the export: not "no database", and never followed out
        if (tree.TryStat(tree.Resolve("var/lib/rpm", followLast: false), out var st) && Posix.StMode.IsSymlink(st.Mode))
            throw new UserFacingException("/var/lib/rpm is a symlink that leads to no directory inside the export (its target is read with the export as /): refusing to guess where the rpm database is");
        return null;
    }

    public ControlStanza? Installed(string name) => InstalledPackages().FirstOrDefault(s => s.Package == name);

    /// <summary>Packages whose files are on the target: installed, unpacked, or waiting for triggers (dpkg).</summary>
    public IEnumerable<ControlStanza> InstalledPackages() =>
        Status.Where(s => (s["Status"] ?? "").Split(' ').LastOrDefault() is "installed" or "unpacked" or "half-configured" or "triggers-pending" or "triggers-awaited");

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

    /// <summary>Does this content have the hash recorded for it (md5, or "sha256:" from an rpmdb)?</summary>
    public static bool Matches(byte[] content, string recorded) =>
        recorded.StartsWith("sha256:")
            ? Convert.ToHexStringLower(SHA256.HashData(content)) == recorded["sha256:".Length..]
            : Convert.ToHexStringLower(MD5.HashData(content)) == recorded;

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
        return [(StatusFile, Utf8(FormatStatus()), false)];
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

    protected HashSet<string> ReadList(string relative) =>
        (Tree.ReadAllText(ExportPath.Parse(relative)) ?? "").Split('\n').Select(l => l.Split('\t')[0].TrimEnd()).Where(l => l.Length > 0).ToHashSet(StringComparer.Ordinal);

    protected static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);
}
