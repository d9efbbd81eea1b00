using System.Text.RegularExpressions;

namespace RootfsExport.ExportTree.Build;

public enum BuildKind { OpenEmbedded, Ptxdist, Sample }

/// <summary>
/// Where a build keeps its images and package feeds. OpenEmbedded: $BUILDDIR/tmp*/deploy/{images/MACHINE,ipk,deb,rpm};
/// PTXdist: platform-*/{images,packages,state}; the bundled sample build is laid out like OE.
/// </summary>
public sealed record BuildLayout(BuildKind Kind, string BuildDir, string Machine, string? DeployDir, string? PlatformDir)
{
    /// <summary>tmp/deploy/images/MACHINE (OE) or platform-X/images (PTXdist).</summary>
    public string ImageDir => Kind == BuildKind.Ptxdist ? Path.Combine(PlatformDir!, "images") : Path.Combine(DeployDir!, "images", Machine);

    /// <summary>OE's MACHINE_ARCH: the machine name with '-' turned into '_' (the highest-priority feed arch).</summary>
    public string MachineArch => Machine.Replace('-', '_');

    /// <summary>
    /// Finds the build: an explicit --build-dir, else $BUILDDIR (set by oe-init-build-env), else the current
    /// directory if it is an OE or PTXdist build, else the sample build bundled with rootfs-export.
    /// </summary>
    public static BuildLayout Locate(string? buildDir, string? machine, string? sampleDir)
    {
        string? dir = buildDir ?? (Environment.GetEnvironmentVariable("BUILDDIR") is { Length: > 0 } env ? env : null);
        if (dir is null)
        {
            var cwd = Directory.GetCurrentDirectory();
            if (File.Exists(Path.Combine(cwd, "conf", "local.conf")) || IsPtxdistBsp(cwd)) dir = cwd;
        }
        if (dir is null)
        {
            if (sampleDir is null || !Directory.Exists(sampleDir))
                throw new UserFacingException("no build found: run inside an OE build environment (source oe-init-build-env), pass --build-dir, or run from a PTXdist BSP");
            var sample = FromDirectory(sampleDir, machine);
            return sample with { Kind = BuildKind.Sample };
        }
        if (!Directory.Exists(dir)) throw new UserFacingException($"build directory '{dir}' does not exist");
        return FromDirectory(Path.GetFullPath(dir), machine);
    }

    public static BuildLayout FromDirectory(string dir, string? machine)
    {
        if (IsPtxdistBsp(dir) && !File.Exists(Path.Combine(dir, "conf", "local.conf")))
        {
            var platform = PtxdistPlatform(dir, machine);
            var name = Path.GetFileName(platform);
            return new BuildLayout(BuildKind.Ptxdist, dir, name.StartsWith("platform-") ? name["platform-".Length..] : name, null, platform);
        }
        machine ??= Environment.GetEnvironmentVariable("MACHINE") ?? MachineFromLocalConf(Path.Combine(dir, "conf", "local.conf"))
            ?? throw new UserFacingException($"cannot tell the MACHINE: {dir}/conf/local.conf sets none; pass --machine");
        // oe-core without poky's distro config appends the libc to TMPDIR (tmp-glibc, tmp-musl).
        var deploy = new[] { "tmp", "tmp-glibc", "tmp-musl", "tmp-newlib" }
            .Select(t => Path.Combine(dir, t, "deploy"))
            .Where(Directory.Exists)
            .OrderByDescending(Directory.GetLastWriteTimeUtc)
            .FirstOrDefault() ?? Path.Combine(dir, "tmp", "deploy");
        return new BuildLayout(BuildKind.OpenEmbedded, dir, machine, deploy, null);
    }

    /// <summary>A PTXdist BSP: a selected platform config, or a platform directory (platform-NAME, or platform/ for an empty name).</summary>
    public static bool IsPtxdistBsp(string dir) =>
        File.Exists(Path.Combine(dir, "selected_platformconfig")) || Directory.Exists(Path.Combine(dir, "platform"))
        || Directory.EnumerateDirectories(dir, "platform-*").Any();

