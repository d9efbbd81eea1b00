using System.Diagnostics;
using System.Text;
using System.Text.Json;
using RootfsExport.ExportTree;
using RootfsExport.ExportTree.Build;
using RootfsExport.PseudoDb;

namespace RootfsExport.FeedWatcher;

/// <param name="Export">export directory on disk</param>
/// <param name="Layout">the build: OE deploy dir (ipk/deb/rpm feeds, image manifest) or PTXdist platform dir</param>
/// <param name="Image">image recipe name (finds the manifest)</param>
/// <param name="Install">extra packages to install with their dependencies</param>
/// <param name="DryRun">only say what would be done (feed directories, plan); nothing is written</param>
/// <param name="Handle">the export as a whole update holds it (writer lock, files.db opened once); null: opened here</param>
public sealed record FeedUpdateRequest(string Export, BuildLayout Layout, string Image, IReadOnlyList<string> Install, TextWriter Output, bool DryRun = false, ExportHandle? Handle = null);

public sealed record FeedUpdateResult(int Installed, int Upgraded, int Removed, IReadOnlyList<string> Problems, int NotReady = 0);

/// <summary>
/// Brings an export up to date from the build's package feed (ipk, deb or rpm: whichever package manager the
/// export's image uses), as opkg/dpkg would offline but without them, bitbake or a PR server.
/// Each package is applied atomically with respect to kills: a journal (with a link to the package file) is
/// written before the package touches the export and removed after its files.db transaction committed; a run
/// that finds a journal first applies that package again from the journal (roll forward), so export, files.db
/// and the package-manager state converge to "after" that package.
/// </summary>
public static class FeedUpdater
{
    private const string PackagesFile = "rootfs-export-packages.json";
    private const string JournalFile = "rootfs-export-feed.journal";
    private const string IndexFile = "rootfs-export-feed-index.v2.json";
    private const string ManifestFile = "rootfs-export-manifest";

    internal sealed record Journal(string Package, string Copy, string Original, string? OldStanza, List<string> OldList, bool Auto);

    public static FeedUpdateResult Update(FeedUpdateRequest req)
    {
        var clock = Stopwatch.StartNew();
        var output = req.Output;
        var export = ExportPaths.Canonical(req.Export);
        var state = PseudoState.ForExport(export);
        if (!state.Exists) throw new UserFacingException($"'{export}' has no pseudo database; run 'rootfs-export update {req.Image}' or 'unpack' first");
        output.WriteLine(req.DryRun ? "Update from package feeds (dry run: nothing is changed)" : "Update from package feeds");

        // within a whole update the handle holds the writer lock and the export's root; alone, one is opened here:
        // the export directory is opened once and every step reaches it through that handle
        using var own = req.Handle is null ? ExportHandle.OpenForWriting(export) : null;
        var handle = req.Handle ?? own!;
        using var tree = TargetTree.Open(handle);
        var pstate = PackageState.Load(tree, state.Directory, () => RpmDatabase.Tool(req.Layout.BuildDir));
        if (pstate is null)
        {
            output.WriteLine(req.Layout.Kind == BuildKind.Ptxdist
                ? "  the export has no opkg status (none where etc/opkg/opkg.conf's status_file says, nor in var/lib/opkg or usr/lib/opkg): the image keeps no package state; nothing to update"
                : "  the export has no package database (var/lib/opkg/status, var/lib/dpkg/status, var/lib/rpm): the image was built without IMAGE_FEATURES \"package-management\"; nothing to update");
            return new FeedUpdateResult(0, 0, 0, []);
        }
        // files.db is opened only when something is to be written: a run with nothing to do stays cheap
        using var files = new LazyWriter(handle);
        UpdateTrace.Step("package state read");
        return new FeedRun(req, state, tree, pstate, files, clock).Run();
    }

