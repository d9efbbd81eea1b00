namespace RootfsExport.TestSupport;

/// <summary>
/// An OE-shaped build made by the test: conf/local.conf (MACHINE qemux86-64), an image tarball + manifest under
/// tmp/deploy/images/qemux86-64, and a feed under tmp/deploy/{deb,rpm}/&lt;arch&gt;. The image root is made
/// with real tar; packages with dpkg-deb and rpmbuild.
/// </summary>
public sealed class OeFeedBuild : IDisposable
{
    public const string Image = "demo-image";
    public ScratchDir Dir { get; } = new("rfe-oefeed");
    public string Root => Dir["build"];
    public string Export => Path.Combine(Root, "export", $"{Image}-qemux86-64");
    public string ImageDir => Path.Combine(Root, "tmp/deploy/images/qemux86-64");
    public Dictionary<string, string> Env => new() { ["BUILDDIR"] = Root };
    public string Work => Dir["work"];

    /// <param name="rootSetup">shell commands run in the image root before it is packed (cwd = root)</param>
    public OeFeedBuild(string rootSetup, IEnumerable<string> manifest)
    {
        Directory.CreateDirectory(Path.Combine(Root, "conf"));
        File.WriteAllText(Path.Combine(Root, "conf/local.conf"), "MACHINE ??= \"qemux86-64\"\n");
        Directory.CreateDirectory(ImageDir);
        Directory.CreateDirectory(Work);
        var rootfs = Path.Combine(Work, "rootfs");
        Run.Shell($"""
            set -e
            mkdir -p {rootfs} && cd {rootfs}
            mkdir -p etc bin usr/bin usr/share var/lib tmp
            printf 'root:x:0:0:root:/root:/bin/sh\ndaemon:x:1:1:daemon:/usr/sbin:/bin/false\nmessagebus:x:101:102::/nonexistent:/bin/false\n' > etc/passwd
            printf 'root:x:0:\ndaemon:x:1:\nmessagebus:x:102:\n' > etc/group
            {rootSetup}
            tar --numeric-owner --owner=0 --group=0 --sort=name --format=posix -czf {ImageDir}/{Image}-qemux86-64.rootfs.tar.gz .
            """).ShouldSucceed();
        File.WriteAllLines(Path.Combine(ImageDir, $"{Image}-qemux86-64.rootfs.manifest"), manifest);
        Own();
    }

    /// <summary>A build whose image is an existing rootfs tarball (a real Debian one, say), copied in under OE's name.</summary>
    public OeFeedBuild(string imageTarball)
    {
        Directory.CreateDirectory(Path.Combine(Root, "conf"));
        File.WriteAllText(Path.Combine(Root, "conf/local.conf"), "MACHINE ??= \"qemux86-64\"\n");
        Directory.CreateDirectory(ImageDir);
        Directory.CreateDirectory(Work);
        var ext = imageTarball[(imageTarball.IndexOf(".tar", StringComparison.Ordinal) + 1)..];
        File.Copy(imageTarball, Path.Combine(ImageDir, $"{Image}-qemux86-64.rootfs.{ext}"));
        Own();
    }

    public void Own()
    {
        if (Run.IsRoot) Run.Program("chown", "-R", $"{Run.NobodyId}:{Run.NobodyId}", Root).ShouldSucceed();
    }

    public string FeedDir(string kind, string arch)
    {
        var d = Path.Combine(Root, "tmp/deploy", kind, arch);
        Directory.CreateDirectory(d);
        return d;
    }

    /// <summary>
    /// An ipk in tmp/deploy/ipk/&lt;arch&gt;, landed as bitbake's deploy step lands it: written beside the feed under a
    /// hidden name, then renamed into place (a rebuild at the same version replaces the file). Returns its path.
    /// </summary>
    public string Ipk(string name, string version, string arch, IEnumerable<TestIpk.Entry> files, string depends = "")
    {
        var feed = FeedDir("ipk", arch);
        var control = $"Package: {name}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: t\n{(depends.Length > 0 ? $"Depends: {depends}\n" : "")}Description: test package {name}\n";
        var staged = Path.Combine(feed, $".{name}.ipk.tmp");
        TestIpk.Write(staged, control, files);
        if (Run.IsRoot) Run.Program("chown", $"{Run.NobodyId}:{Run.NobodyId}", feed, staged).ShouldSucceed();
        var landed = Path.Combine(feed, $"{name}_{version}_{arch}.ipk");
        File.Move(staged, landed, overwrite: true);
        return landed;
    }

    /// <summary>Replaces the image manifest (by rename, as a rebuild writes it): the packages the image wants now.</summary>
    public void Manifest(IEnumerable<string> lines)
    {
        var manifest = Path.Combine(ImageDir, $"{Image}-qemux86-64.rootfs.manifest");
        File.WriteAllLines(manifest + ".tmp", lines);
        if (Run.IsRoot) Run.Program("chown", $"{Run.NobodyId}:{Run.NobodyId}", manifest + ".tmp").ShouldSucceed();
        File.Move(manifest + ".tmp", manifest, overwrite: true);
    }

    public RunResult Update(params string[] extra) => Run.Tool(["update", Image, .. extra], Env, cwd: Dir.Path);

    public RunResult Check() => Run.Tool("check", Export);

    /// <summary>A .deb built by dpkg-deb from a tree: files "path=content;..." (path under /etc marked as conffile when listed).</summary>
    public string Deb(string name, string version, string arch, string files, string extraControl = "", string[]? conffiles = null, string? postinst = null, string? feedArch = null)
    {
        var tree = Path.Combine(Work, $"deb-{name}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(Path.Combine(tree, "DEBIAN"));
        foreach (var spec in files.Split(';', StringSplitOptions.RemoveEmptyEntries))
        {
            var (path, content) = (spec[..spec.IndexOf('=')], spec[(spec.IndexOf('=') + 1)..]);
            var full = Path.Combine(tree, path.TrimStart('/'));
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            File.WriteAllText(full, content);
            if (path.Contains("/bin/")) File.SetUnixFileMode(full, (UnixFileMode)0x1ed);
        }
        File.WriteAllText(Path.Combine(tree, "DEBIAN/control"),
            $"Package: {name}\nVersion: {version}\nArchitecture: {arch}\nMaintainer: Test <t@example.com>\n{extraControl}Description: test package {name}\n a longer text\n .\n second paragraph\n");
        if (conffiles != null) File.WriteAllText(Path.Combine(tree, "DEBIAN/conffiles"), string.Concat(conffiles.Select(c => c + "\n")));
        if (postinst != null)
        {
            File.WriteAllText(Path.Combine(tree, "DEBIAN/postinst"), "#!/bin/sh\n" + postinst + "\n");
            File.SetUnixFileMode(Path.Combine(tree, "DEBIAN/postinst"), (UnixFileMode)0x1ed);
        }
        var outFile = Path.Combine(FeedDir("deb", feedArch ?? arch), $"{name}_{version[(version.IndexOf(':') + 1)..]}_{arch}.deb");
        Run.Program("dpkg-deb", "--build", "--root-owner-group", "-Zgzip", tree, outFile).ShouldSucceed();
        Own();
        return outFile;
    }

    public void Dispose() => Dir.Dispose();
}