    private static readonly Regex PlatformLine = new(@"^PTXCONF_PLATFORM=""([^""]*)""", RegexOptions.Multiline);

    /// <summary>
    /// The platform directory: --machine NAME is platform-NAME; else the one selected_platformconfig names
    /// (PTXCONF_PLATFORM="NAME" is platform-NAME, an empty name is platform/); else the only one there is.
    /// Never the newest: several platforms of one BSP are built side by side.
    /// </summary>
    public static string PtxdistPlatform(string bsp, string? machine)
    {
        if (machine != null)
        {
            var named = Path.Combine(bsp, machine == "platform" ? "platform" : "platform-" + machine);
            return Directory.Exists(named) ? named : throw new UserFacingException($"no platform directory '{named}' in the BSP");
        }
        var selected = Path.Combine(bsp, "selected_platformconfig");
        if (File.Exists(selected))
        {
            var m = PlatformLine.Match(File.ReadAllText(selected));
            var dir = Path.Combine(bsp, m.Success && m.Groups[1].Value.Length > 0 ? "platform-" + m.Groups[1].Value : "platform");
            return Directory.Exists(dir) ? dir
                : throw new UserFacingException($"selected_platformconfig names platform '{Path.GetFileName(dir)}', which is not built yet (run 'ptxdist go')");
        }
        var all = Directory.EnumerateDirectories(bsp, "platform-*").Concat(Directory.EnumerateDirectories(bsp, "platform")).Order(StringComparer.Ordinal).ToList();
        return all.Count switch
        {
            1 => all[0],
            0 => throw new UserFacingException($"no platform directory in the BSP '{bsp}' (run 'ptxdist go')"),
            _ => throw new UserFacingException($"several platforms in '{bsp}' ({string.Join(", ", all.Select(Path.GetFileName))}) and no selected_platformconfig: pass --machine NAME for platform-NAME"),
        };
    }

    private static readonly Regex MachineLine = new(@"^\s*MACHINE\s*(\?\?=|\?=|=|:=)\s*[""']([^""']+)[""']", RegexOptions.Multiline);

    /// <summary>MACHINE from conf/local.conf: the last hard assignment wins, else the last default.</summary>
    public static string? MachineFromLocalConf(string localConf)
    {
        if (!File.Exists(localConf)) return null;
        var matches = MachineLine.Matches(File.ReadAllText(localConf)).Where(m => !m.Value.TrimStart().StartsWith('#')).ToList();
        var hard = matches.LastOrDefault(m => m.Groups[1].Value is "=" or ":=");
        return (hard ?? matches.LastOrDefault())?.Groups[2].Value;
    }

    private static readonly Regex TarSuffix = new(@"\.(tar|tgz)(\.(gz|bz2|xz|zst))?$");

    /// <summary>
    /// The newest rootfs tarball of an image: both OE naming schemes (≥ 4.3 IMAGE-MACHINE.rootfs.tar.*,
    /// ≤ 4.2 IMAGE-MACHINE.tar.*) and their timestamped real files, symlinks resolved inside the image dir;
    /// PTXdist's images/root.tgz (or root.tar.*).
    /// </summary>
    public string FindImageTarball(string image)
    {
        if (Kind == BuildKind.Ptxdist) return FindPtxdistImage();
        var dir = ImageDir;
        if (!Directory.Exists(dir))
            throw new UserFacingException($"image directory '{dir}' does not exist (build the image first: bitbake {image})");
        IEnumerable<string> candidates;
        {
            var prefix = $"{image}-{Machine}";
            candidates = Directory.EnumerateFiles(dir, prefix + "*").Where(f =>
            {
                var name = Path.GetFileName(f);
                if (!TarSuffix.IsMatch(name)) return false;
                var rest = name[prefix.Length..];
                // .rootfs.tar.zst, .rootfs-20240101.tar.zst, .tar.bz2, -20230101.rootfs.tar.bz2 — not another image's name
                return rest.StartsWith(".rootfs") || rest.StartsWith(".tar") || Regex.IsMatch(rest, @"^-\d{8,14}\.rootfs\.");
            });
        }
        var newest = candidates
            .Select(f => (Path: f, Real: Resolve(f)))
            .Where(c => c.Real != null)
            .OrderByDescending(c => File.GetLastWriteTimeUtc(c.Real!))
            .ThenBy(c => new FileInfo(c.Path).LinkTarget is null ? 1 : 0) // prefer the stable symlink name
            .FirstOrDefault();
        if (newest.Path is null)
            throw new UserFacingException($"no rootfs tarball of '{image}' for MACHINE '{Machine}' in {dir} (looked for {image}-{Machine}.rootfs.tar.* and {image}-{Machine}.tar.*; IMAGE_FSTYPES needs a tar type)");
        return newest.Path;
    }

