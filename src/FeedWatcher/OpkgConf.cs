namespace RootfsExport.FeedWatcher;

/// <summary>
/// Where the target's opkg keeps its state, from its own configuration: `option status_file`,
/// `option info_dir` and `option lists_dir` (or the older `lists_dir ext DIR`) in etc/opkg/*.conf and
/// etc/opkg.conf. PTXdist's opkg.conf puts the status in /usr/share/opkg/status; OE's uses var/lib/opkg.
/// </summary>
public static class OpkgConf
{
    /// <summary>Candidate (status file, info dir) pairs, the configured one first, then OE's two defaults and PTXdist's.</summary>
    public static List<(string Status, string Info)> Locations(TargetTree tree)
    {
        var result = new List<(string, string)>();
        if (Configured(tree) is { } configured) result.Add(configured);
        result.Add(("var/lib/opkg/status", "var/lib/opkg/info"));
        result.Add(("usr/lib/opkg/status", "usr/lib/opkg/info"));
        result.Add(("usr/share/opkg/status", "usr/share/opkg/info")); // PTXdist's, should its opkg.conf be missing
        return result;
    }

    private static (string, string)? Configured(TargetTree tree)
    {
        string? status = null, info = null, lists = null;
        var files = new List<string> { "etc/opkg.conf" };
        var confDir = tree.Resolve("etc/opkg", followLast: true, "opkg configuration directory");
        files.AddRange(tree.Entries(confDir).Where(n => n.EndsWith(".conf", StringComparison.Ordinal)).Order(StringComparer.Ordinal).Select(n => confDir.Value + "/" + n));
        foreach (var file in files)
        {
            var text = tree.ReadAllText(tree.Resolve(file, followLast: true, "opkg configuration"));
            foreach (var raw in (text ?? "").Split('\n'))
            {
                var words = raw.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries).Select(w => w.Trim('"')).ToArray();
                switch (words)
                {
                    case ["option", "status_file", var v, ..]: status = v; break;
                    case ["option", "info_dir", var v, ..]: info = v; break;
                    case ["option", "lists_dir", var v, ..]: lists = v; break;
                    case ["lists_dir", _, var v, ..]: lists = v; break;
                }
            }
        }
        // opkg before 0.3 kept status and info/ below lists_dir; newer ones take each option as given
        status ??= lists is null ? null : lists.TrimEnd('/') + "/status";
        if (status is null) return null;
        // without info_dir: opkg's default (var/lib/opkg/info), unless the target keeps info/ beside the status
        var beside = Path.GetDirectoryName(status.TrimEnd('/')) + "/info";
        info ??= tree.IsDirectory(tree.Resolve(beside, followLast: true)) ? beside : "/var/lib/opkg/info";
        return (status.TrimStart('/'), info.TrimStart('/'));
    }
}
