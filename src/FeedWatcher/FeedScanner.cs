using System.Text.Json;
using RootfsExport.ExportTree.Build;

namespace RootfsExport.FeedWatcher;

/// <summary>What the feed offers for one package file (cached by name, size and mtime).</summary>
public sealed record FeedEntry(string Path, long Size, long MtimeTicks, string Package, string Version, string Architecture, string Sha256,
    string? Depends = null, string? Provides = null);

/// <summary>
/// Scans the build's ipk feed directories (tmp/deploy/ipk/&lt;arch&gt;, PTXdist platform-*/packages) for package
/// files themselves — the Packages indexes are stale unless `bitbake package-index` ran — and keeps an own
/// index keyed by file name + size + mtime (the idea of Packages.stamps) so unchanged files are not re-read.
/// </summary>
public sealed class FeedScanner
{
    private readonly string _indexPath;
    private readonly Dictionary<string, FeedEntry> _index;
    private bool _changed; // a run with nothing new does not rewrite the index

    public FeedScanner(string indexPath)
    {
        _indexPath = indexPath;
        _index = File.Exists(indexPath)
            ? (JsonSerializer.Deserialize(File.ReadAllText(indexPath), FeedJson.Default.ListFeedEntry) ?? new()).ToDictionary(e => e.Path)
            : new Dictionary<string, FeedEntry>();
    }

    /// <summary>Feed directories of a build, lowest priority first (OE opkg.conf: all, any, noarch, tune archs, machine arch).</summary>
    public static IReadOnlyList<(string Arch, string Dir)> FeedDirs(BuildLayout layout, PackageFormat format = PackageFormat.Ipk)
    {
        if (layout.Kind == BuildKind.Ptxdist)
        {
            var dir = Path.Combine(layout.PlatformDir!, "packages");
            return Directory.Exists(dir) ? [("ptxdist", dir)] : [];
        }
        var root = Path.Combine(layout.DeployDir!, format.ToString().ToLowerInvariant());
        if (!Directory.Exists(root)) return [];
        static int Rank(string arch, string machineArch) => arch switch
        {
            "all" => 0, "any" => 1, "noarch" => 2,
            _ when arch == machineArch || arch.Replace('-', '_') == machineArch => 4,
            _ => 3,
        };
        return Directory.EnumerateDirectories(root)
            .Select(d => (Arch: Path.GetFileName(d), Dir: d))
            .Where(d => d.Arch is not ("morgue" or "repodata") && !d.Arch.EndsWith("-sdk") && !d.Arch.EndsWith("-nativesdk") && !d.Arch.EndsWith("_nativesdk"))
            .OrderBy(d => Rank(d.Arch, layout.MachineArch)).ThenBy(d => d.Arch, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>
    /// Every package file with its control summary. A file that does not parse and changed in the last
    /// 2 s is still being written (bitbake/sstate drop files in pieces): it is reported as not ready.
    /// </summary>
    public (List<(FeedEntry Entry, int Priority)> Packages, List<string> NotReady) Scan(BuildLayout layout, PackageFormat format = PackageFormat.Ipk)
    {
        var result = new List<(FeedEntry, int)>();
        var notReady = new List<string>();
        var seen = new HashSet<string>();
        var dirs = FeedDirs(layout, format);
        var pattern = "*." + format.ToString().ToLowerInvariant();
        for (int priority = 0; priority < dirs.Count; priority++)
        {
            foreach (var file in Directory.EnumerateFiles(dirs[priority].Dir, pattern, SearchOption.AllDirectories))
            {
                if (file.Contains("/morgue/") || Path.GetFileName(file).StartsWith('.')) continue;
                var info = new FileInfo(file);
                seen.Add(file);
                if (_index.TryGetValue(file, out var cached) && cached.Size == info.Length && cached.MtimeTicks == info.LastWriteTimeUtc.Ticks)
                {
                    result.Add((cached, priority));
                    continue;
                }
                try
                {
                    var pkg = PackageFile.Read(file, verifyData: true);
                    var entry = new FeedEntry(file, info.Length, info.LastWriteTimeUtc.Ticks, pkg.Name, pkg.Version, pkg.Architecture, pkg.Sha256,
                        string.Join(", ", new[] { pkg.Control["Pre-Depends"], pkg.Control["Depends"] }.Where(d => !string.IsNullOrWhiteSpace(d))), pkg.Control["Provides"]);
                    _index[file] = entry;
                    _changed = true;
                    result.Add((entry, priority));
                }
                catch (UserFacingException) when (DateTime.UtcNow - info.LastWriteTimeUtc < TimeSpan.FromSeconds(2))
                {
                    notReady.Add(file);
                }
            }
        }
        foreach (var gone in _index.Keys.Where(k => !seen.Contains(k)).ToList()) _changed |= _index.Remove(gone);
        return (result, notReady);
    }

    public void Save()
    {
        if (!_changed && File.Exists(_indexPath)) return;
        var tmp = _indexPath + ".tmp";
        File.WriteAllText(tmp, JsonSerializer.Serialize(_index.Values.OrderBy(e => e.Path).ToList(), FeedJson.Default.ListFeedEntry));
        File.Move(tmp, _indexPath, overwrite: true);
    }
}