    /// <summary>
    /// PTXdist: images/root.tgz (or root.tar.*; only with PTXCONF_IMAGE_ROOT_TGZ), or the nfsroot data
    /// (root/ plus state/*.perms, which every `ptxdist go` updates), whichever is newer.
    /// </summary>
    private string FindPtxdistImage()
    {
        var images = Path.Combine(PlatformDir!, "images");
        var tarball = Directory.Exists(images)
            ? Directory.EnumerateFiles(images, "root.*").Where(f => TarSuffix.IsMatch(Path.GetFileName(f))).OrderByDescending(File.GetLastWriteTimeUtc).FirstOrDefault()
            : null;
        if (!PtxdistNfsroot.Exists(PlatformDir!))
            return tarball ?? throw new UserFacingException($"no image in {PlatformDir}: neither images/root.tgz (PTXCONF_IMAGE_ROOT_TGZ) nor root/ with state/*.perms (run 'ptxdist go')");
        if (tarball != null && File.GetLastWriteTimeUtc(tarball) >= PtxdistNfsroot.LastChange(PlatformDir!)) return tarball;
        return PtxdistNfsroot.Tarball(PlatformDir!, Path.Combine(BuildDir, ".rootfs-export"));
    }

    /// <summary>The image manifest next to the tarball (package name, arch, version per line), if any.</summary>
    public string? FindManifest(string image)
    {
        if (Kind == BuildKind.Ptxdist) return null;
        var dir = ImageDir;
        foreach (var name in new[] { $"{image}-{Machine}.rootfs.manifest", $"{image}-{Machine}.manifest" })
        {
            var p = Path.Combine(dir, name);
            if (File.Exists(p)) return p;
        }
        return Directory.Exists(dir)
            ? Directory.EnumerateFiles(dir, $"{image}-{Machine}*.manifest").OrderByDescending(File.GetLastWriteTimeUtc).FirstOrDefault()
            : null;
    }

    /// <summary>Follows a relative symlink chain, staying inside the image directory.</summary>
    private static string? Resolve(string path)
    {
        var dir = Path.GetDirectoryName(path)!;
        var current = path;
        for (int i = 0; i < 16; i++)
        {
            var info = new FileInfo(current);
            if (info.LinkTarget is null) return info.Exists ? current : null;
            var next = Path.GetFullPath(Path.Combine(Path.GetDirectoryName(current)!, info.LinkTarget));
            if (Path.GetDirectoryName(next) != dir) return File.Exists(next) ? next : null; // absolute links to elsewhere in deploy are fine if they exist
            current = next;
        }
        return null;
    }

    /// <summary>Default export directory: &lt;build&gt;/export/&lt;image&gt;-&lt;machine&gt; (for the sample: ./export/...).</summary>
    public string DefaultExport(string image) =>
        Path.Combine(Kind == BuildKind.Sample ? Directory.GetCurrentDirectory() : BuildDir, "export", $"{image}-{Machine}");
}