    /// <summary>One update from the feeds, after the export's package state was found: plan, apply, remove, report.</summary>
    private sealed class FeedRun(FeedUpdateRequest req, PseudoState state, TargetTree tree, PackageState pstate, LazyWriter files, Stopwatch clock)
    {
        private readonly TextWriter _output = req.Output;
        private readonly List<string> _problems = [];
        private readonly Dictionary<string, string> _recorded = LoadRecorded(state);
        private Dictionary<string, string>? _recordedAtStart;
        private readonly OwnerNames _owners = OwnerNames.FromExport(tree);
        private readonly List<string> _applied = [];
        private readonly List<string> _leftUnpacked = [];
        private readonly string? _manifest = req.Layout.FindManifest(req.Image);
        private readonly PackageFormat _format = req.Layout.Kind == BuildKind.Ptxdist ? PackageFormat.Ipk : pstate.Format;
        private int _installed, _upgraded;

        public FeedUpdateResult Run()
        {
            _recordedAtStart = new(_recorded);
            if (pstate is RpmState rpmState && pstate.Status.Count == 0 && _manifest != null)
            {
                SeedFromManifest(pstate, _manifest);
                if (pstate.Status.Count > 0) rpmState.SeededFromManifest();
            }
            if (req.DryRun)
            {
                if (File.Exists(JournalPath(state))) _output.WriteLine($"  a package a previous run was applying is finished first (journal {JournalPath(state)})");
                foreach (var (arch, dir) in FeedScanner.FeedDirs(req.Layout, _format))
                    _output.WriteLine($"  feed {dir} (arch {arch})");
            }
            else if (File.Exists(JournalPath(state))) RollForward(state, pstate, files.Writer, files.Db, _owners, req.Layout, _recorded, _output, _applied);

            var scanner = new FeedScanner(Path.Combine(state.Directory, IndexFile));
            var (entries, notReady) = scanner.Scan(req.Layout, _format);
            UpdateTrace.Step("feed scanned");
            foreach (var f in notReady) _output.WriteLine($"  not ready yet (still being written): {f}");
            if (entries.Count == 0 && notReady.Count == 0)
                _output.WriteLine($"  no .{_format.ToString().ToLowerInvariant()} packages in {string.Join(", ", FeedScanner.FeedDirs(req.Layout, _format).Select(d => d.Dir).DefaultIfEmpty(req.Layout.Kind == BuildKind.Ptxdist ? req.Layout.PlatformDir + "/packages" : req.Layout.DeployDir + "/" + _format.ToString().ToLowerInvariant()))}");

            var (manifestNames, removals) = Removals();
            var planner = Plan(entries, removals);
            UpdateTrace.Step("planned");
            var installs = planner.Steps.Where(p => p.Installed is null).ToList();
            var upgrades = planner.Steps.Where(p => p.Installed is not null).ToList();
            if (req.DryRun)
            {
                DryRunReport(installs, upgrades, removals);
                scanner.Save();
                return new FeedUpdateResult(0, 0, 0, _problems, notReady.Count);
            }
            if (installs.Count > 0) _output.WriteLine("Installing new packages");
            foreach (var p in installs) { Apply(p); _installed++; }
            if (upgrades.Count > 0) _output.WriteLine("Upgrading packages");
            foreach (var p in upgrades) { Apply(p); _upgraded++; }
            Remove(removals);
            Finish(scanner, manifestNames, notReady.Count, removals.Count);
            return new FeedUpdateResult(_installed, _upgraded, removals.Count, _problems, notReady.Count);
        }

        /// <summary>Packages the previous manifest had and the image no longer wants (not ones the user added) are removed.</summary>
        private (HashSet<string> ManifestNames, List<ControlStanza> Removals) Removals()
        {
            var manifestNames = _manifest is null ? new HashSet<string>(StringComparer.Ordinal) : File.ReadLines(_manifest)
                .Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Where(f => f.Length > 0).Select(f => f[0]).ToHashSet(StringComparer.Ordinal);
            var previousManifestPath = Path.Combine(state.Directory, ManifestFile);
            var previousManifest = File.Exists(previousManifestPath) ? File.ReadAllLines(previousManifestPath).ToHashSet(StringComparer.Ordinal) : new HashSet<string>();
            var removals = manifestNames.Count == 0 ? new List<ControlStanza>() : pstate.InstalledPackages()
                .Where(st => previousManifest.Contains(st.Package) && !manifestNames.Contains(st.Package) && !req.Install.Contains(st.Package))
                .ToList();
            return (manifestNames, removals);
        }

