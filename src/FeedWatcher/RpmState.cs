using System.Text;
using RootfsExport.ExportTree;

namespace RootfsExport.FeedWatcher;

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
