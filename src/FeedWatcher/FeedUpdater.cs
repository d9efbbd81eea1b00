using System.Diagnostics;
using System.Text;
using System.Text.Json;
using RootfsExport.ExportTree;
using RootfsExport.ExportTree.Build;
using RootfsExport.PseudoDb;

namespace RootfsExport.FeedWatcher;

public sealed record FeedUpdateRequest(string Export, BuildLayout Layout, string Image, IReadOnlyList<string> Install, TextWriter Output);

public sealed record FeedUpdateResult(int Installed, int Upgraded, int Removed, IReadOnlyList<string> Problems, int NotReady = 0);

/// <summary>
/// Brings an export up to date from the build's ipk feed, as opkg would offline but without opkg, bitbake or
/// a PR server: installs what the image manifest (or --install) wants and the export lacks, upgrades every
/// installed package whose candidate is newer or has different content at the same version, applies each
/// package in one files.db transaction, and records opkg's status and info files. Maintainer scripts are not
/// run on the host: a package with a postinst is left "install ok unpacked" for run-postinsts on the board.
/// </summary>
public static class FeedUpdater
{
    private const string PackagesFile = "rootfs-export-packages.json";
    private const string JournalFile = "rootfs-export-feed.journal";
    private const string IndexFile = "rootfs-export-feed-index.json";
    private const string ManifestFile = "rootfs-export-manifest";

    private sealed record Candidate(FeedEntry Entry, int Priority);