        private Planner Plan(List<(FeedEntry Entry, int Priority)> entries, List<ControlStanza> removals)
        {
            var planner = new Planner(pstate.InstalledPackages().ToList(), entries, _recorded,
                c => PackageContent.DiffersFromExport(c.Entry.Path, pstate, _owners)); // no hash recorded yet: the content decides, not mtimes
            if (_manifest != null)
                foreach (var line in File.ReadLines(_manifest))
                    if (line.Split(' ', StringSplitOptions.RemoveEmptyEntries) is [var name, ..]) planner.Want(name, false);
            foreach (var s in pstate.InstalledPackages().ToList()) if (!removals.Contains(s)) planner.Want(s.Package, false);
            foreach (var name in req.Install) planner.Want(name, true);
            _problems.AddRange(planner.Problems);
            foreach (var (name, sha) in planner.Confirmed) _recorded[name] = sha;
            return planner;
        }

        private void DryRunReport(List<PlanStep> installs, List<PlanStep> upgrades, List<ControlStanza> removals)
        {
            foreach (var (title, steps) in new[] { ("Installing new packages", installs), ("Upgrading packages", upgrades) })
            {
                if (steps.Count > 0) _output.WriteLine(title);
                foreach (var p in steps)
                    _output.WriteLine($"  {p.Package.Name} {(p.Installed is null ? "" : p.Installed.Version + " → ")}{p.Package.Version} ({Path.GetRelativePath(req.Layout.BuildDir, p.Package.Entry.Path)})");
            }
            if (removals.Count > 0) _output.WriteLine("Removing");
            foreach (var r in removals) _output.WriteLine($"  {r.Package} {r.Version}");
            foreach (var p in _problems) _output.WriteLine($"  problem: {p}");
            _output.WriteLine($"Summary (dry run): {installs.Count} to install, {upgrades.Count} to upgrade, {removals.Count} to remove, {_problems.Count} problem(s)");
        }

        /// <summary>One package, under its journal: a kill at any point is finished by the next run.</summary>
        private void Apply(PlanStep step)
        {
            var pkg = PackageFile.Read(step.Package.Entry.Path);
            var old = pstate.Installed(pkg.Name);
            var perms = Perms(req.Layout, step.Package.Entry.Path, pkg.Name);
            PackageApplier.Preflight(pkg, perms, tree, _owners);
            var journal = BeginJournal(state, pkg, old, pstate.List(pkg.Name), step.AutoInstalled);
            var outcome = PackageApplier.Apply(pkg, old, journal.OldList, pstate, files.Writer, files.Db, step.AutoInstalled, _owners, perms);
            _recorded[pkg.Name] = pkg.Sha256;
            SaveRecorded(state, _recorded);
            EndJournal(state, journal);
            _applied.Add($"{pkg.Name}={pkg.Version}");
            if (outcome.LeftUnpacked) _leftUnpacked.Add(pkg.Name);
            _output.WriteLine($"  {pkg.Name} {(old is null ? "" : old.Version + " → ")}{pkg.Version}{(outcome.Notes.Count > 0 ? " (" + string.Join("; ", outcome.Notes) + ")" : "")}");
            UpdateTrace.Step($"applied {pkg.Name}");
        }

        /// <summary>The manifest's package names, for the next run's removals; not rewritten when unchanged.</summary>
        private void SaveManifest(HashSet<string> manifestNames)
        {
            if (manifestNames.Count == 0) return;
            var path = Path.Combine(state.Directory, ManifestFile);
            var lines = manifestNames.Order(StringComparer.Ordinal).ToList();
            if (File.Exists(path) && File.ReadAllLines(path).SequenceEqual(lines)) return;
            File.WriteAllLines(path, lines);
        }

        private void Remove(List<ControlStanza> removals)
        {
            if (removals.Count > 0) _output.WriteLine("Removing");
            foreach (var old in removals)
            {
                PackageApplier.Remove(old.Package, pstate, files.Writer, files.Db);
                _recorded.Remove(old.Package);
                _applied.Add($"-{old.Package}");
                _output.WriteLine($"  {old.Package} {old.Version}");
            }
        }

