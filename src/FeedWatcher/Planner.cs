namespace RootfsExport.FeedWatcher;

/// <summary>A package the feed offers, as the planner sees it (the best candidate per name).</summary>
public sealed record Candidate(FeedEntry Entry, int Priority)
{
    public string Name => Entry.Package;
    public string Version => Entry.Version;

    public IReadOnlyList<IReadOnlyList<Relation>> Depends()
    {
        var c = new ControlStanza();
        c["Depends"] = Entry.Depends;
        return c.Relations("Depends");
    }

    public IEnumerable<Relation> Provides()
    {
        var c = new ControlStanza();
        c["Provides"] = Entry.Provides;
        return c.Relations("Provides").SelectMany(g => g);
    }
}

/// <summary>One step of a plan: apply this candidate (over the installed version, if any).</summary>
public sealed record PlanStep(Candidate Package, ControlStanza? Installed, bool AutoInstalled);

/// <summary>
/// Decides what to apply, without touching anything: packages the image manifest or --install wants and the
/// export lacks, installed packages whose candidate is newer or — same version — has other content (the
/// sha256 recorded when we applied it, or for packages that came with the image: built after the image),
/// Depends resolved first (alternatives, version constraints, Provides). A downgrade is refused; a package
/// whose dependencies cannot be resolved is not applied, and the reason is reported.
/// </summary>
public sealed class Planner
{
    private readonly IReadOnlyList<ControlStanza> _installed;
    private readonly Dictionary<string, Candidate> _candidates;
    private readonly IReadOnlyDictionary<string, string> _recordedSha;
    private readonly Func<Candidate, bool> _differsFromExport;

    public List<PlanStep> Steps { get; } = new();
    public List<string> Problems { get; } = new();
    /// <summary>Installed packages whose feed content is the one installed (to be recorded).</summary>
    public Dictionary<string, string> Confirmed { get; } = new();

    private readonly HashSet<string> _planned = new(StringComparer.Ordinal);
    private readonly HashSet<string> _visiting = new(StringComparer.Ordinal);
    private readonly HashSet<string> _failed = new(StringComparer.Ordinal);

    public Planner(IReadOnlyList<ControlStanza> installed, IEnumerable<(FeedEntry Entry, int Priority)> feed,
        IReadOnlyDictionary<string, string> recordedSha, Func<Candidate, bool> differsFromExport)
    {
        _installed = installed;
        _recordedSha = recordedSha;
        _differsFromExport = differsFromExport;
        _candidates = feed.GroupBy(e => e.Entry.Package).ToDictionary(g => g.Key, g => g
            .OrderByDescending(e => e.Priority) // arch priority beats version (OE: --prefer-arch-to-version)
            .ThenByDescending(e => PackageVersion.Parse(e.Entry.Version))
            .ThenByDescending(e => e.Entry.MtimeTicks)
            .Select(e => new Candidate(e.Entry, e.Priority)).First());
    }

    public IReadOnlyDictionary<string, Candidate> Candidates => _candidates;

    private ControlStanza? Installed(string name) => _installed.FirstOrDefault(s => s.Package == name);

    /// <summary>Plans one wanted package (from the manifest, the installed set, --install, or a forced re-apply).</summary>
    public void Want(string name, bool isExplicit, bool force = false) => Visit(name, isExplicit, null, null, force);

    private bool Visit(string name, bool isExplicit, string? requiredBy, Relation? relation, bool force = false)
    {
        if (_planned.Contains(name) || _visiting.Contains(name)) return true;
        if (_failed.Contains(name)) return false;
        var installed = Installed(name);
        if (!_candidates.TryGetValue(name, out var cand))
        {
            if (installed != null) return true;
            Problems.Add(requiredBy is null ? $"{name}: not in the feed" : $"{name}: needed by {requiredBy}, not in the feed");
            _failed.Add(name);
            return false;
        }
        if (relation != null && !relation.SatisfiedBy(cand.Version) && (installed is null || !relation.SatisfiedBy(installed.Version)))
        {
            Problems.Add($"{name}: {requiredBy} needs {relation.Op} {relation.Version}, the feed has {cand.Version}");
            _failed.Add(name);
            return false;
        }
        bool apply = force;
        if (installed is null) apply = true;
        else if (!force)
        {
            int cmp = PackageVersion.Compare(cand.Version, installed.Version);
            if (cmp < 0)
            {
                Problems.Add($"{name}: feed has {cand.Version}, older than installed {installed.Version}: downgrade refused");
                return true;
            }
            apply = cmp > 0 || (_recordedSha.TryGetValue(name, out var sha) ? sha != cand.Entry.Sha256 : _differsFromExport(cand));
            if (!apply) Confirmed[name] = cand.Entry.Sha256;
        }
        if (!apply) return true;
        _visiting.Add(name);
        // dependencies first, so a package never lands without what it needs; every one is visited, so the
        // problems name each missing dependency, not only the first (as opkg's pkg_hash_fetch_unsatisfied_dependencies)
        bool resolved = true;
        foreach (var group in cand.Depends())
        {
            if (group.Any(SatisfiedByInstalled) || group.Any(r => _planned.Contains(r.Name) || _visiting.Contains(r.Name))) continue;
            var pick = group.FirstOrDefault(r => _candidates.ContainsKey(r.Name))
                ?? group.Select(r => Provider(r.Name) is { } p ? new Relation(p.Name, null, null) : null).FirstOrDefault(r => r != null)
                ?? group[0];
            resolved &= Visit(pick.Name, false, name, pick);
        }
        _visiting.Remove(name);
        if (!resolved)
        {
            _failed.Add(name);
            Problems.Add($"{name} {cand.Version}: not applied, a dependency cannot be resolved");
            return false;
        }
        _planned.Add(name);
        Steps.Add(new PlanStep(cand, installed, !isExplicit && installed is null));
        return true;
    }

    private bool SatisfiedByInstalled(Relation r)
    {
        if (Installed(r.Name) is { } i && r.SatisfiedBy(i.Version)) return true;
        if (r.Op != null) return false;
        return _installed.Any(s => (s["Provides"] ?? "").Split(',', StringSplitOptions.TrimEntries).Any(p => Relation.Parse(p).Name == r.Name));
    }

    private Candidate? Provider(string virtualName) =>
        _candidates.Values.Where(c => c.Provides().Any(p => p.Name == virtualName)).OrderByDescending(c => c.Priority).ThenBy(c => c.Name, StringComparer.Ordinal).FirstOrDefault();
}
