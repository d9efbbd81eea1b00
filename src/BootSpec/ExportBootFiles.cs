using System.Text;
using System.Text.RegularExpressions;

namespace RootfsExport.BootSpec;

/// <summary>A kernel image in the export.</summary>
/// <param name="Path">Symlink-free path inside the export (/boot/Image-6.6.1).</param>
/// <param name="Release">Kernel release (uname -r).</param>
/// <param name="Names">The /boot names that lead to it (Image, Image-6.6.1).</param>
public sealed record BootKernel(string Path, string Release, IReadOnlyList<string> Names);

/// <summary>The parts of os-release a boot entry uses.</summary>
public sealed record OsRelease(IReadOnlyDictionary<string, string> Fields)
{
    public string? Get(string key) => Fields.TryGetValue(key, out var v) && v.Length > 0 ? v : null;
    public string? PrettyName => Get("PRETTY_NAME") ?? (Get("NAME") is { } n ? (Get("VERSION") is { } v ? $"{n} {v}" : n) : null);
    public string? SortKey => Get("IMAGE_ID") ?? Get("ID");
    public string? Id => Get("ID");

    public static readonly OsRelease Empty = new(new Dictionary<string, string>());

    /// <summary>Parses os-release: KEY=value with optional single or double quotes and backslash escapes.</summary>
    public static OsRelease Parse(string text)
    {
        var d = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            int eq = line.IndexOf('=');
            if (eq <= 0) continue;
            var key = line[..eq];
            var v = line[(eq + 1)..];
            if (v.Length >= 2 && v[0] == '\'' && v[^1] == '\'') v = v[1..^1];
            else if (v.Length >= 2 && v[0] == '"' && v[^1] == '"')
            {
                var sb = new StringBuilder();
                for (int i = 1; i < v.Length - 1; i++)
                {
                    if (v[i] == '\\' && i + 1 < v.Length - 1) i++;
                    sb.Append(v[i]);
                }
                v = sb.ToString();
            }
            d[key] = v;
        }
        return new OsRelease(d);
    }
}

/// <summary>What the export offers for booting: kernels, devicetrees, initramfs images, identity, console.</summary>
public sealed record ExportBootFiles(
    IReadOnlyList<BootKernel> Kernels,
    IReadOnlyList<string> Devicetrees,
    IReadOnlyList<string> Initramfs,
    IReadOnlyList<string> ModuleReleases,
    OsRelease OsRelease,
    string? Machine,
    string? Console,
    IReadOnlyList<string> Warnings)
{
    /// <summary>The initramfs named after this release, else the only unversioned one, else none.</summary>
    public string? InitramfsFor(string release)
    {
        var versioned = Initramfs.Where(p => NamesRelease(System.IO.Path.GetFileName(p), release)).ToList();
        if (versioned.Count > 0) return versioned[0];
        var generic = Initramfs.Where(p => !ExportScanner.LooksVersioned(System.IO.Path.GetFileName(p))).ToList();
        return generic.Count == 1 ? generic[0] : null;
    }

    /// <summary>"initramfs-6.6.1.cpio.gz" names 6.6.1, "initramfs-6.6.10.img" does not.</summary>
    public static bool NamesRelease(string name, string release)
    {
        for (int at = name.IndexOf(release, StringComparison.Ordinal); at >= 0; at = name.IndexOf(release, at + 1, StringComparison.Ordinal))
        {
            int end = at + release.Length;
            bool before = at == 0 || !char.IsAsciiLetterOrDigit(name[at - 1]);
            bool after = end == name.Length || (!char.IsAsciiLetterOrDigit(name[end]) && !(name[end] == '.' && end + 1 < name.Length && char.IsAsciiDigit(name[end + 1])));
            if (before && after) return true;
        }
        return false;
    }
}

/// <summary>Finds the boot files of an export (only ever inside it, see <see cref="ExportRoot"/>).</summary>
public static partial class ExportScanner
{
    /// <summary>Kernel image base names; "&lt;base&gt;-&lt;release&gt;" carries the release.</summary>
    public static readonly string[] KernelBases = ["Image", "zImage", "bzImage", "fitImage", "vmlinuz"];