        /// <summary>The stamp in the export, the run's records in the state directory, and what the user should know.</summary>
        private void Finish(FeedScanner scanner, HashSet<string> manifestNames, int notReady, int removed)
        {
            if (_applied.Count > 0)
            {
                var stamp = Encoding.UTF8.GetBytes($"{DateTimeOffset.UtcNow:yyyy-MM-ddTHH:mm:ssZ} {string.Join(' ', _applied)}\n");
                files.Db.InTransaction(() => files.Writer.RegularFile(ExportPath.Parse("etc/rootfs-export-updated"), new MemoryStream(stamp), new EntryMeta(0, 0, 0x1a4, Mtime: DateTimeOffset.UtcNow)));
            }
            scanner.Save();
            if (_recordedAtStart is null || !SameRecords(_recorded, _recordedAtStart)) SaveRecorded(state, _recorded);
            SaveManifest(manifestNames);
            if (notReady > 0) _problems.Add($"{notReady} package file(s) still being written; the next run picks them up");
            foreach (var p in _problems) _output.WriteLine($"  problem: {p}");
            foreach (var u in _owners.Unknown) _output.WriteLine($"  note: {u} is not in the export's etc/passwd or etc/group: recorded as root");
            if (_leftUnpacked.Count > 0)
                _output.WriteLine($"  to finish on the board ({(pstate.Format == PackageFormat.Deb ? "dpkg --configure -a" : "opkg configure")}, run by run-postinsts at boot): {string.Join(' ', _leftUnpacked)}");
            if (pstate is RpmState { NotWritten: { } why } && _applied.Count > 0)
                _output.WriteLine($"  note: the target's rpmdb (var/lib/rpm) is not updated ({why}): 'rpm -q' on the board shows the image's versions; rootfs-export records applied rpms in its state directory");
            _output.WriteLine($"Summary: {_installed} installed, {_upgraded} upgraded, {removed} removed, {_problems.Count} problem(s) in {clock.Elapsed.TotalSeconds:F2} s" +
                (_applied.Count == 0 && _problems.Count == 0 ? " — up to date" : ""));
        }
    }

    /// <summary>files.db and the export writer, opened on first use, both through the export's handle.</summary>
    private sealed class LazyWriter(ExportHandle export) : IDisposable
    {
        private ExportWriter? _writer;

        public FilesDb Db => export.Db; // the handle's: it opens it on first use and closes it
        public ExportWriter Writer => _writer ??= new ExportWriter(export);

        public void Dispose() => _writer?.Dispose();
    }

    private static PermsFile? Perms(BuildLayout layout, string packagePath, string name) =>
        layout.Kind == BuildKind.Ptxdist ? PermsFile.For(layout.PlatformDir!, packagePath, name) : null;

    /// <summary>rpm: without our own record yet, what the image manifest lists is what is installed.</summary>
    private static void SeedFromManifest(PackageState pstate, string manifest)
    {
        foreach (var line in File.ReadLines(manifest))
        {
            if (line.Split(' ', StringSplitOptions.RemoveEmptyEntries) is not [var name, var arch, var version, ..]) continue;
            var s = new ControlStanza();
            s["Package"] = name;
            s["Version"] = version;
            s["Status"] = "install ok installed";
            s["Architecture"] = arch;
            pstate.Status.Add(s);
        }
    }

    // ---- journal: what is being applied, so a killed run is finished by the next ----

    private static string JournalPath(PseudoState state) => Path.Combine(state.Directory, JournalFile);

    private static Journal BeginJournal(PseudoState state, PackageFile pkg, ControlStanza? old, HashSet<string> oldList, bool auto)
    {
        // the package itself is kept (hard link, else copy): the feed may change before the next run
        var copy = Path.Combine(state.Directory, "rootfs-export-feed.pending" + Path.GetExtension(pkg.Path));
        File.Delete(copy);
        try
        {
            using var from = Posix.HostDirectory.Open(Path.GetDirectoryName(pkg.Path)!);
            using var to = Posix.HostDirectory.Open(state.Directory);
            Posix.HostDirectory.Link(from, Path.GetFileName(pkg.Path), to, Path.GetFileName(copy));
        }
        catch (Posix.PosixException) { File.Copy(pkg.Path, copy); } // another file system, or not ours to link (protected_hardlinks)
        var journal = new Journal(pkg.Name, copy, pkg.Path, old?.ToString(), oldList.Order(StringComparer.Ordinal).ToList(), auto);
        var path = JournalPath(state);
        using (var f = new FileStream(path + ".tmp", FileMode.Create, FileAccess.Write))
        {
            JsonSerializer.Serialize(f, journal, FeedJson.Default.Journal);
            f.Flush(flushToDisk: true);
        }
        File.Move(path + ".tmp", path, overwrite: true);
        return journal;
    }