    public static FeedUpdateResult Update(FeedUpdateRequest req)
    {
        var clock = Stopwatch.StartNew();
        var output = req.Output;
        var export = ExportPaths.Canonical(req.Export);
        var state = PseudoState.ForExport(export);
        if (!state.Exists) throw new UserFacingException($"'{export}' has no pseudo database; run 'rootfs-export update {req.Image}' or 'unpack' first");
        output.WriteLine("Update from package feeds");
        var problems = new List<string>();

        var opkg = OpkgState.Load(export);
        if (opkg is null)
        {
            output.WriteLine("  the export has no opkg status (var/lib/opkg/status): the image was built without IMAGE_FEATURES \"package-management\"; nothing to update");
            return new FeedUpdateResult(0, 0, 0, problems);
        }

        using var writeLock = state.AcquireWriterLock();
        var recorded = LoadRecorded(state);
        var scanner = new FeedScanner(Path.Combine(state.Directory, IndexFile));
        var (entries, notReady) = scanner.Scan(req.Layout);
        foreach (var f in notReady) output.WriteLine($"  not ready yet (still being written): {f}");
        var candidates = entries
            .GroupBy(e => e.Entry.Package)
            .ToDictionary(g => g.Key, g => g.OrderByDescending(e => e.Priority) // arch priority beats version (--prefer-arch-to-version)
                .ThenByDescending(e => PackageVersion.Parse(e.Entry.Version)).Select(e => new Candidate(e.Entry, e.Priority)).First());

        // a package a killed run was applying is applied again first (idempotent), so the export converges
        var journal = Path.Combine(state.Directory, JournalFile);
        var resume = File.Exists(journal) ? File.ReadAllText(journal).Trim() : null;

        var wanted = new List<(string Name, bool Explicit)>();
        var manifestNames = new HashSet<string>(StringComparer.Ordinal);
        if (req.Layout.FindManifest(req.Image) is { } manifest)
            foreach (var line in File.ReadAllLines(manifest))
                if (line.Split(' ', StringSplitOptions.RemoveEmptyEntries) is [var name, ..]) { wanted.Add((name, false)); manifestNames.Add(name); }
        // packages the previous manifest had and the image no longer wants (not ones the user added) are removed
        var previousManifestPath = Path.Combine(state.Directory, ManifestFile);
        var previousManifest = File.Exists(previousManifestPath) ? File.ReadAllLines(previousManifestPath).ToHashSet(StringComparer.Ordinal) : new HashSet<string>();
        var removals = manifestNames.Count == 0 ? new List<ControlStanza>() : opkg.Status
            .Where(st => previousManifest.Contains(st.Package) && !manifestNames.Contains(st.Package) && !req.Install.Contains(st.Package) && opkg.Installed(st.Package) != null)
            .ToList();
        foreach (var s in opkg.Status) if (opkg.Installed(s.Package) != null && !removals.Contains(s)) wanted.Add((s.Package, false));
        foreach (var name in req.Install) wanted.Add((name, true));
        if (resume != null) wanted.Add((resume, false));

        var plan = new List<(Candidate Pkg, ControlStanza? Old, bool Auto)>();
        var planned = new HashSet<string>();
        void Want(string name, bool isExplicit, string? requiredBy, Relation? relation)
        {
            if (planned.Contains(name)) return;
            var installed = opkg.Installed(name);
            if (!candidates.TryGetValue(name, out var cand))
            {
                if (installed is null)
                    problems.Add(requiredBy is null ? $"{name}: not in the feed" : $"{name}: needed by {requiredBy}, not in the feed");
                return;
            }
            if (relation != null && !relation.SatisfiedBy(cand.Entry.Version) && (installed is null || !relation.SatisfiedBy(installed.Version)))
            {
                problems.Add($"{name}: {requiredBy} needs {relation.Op} {relation.Version}, the feed has {cand.Entry.Version}");
                return;
            }
            bool apply;
            if (installed is null) apply = true;
            else
            {
                int cmp = PackageVersion.Compare(cand.Entry.Version, installed.Version);
                if (cmp < 0) { problems.Add($"{name}: feed has {cand.Entry.Version}, older than installed {installed.Version}: downgrade refused"); return; }
                apply = cmp > 0 || (recorded.TryGetValue(name, out var sha)
                    ? sha != cand.Entry.Sha256
                    : new DateTime(cand.Entry.MtimeTicks, DateTimeKind.Utc) > ImageTime(state).AddSeconds(2)); // rebuilt after the image was made (a checkout writes both at once)
                if (!apply) recorded[name] = cand.Entry.Sha256;
            }
            if (name == resume) apply = true;
            if (!apply) return;
            planned.Add(name);
            // dependencies first, so a package never lands without what it needs
            var ipkControl = IpkFile.Read(cand.Entry.Path).Control;
            foreach (var group in ipkControl.Relations("Depends"))
            {
                if (group.Any(r => opkg.Installed(r.Name) is { } i && r.SatisfiedBy(i.Version)) || group.Any(r => planned.Contains(r.Name))) continue;
                var pick = group.FirstOrDefault(r => candidates.ContainsKey(r.Name)) ?? group[0];
                int before = problems.Count;
                Want(pick.Name, false, name, pick);
                if (problems.Count > before) { planned.Remove(name); problems.Add($"{name} {cand.Entry.Version}: not applied, a dependency cannot be resolved"); return; }
            }
            plan.Add((cand, installed, !isExplicit && installed is null));
        }
        foreach (var (name, isExplicit) in wanted) Want(name, isExplicit, null, null);

        int installedCount = 0, upgraded = 0;
        var installs = plan.Where(p => p.Old is null).ToList();
        var upgrades = plan.Where(p => p.Old is not null).ToList();
        using (var db = FilesDb.Open(state, create: false))
        using (var writer = new ExportWriter(export, export, db))
        {
            if (installs.Count > 0) output.WriteLine("Installing new packages");
            foreach (var p in installs) { Apply(p.Pkg, p.Old, p.Auto); installedCount++; }
            if (upgrades.Count > 0) output.WriteLine("Upgrading packages");
            foreach (var p in upgrades) { Apply(p.Pkg, p.Old, p.Auto); upgraded++; }

            void Apply(Candidate cand, ControlStanza? old, bool auto)
            {
                var ipk = IpkFile.Read(cand.Entry.Path);
                File.WriteAllText(journal, ipk.Name + "\n");
                var note = PackageApplier.Apply(ipk, old, opkg, writer, db, auto);
                recorded[ipk.Name] = ipk.Sha256;
                SaveRecorded(state, recorded);
                File.Delete(journal);
                output.WriteLine($"  {ipk.Name} {(old is null ? "" : old.Version + " → ")}{ipk.Version}{note}");
            }
            if (removals.Count > 0) output.WriteLine("Removing");
            foreach (var old in removals)
            {
                PackageApplier.Remove(old.Package, opkg, writer, db);
                recorded.Remove(old.Package);
                output.WriteLine($"  {old.Package} {old.Version}");
            }
            if (plan.Count > 0 || removals.Count > 0)
            {
                var stamp = Encoding.UTF8.GetBytes($"{DateTimeOffset.UtcNow:yyyy-MM-ddTHH:mm:ssZ} {string.Join(' ', plan.Select(p => p.Pkg.Entry.Package + "=" + p.Pkg.Entry.Version))}\n");
                db.InTransaction(() => writer.RegularFile(ExportPath.Parse("etc/rootfs-export-updated"), new MemoryStream(stamp), new EntryMeta(0, 0, 0x1a4, Mtime: DateTimeOffset.UtcNow)));
            }
        }
        scanner.Save();
        SaveRecorded(state, recorded);
        if (manifestNames.Count > 0) File.WriteAllLines(previousManifestPath, manifestNames.Order(StringComparer.Ordinal));
        foreach (var p in problems) output.WriteLine($"  problem: {p}");
        output.WriteLine($"Summary: {installedCount} installed, {upgraded} upgraded, {removals.Count} removed, {problems.Count} problem(s) in {clock.Elapsed.TotalSeconds:F2} s" +
            (plan.Count == 0 && removals.Count == 0 && problems.Count == 0 ? " — up to date" : ""));
        return new FeedUpdateResult(installedCount, upgraded, removals.Count, problems, notReady.Count);
    }

    private static DateTime ImageTime(PseudoState state)
    {
        var stamp = Path.Combine(state.Directory, "rootfs-export.image");
        if (!File.Exists(stamp)) return DateTime.MaxValue.AddSeconds(-10);
        var lines = File.ReadAllLines(stamp);
        return lines.Length >= 3 && long.TryParse(lines[2], out var ticks) ? new DateTime(ticks, DateTimeKind.Utc) : DateTime.MaxValue.AddSeconds(-10);
    }

    private static Dictionary<string, string> LoadRecorded(PseudoState state)
    {
        var path = Path.Combine(state.Directory, PackagesFile);
        return File.Exists(path) ? JsonSerializer.Deserialize<Dictionary<string, string>>(File.ReadAllText(path)) ?? new() : new();
    }

    private static void SaveRecorded(PseudoState state, Dictionary<string, string> recorded)
    {
        var path = Path.Combine(state.Directory, PackagesFile);
        File.WriteAllText(path + ".tmp", JsonSerializer.Serialize(recorded, new JsonSerializerOptions { WriteIndented = true }));
        File.Move(path + ".tmp", path, overwrite: true);
    }
}