    public static ExportBootFiles Scan(ExportRoot root)
    {
        var warnings = new List<string>();
        var modules = root.List("/lib/modules").Concat(root.List("/usr/lib/modules"))
            .Where(n => root.ResolveDirectory($"/lib/modules/{n}") is not null || root.ResolveDirectory($"/usr/lib/modules/{n}") is not null)
            .Distinct(StringComparer.Ordinal).ToList();

        var bootNames = root.List("/boot");
        var groups = new Dictionary<string, List<string>>(StringComparer.Ordinal);
        foreach (var name in bootNames)
        {
            if (!IsKernelName(name)) continue;
            var r = root.ResolveFile("/boot/" + name);
            if (r is null) { warnings.Add($"/boot/{name} is a dangling link inside the export; skipped"); continue; }
            if (!groups.TryGetValue(r, out var l)) groups[r] = l = [];
            l.Add(name);
        }
        var kernels = new List<BootKernel>();
        foreach (var (path, names) in groups.OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var candidates = names.Append(System.IO.Path.GetFileName(path));
            var release = candidates.Select(ReleaseFromName).FirstOrDefault(v => v is not null)
                          ?? EmbeddedRelease(root, path)
                          ?? (modules.Count == 1 ? modules[0] : null);
            if (release is null)
            {
                warnings.Add($"cannot tell the kernel release of {path} (name it <image>-<release> or keep a single /lib/modules/<release>); skipped");
                continue;
            }
            kernels.Add(new BootKernel(path, release, names));
        }
        // The same release twice (e.g. Image-6.6 and zImage-6.6): keep the first, one entry per release.
        kernels = kernels.GroupBy(k => k.Release).Select(g => g.First()).ToList();

        var dtbs = bootNames.Where(n => n.EndsWith(".dtb", StringComparison.Ordinal))
            .Select(n => root.ResolveFile("/boot/" + n)).OfType<string>().Distinct().ToList();
        var initramfs = bootNames.Where(IsInitramfsName)
            .Select(n => root.ResolveFile("/boot/" + n)).OfType<string>().Distinct().ToList();

        var osText = root.ReadText("/etc/os-release") ?? root.ReadText("/usr/lib/os-release");
        var os = osText is null ? OsRelease.Empty : OsRelease.Parse(osText);
        var hostname = root.ReadText("/etc/hostname")?.Split('\n')[0].Trim();
        var machine = hostname is { Length: > 0 } && MachineName().IsMatch(hostname) ? hostname : null;

        return new ExportBootFiles(kernels, dtbs, initramfs, modules, os, machine, DetectConsole(root), warnings);
    }

    public static bool IsKernelName(string name)
    {
        foreach (var b in KernelBases)
        {
            if (name == b) return true;
            if (name.StartsWith(b + "-", StringComparison.Ordinal) && name.Length > b.Length + 1 && char.IsAsciiDigit(name[b.Length + 1]))
                return true;
        }
        return false;
    }

    /// <summary>"Image-6.6.1" → "6.6.1"; null for a bare base name.</summary>
    public static string? ReleaseFromName(string name)
    {
        foreach (var b in KernelBases)
            if (name.StartsWith(b + "-", StringComparison.Ordinal) && name.Length > b.Length + 1 && char.IsAsciiDigit(name[b.Length + 1]))
                return name[(b.Length + 1)..];
        return null;
    }

    public static bool IsInitramfsName(string name) =>
        (name.StartsWith("initrd", StringComparison.Ordinal) || name.StartsWith("initramfs", StringComparison.Ordinal))
        && !name.EndsWith(".sig", StringComparison.Ordinal) && !name.EndsWith(".sha256", StringComparison.Ordinal);

    public static bool LooksVersioned(string name) => VersionInName().IsMatch(name);

    /// <summary>The release compiled into the image (Payload's reader), read through the confined export root.</summary>
    public static string? EmbeddedRelease(ExportRoot root, string path)
    {
        try
        {
            using var fs = root.OpenRead(path);
            return fs is null ? null : Payload.KernelImage.Release(fs);
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    /// <summary>
    /// The serial console the image starts a getty on: systemd's enabled serial-getty@&lt;tty&gt;.service, else
    /// a getty line in /etc/inittab (sysvinit and busybox forms). The speed defaults to 115200.
    /// </summary>
    public static string? DetectConsole(ExportRoot root)
    {
        foreach (var dir in new[] { "/etc/systemd/system/getty.target.wants", "/etc/systemd/system/multi-user.target.wants" })
            foreach (var n in root.List(dir))
            {
                var m = SerialGetty().Match(n);
                if (m.Success) return $"{m.Groups[1].Value},115200";
            }
        var inittab = root.ReadText("/etc/inittab");
        if (inittab is null) return null;
        foreach (var raw in inittab.Split('\n'))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line[0] == '#') continue;
            var f = line.Split(':', 4);
            if (f.Length < 4 || !f[3].Contains("getty")) continue;
            var words = f[3].Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries);
            var tty = words.FirstOrDefault(w => SerialTty().IsMatch(w));
            if (tty is null) continue;
            var baud = words.FirstOrDefault(w => w.All(char.IsAsciiDigit) && w.Length is >= 4 and <= 7) ?? "115200";
            return $"{tty},{baud}";
        }
        return null;
    }

    [GeneratedRegex(@"^serial-getty@([A-Za-z0-9_]+)\.service$")]
    private static partial Regex SerialGetty();

    // Serial-ish devices; tty1..tty63 are virtual consoles, not serial.
    [GeneratedRegex(@"^(tty[A-Za-z]+[0-9]+|hvc[0-9]+)$")]
    private static partial Regex SerialTty();

    [GeneratedRegex(@"[0-9]+\.[0-9]+")]
    private static partial Regex VersionInName();

    [GeneratedRegex(@"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]
    private static partial Regex MachineName();
}