    private static void EndJournal(PseudoState state, Journal journal)
    {
        File.Delete(JournalPath(state));
        File.Delete(journal.Copy);
    }

    private static void RollForward(PseudoState state, PackageState pstate, ExportWriter writer, FilesDb db, OwnerNames owners, BuildLayout layout,
        Dictionary<string, string> recorded, TextWriter output, List<string> applied)
    {
        var path = JournalPath(state);
        if (!File.Exists(path)) return;
        Journal? journal;
        try { journal = JsonSerializer.Deserialize(File.ReadAllText(path), FeedJson.Default.Journal); }
        catch (JsonException) { journal = null; } // killed while writing the journal: nothing was applied yet
        if (journal is null || !File.Exists(journal.Copy))
        {
            File.Delete(path);
            return;
        }
        output.WriteLine($"Finishing {journal.Package}, interrupted in a previous run");
        try
        {
            FinishJournal(journal, state, pstate, writer, db, owners, layout, recorded, output, applied);
        }
        catch (UserFacingException e)
        {
            throw new UserFacingException($"the package {journal.Package} a previous run was applying cannot be finished: {e.Message}. " +
                $"Its journal is {path} (package copy {journal.Copy}); 'rootfs-export check --repair' re-syncs files.db, then delete the journal to go on", e);
        }
    }

    private static void FinishJournal(Journal journal, PseudoState state, PackageState pstate, ExportWriter writer, FilesDb db, OwnerNames owners, BuildLayout layout,
        Dictionary<string, string> recorded, TextWriter output, List<string> applied)
    {
        var pkg = PackageFile.Read(journal.Copy);
        var old = journal.OldStanza is { } text ? ControlStanza.Parse(text, "journal") : null;
        var touched = journal.OldList.ToList();
        pkg.ReadData(m => touched.Add("/" + ExportPath.Parse(m.Name, "entry").Value), owners.Resolve);
        touched.AddRange(pstate.InfoFiles(pkg.Name).Select(f => "/" + f));
        touched.Add($"/{pstate.StatusFile}");
        db.InTransaction(() => PackageApplier.RemoveStaleTemporaries(writer, pstate.Tree, touched));
        var outcome = PackageApplier.Apply(pkg, old, journal.OldList, pstate, writer, db, journal.Auto, owners, Perms(layout, journal.Original, pkg.Name));
        recorded[pkg.Name] = pkg.Sha256;
        SaveRecorded(state, recorded);
        EndJournal(state, journal);
        applied.Add($"{pkg.Name}={pkg.Version}");
        output.WriteLine($"  {pkg.Name} {(old is null ? "" : old.Version + " → ")}{pkg.Version}{(outcome.Notes.Count > 0 ? " (" + string.Join("; ", outcome.Notes) + ")" : "")}");
    }

    private static Dictionary<string, string> LoadRecorded(PseudoState state)
    {
        var path = Path.Combine(state.Directory, PackagesFile);
        return File.Exists(path) ? JsonSerializer.Deserialize(File.ReadAllText(path), FeedJson.Default.DictionaryStringString) ?? new() : new();
    }

    private static bool SameRecords(Dictionary<string, string> a, Dictionary<string, string> b) =>
        a.Count == b.Count && a.All(kv => b.TryGetValue(kv.Key, out var v) && v == kv.Value);

    private static void SaveRecorded(PseudoState state, Dictionary<string, string> recorded)
    {
        var path = Path.Combine(state.Directory, PackagesFile);
        File.WriteAllText(path + ".tmp", JsonSerializer.Serialize(recorded, FeedJson.Default.DictionaryStringString));
        File.Move(path + ".tmp", path, overwrite: true);
    }
}
