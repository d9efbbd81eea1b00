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

/// <summary>
/// rpm targets keep their database in var/lib/rpm/rpmdb.sqlite (rpm header blobs plus index tables). With an rpm
/// on the host (the build's rpm-native, else PATH) every applied or removed package is recorded there as
/// `rpm -U/-e --justdb` would (<see cref="RpmDatabase"/>), so `rpm -qa` and `rpm -V` on the board agree with the
/// files. Without one, or when the image's database is not sqlite or was never there (the installed set then
/// comes from the image manifest), the database is left as it is and our own record in the state directory
/// (status stanzas and file lists) says what was applied; the output says so.
/// </summary>
public sealed class RpmState : PackageState
{
    private readonly string _recordPath;
    private RpmDatabase? _db;
    /// <summary>Packages our own record (not the rpmdb) speaks for.</summary>
    private readonly HashSet<string> _overlaid = new(StringComparer.Ordinal);

    private RpmState(TargetTree tree, string root, List<ControlStanza> status, string recordPath, RpmDatabase? db) : base(tree, root, status)
    {
        _recordPath = recordPath;
        _db = db;
    }

    public override PackageFormat Format => PackageFormat.Rpm;
    public override string NewConffileSuffix => ".rpmnew";

    /// <summary>Why the rpmdb is not written (null when it is).</summary>
    public string? NotWritten { get; private set; }

    private readonly Dictionary<string, HashSet<string>> _imageLists = new(StringComparer.Ordinal);

    /// <summary>
    /// What the image's rpmdb says is installed (read from a copy), overlaid with our own record of packages
    /// applied or removed while the rpmdb could not be written.
    /// </summary>
    /// <param name="rpm">the rpm program that writes the database, null for none</param>
    public static RpmState Open(TargetTree tree, ExportPath directory, string stateDir, string? rpm)
    {
        var path = Path.Combine(stateDir, "rootfs-export-rpm.status");
        // the board may have planted the database itself as a symlink: neither read nor replaced, refused
        if (tree.TryStat(directory.Child(RpmDatabase.FileName), out var st) && Posix.StMode.IsSymlink(st.Mode))
            throw new UserFacingException($"/{directory.Value}/{RpmDatabase.FileName} is a symlink: refusing to read or replace the rpm database through it (make it a regular file on the board)");
        bool sqlite = tree.IsRegularFile(directory.Child(RpmDatabase.FileName));
        bool otherBackend = !sqlite && new[] { "Packages", "Packages.db" }.Any(f => tree.TryStat(directory.Child(f), out _));
        var state = new RpmState(tree, directory.Value, new List<ControlStanza>(), path,
            rpm != null && !otherBackend ? new RpmDatabase(tree, directory, rpm) : null)
        {
            NotWritten = rpm is null ? "no rpm program found (the build's rpm-native or one in PATH)"
                : otherBackend ? $"/{directory.Value} is not an sqlite rpmdb (Berkeley DB or ndb): only rpm ≥ 4.16's rpmdb.sqlite is written" : null,
        };
        foreach (var h in RpmDb.Installed(tree, directory.Child(RpmDatabase.FileName)))
        {
            var name = h.String(RpmHeader.NAME);
            if (name is null || name == "gpg-pubkey") continue;
            var s = new ControlStanza();
            s["Package"] = name;
            s["Version"] = h.FullVersion();
            s["Status"] = "install ok installed";
            s["Architecture"] = h.String(RpmHeader.ARCH) ?? "noarch";
            var conffiles = h.ConffileDigests().ToList();
            if (conffiles.Count > 0) s["Conffiles"] = string.Concat(conffiles.Select(c => $"\n {c.Path} {c.Digest}"));
            state.Replace(s);
            state._imageLists[name] = h.FilePaths().ToHashSet(StringComparer.Ordinal);
        }
        if (File.Exists(path))
            foreach (var s in ControlStanza.ParseAll(File.ReadAllText(path), path))
            {
                state.Replace(s);
                state._overlaid.Add(s.Package);
            }
        return state;
    }

    /// <summary>
    /// The installed set came from the image manifest, not from an rpmdb: writing one now would list only the
    /// packages applied from here on, so our own record is kept instead.
    /// </summary>
    public void SeededFromManifest()
    {
        if (_db is null) return;
        _db = null;
        NotWritten = $"the image has no /{Root}/{RpmDatabase.FileName}; the installed set comes from the image manifest";
    }

    private string ListPath(string package) => Path.Combine(Path.GetDirectoryName(_recordPath)!, "rootfs-export-rpm.info", package + ".list");

    public override HashSet<string> List(string package)
    {
        var path = ListPath(package);
        if (_overlaid.Contains(package) && File.Exists(path)) return File.ReadAllLines(path).Where(l => l.Length > 0).ToHashSet(StringComparer.Ordinal);
        return _imageLists.TryGetValue(package, out var l) ? new HashSet<string>(l, StringComparer.Ordinal) : new(StringComparer.Ordinal);
    }

    /// <summary>sqlite's -wal/-shm beside the database: stale once we replace it.</summary>
    public override IEnumerable<string> InfoFiles(string package) => _db?.Companions ?? [];

    public override List<(string Path, byte[] Content, bool Executable)> Forget(string package)
    {
        var gone = new ControlStanza();
        gone["Package"] = package;
        gone["Status"] = "deinstall ok not-installed";
        Replace(gone);
        _imageLists.Remove(package);
        if (_db != null)
        {
            DropOverlay(package);
            return _db.Erase(package) is { } bytes ? [(_db.File.Value, bytes, false)] : [];
        }
        // the image's rpmdb still lists it: our record says it is gone
        _overlaid.Add(package);
        WriteOverlay(package, []);
        return [];
    }

    public override List<(string Path, byte[] Content, bool Executable)> Record(PackageFile pkg, ControlStanza? old, IReadOnlyList<string> list,
        IReadOnlyList<(string Path, string Hash)> conffiles, bool unpacked, bool autoInstalled, long now)
    {
        var s = new ControlStanza();
        s["Package"] = pkg.Name;
        s["Version"] = pkg.Version;
        s["Status"] = unpacked ? "install ok unpacked" : "install ok installed";
        s["Architecture"] = pkg.Architecture;
        if (conffiles.Count > 0) s["Conffiles"] = string.Concat(conffiles.Select(c => $"\n {c.Path} {c.Hash}"));
        Replace(s);
        if (_db != null)
        {
            // rpm records the package's own file list and digests; ours only for planning the rest of this run
            _imageLists[pkg.Name] = pkg.Rpm!.FilePaths().ToHashSet(StringComparer.Ordinal);
            DropOverlay(pkg.Name);
            return [(_db.File.Value, _db.Install(pkg.Path), false)];
        }
        _overlaid.Add(pkg.Name);
        WriteOverlay(pkg.Name, list);
        return [];
    }

    /// <summary>Our record (outside the export, written directly and atomically, not through the export writer).</summary>
    private void WriteOverlay(string package, IEnumerable<string> list)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(ListPath(package))!);
        WriteAtomic(ListPath(package), string.Concat(list.Select(p => p + "\n")));
        WriteAtomic(_recordPath, string.Concat(Status.Where(s => _overlaid.Contains(s.Package)).Select(s => s + "\n")));
    }

    /// <summary>The rpmdb speaks for this package from now on.</summary>
    private void DropOverlay(string package)
    {
        if (!_overlaid.Remove(package)) return;
        File.Delete(ListPath(package));
        WriteAtomic(_recordPath, string.Concat(Status.Where(s => _overlaid.Contains(s.Package)).Select(s => s + "\n")));
    }

    private static void WriteAtomic(string path, string text)
    {
        File.WriteAllText(path + ".tmp", text, new UTF8Encoding(false));
        File.Move(path + ".tmp", path, overwrite: true);
    }
}
