using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.FeedWatcher.Tests;

/// <summary>`update` applying the sample build's ipk feed, as the unprivileged user, checked with real pseudo.</summary>
public sealed class FeedUpdateTests
{
    internal sealed class Build : IDisposable
    {
        public ScratchDir Dir { get; } = new("rfe-feed");
        public string Root => Dir["build"];
        public string Export => Path.Combine(Root, "export", "reference-base-image-qemux86-64");
        public string Feed => Path.Combine(Root, "tmp/deploy/ipk/core2-64");
        public Dictionary<string, string> Env => new() { ["BUILDDIR"] = Root };

        public Build()
        {
            Run.Program("cp", "-a", Repository.SampleBuild, Root).ShouldSucceed();
            Own();
        }

        public void Own()
        {
            if (Run.IsRoot) Run.Program("chown", "-R", $"{Run.NobodyId}:{Run.NobodyId}", Root).ShouldSucceed();
        }

        public RunResult Update(params string[] extra) => Run.Tool(["update", "reference-base-image", .. extra], Env, cwd: Dir.Path);

        /// <summary>Writes an ipk like opkg-build: ar of debian-binary, control.tar.gz, data.tar.gz.</summary>
        public void Ipk(string name, string version, string arch, string files, string depends = "", string conffiles = "", string postinst = "", string dir = "core2-64")
        {
            var outDir = Path.Combine(Root, "tmp/deploy/ipk", dir);
            Run.Program("python3", "-c", $$"""
                import io, os, tarfile, gzip
                def targz(members):
                    raw = io.BytesIO()
                    with tarfile.open(fileobj=raw, mode='w', format=tarfile.GNU_FORMAT) as t:
                        for name, data, mode in members:
                            i = tarfile.TarInfo(name); i.mode = mode
                            if data is None: i.type = tarfile.DIRTYPE; t.addfile(i)
                            else: i.size = len(data); t.addfile(i, io.BytesIO(data))
                    return gzip.compress(raw.getvalue(), mtime=0)
                control = "Package: {{name}}\nVersion: {{version}}\nArchitecture: {{arch}}\nMaintainer: t\nDescription: test\n"
                if "{{depends}}": control += "Depends: {{depends}}\n"
                cm = [("./", None, 0o755), ("./control", control.encode(), 0o644)]
                if "{{conffiles}}": cm.append(("./conffiles", "{{conffiles}}\n".encode(), 0o644))
                if "{{postinst}}": cm.append(("./postinst", b"#!/bin/sh\n{{postinst}}\n", 0o755))
                dm = [("./", None, 0o755)]
                made = set()
                specs = []
                for spec in [s for s in "{{files}}".split(";") if s]:
                    if spec.startswith("@"):  # @N:/dir/prefix = N generated files
                        n, prefix = spec[1:].split(":", 1)
                        specs += [f"{prefix}{k:04d}=content {k}" for k in range(int(n))]
                    else: specs.append(spec)
                for spec in specs:
                    path, content = spec.split("=", 1)
                    parts = path.strip("/").split("/")
                    for k in range(1, len(parts)):
                        d = "./" + "/".join(parts[:k])
                        if d not in made: made.add(d); dm.append((d, None, 0o755))
                    dm.append(("." + path, content.encode(), 0o755 if "/bin/" in path else 0o644))
                out = io.BytesIO(); out.write(b"!<arch>\n")
                for n, data in [("debian-binary", b"2.0\n"), ("control.tar.gz", targz(cm)), ("data.tar.gz", targz(dm))]:
                    out.write(f"{n + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode()); out.write(data)
                    if len(data) % 2: out.write(b"\n")
                os.makedirs("{{outDir}}", exist_ok=True)
                open("{{outDir}}/{{name}}_{{version}}_{{arch}}.ipk", "wb").write(out.getvalue())
                """).ShouldSucceed();
            Own();
        }

        public string Status => File.ReadAllText(Path.Combine(Export, "var/lib/opkg/status"));

        public void Dispose() => Dir.Dispose();
    }

    private static void AssertClean(Build b) => Assert.Contains("clean:", Run.Tool("check", b.Export).ShouldSucceed().Stdout);

    [Fact]
    public void Upgrade_from_the_feed_lands_with_owners_then_nothing_to_do()
    {
        using var b = new Build();
        var first = b.Update().ShouldSucceed().Stdout;
        Assert.Contains("Update from package feeds", first);
        Assert.Contains("Upgrading packages", first);
        Assert.Contains("hello-sample 1.0-r0 → 1.1-r0", first);
        Assert.DoesNotContain("busybox 1.36.1-r0 → 1.36.1-r0", first); // same version, same build: untouched
        Assert.Equal("#!/bin/sh\necho 'hello 1.1'\n", File.ReadAllText(Path.Combine(b.Export, "usr/bin/hello")));
        Assert.Contains("Package: hello-sample\nVersion: 1.1-r0\nDepends: busybox\nStatus: install ok installed\nArchitecture: core2-64\nInstalled-Time: ", b.Status);
        Assert.EndsWith("/usr/bin/hello\n", File.ReadAllText(Path.Combine(b.Export, "var/lib/opkg/info/hello-sample.list")));
        Assert.True(File.Exists(Path.Combine(b.Export, "etc/rootfs-export-updated")));
        AssertClean(b);

        var again = b.Update().ShouldSucceed().Stdout;
        Assert.Contains("image up to date", again);
        Assert.Contains("up to date", again.Split("Update from package feeds")[1]);
    }

    /// <summary>
    /// With no hash recorded (the first update after an image) a same-version package is a rebuild only when its
    /// files differ from the export: a package restored from sstate has an older mtime than the image.
    /// </summary>
    [Fact]
    public void Same_version_of_an_image_package_is_decided_by_content_not_mtime()
    {
        using var b = new Build();
        b.Update("--no-feeds").ShouldSucceed();
        var busybox = Path.Combine(b.Feed, "busybox_1.36.1-r0_core2-64.ipk");
        File.SetLastWriteTimeUtc(busybox, DateTime.UtcNow.AddMinutes(1)); // newer than the image, same content
        Assert.DoesNotContain("busybox 1.36.1-r0 → 1.36.1-r0", b.Update().ShouldSucceed().Stdout);

        using var c = new Build();
        c.Update("--no-feeds").ShouldSucceed();
        File.Delete(Path.Combine(c.Feed, "busybox_1.36.1-r0_core2-64.ipk"));
        c.Ipk("busybox", "1.36.1-r0", "core2-64", "/bin/busybox=rebuilt");
        File.SetLastWriteTimeUtc(Path.Combine(c.Feed, "busybox_1.36.1-r0_core2-64.ipk"), new DateTime(2001, 1, 1, 0, 0, 0, DateTimeKind.Utc)); // from sstate
        Assert.Contains("busybox 1.36.1-r0 → 1.36.1-r0", c.Update().ShouldSucceed().Stdout);
        Assert.Equal("rebuilt", File.ReadAllText(Path.Combine(c.Export, "bin/busybox")));
    }

    [Fact]
    public void Install_with_dependency_removed_file_rebuild_and_downgrade()
    {
        using var b = new Build();
        b.Update().ShouldSucceed();
        b.Ipk("libgreet", "2.0-r0", "core2-64", "/usr/lib/libgreet.so.2=lib2");
        b.Ipk("greeter", "1.0-r0", "core2-64", "/usr/bin/greeter=v1;/usr/share/greeter/old.txt=old", depends: "libgreet (>= 2.0)");
        var install = b.Update("--install", "greeter").ShouldSucceed().Stdout;
        Assert.Contains("Installing new packages", install);
        Assert.Contains("  libgreet 2.0-r0", install);
        Assert.Contains("  greeter 1.0-r0", install);
        Assert.Contains("Package: libgreet\nVersion: 2.0-r0\nStatus: install ok installed\nArchitecture: core2-64\nInstalled-Time: ", b.Status);
        Assert.Contains("Auto-Installed: yes", b.Status);
        Assert.True(File.Exists(Path.Combine(b.Export, "usr/share/greeter/old.txt")));

        // a new version without old.txt: the file goes
        File.Delete(Path.Combine(b.Feed, "greeter_1.0-r0_core2-64.ipk"));
        b.Ipk("greeter", "1.1-r0", "core2-64", "/usr/bin/greeter=v2", depends: "libgreet (>= 2.0)");
        var upgrade = b.Update("--install", "greeter").ShouldSucceed().Stdout;
        Assert.Contains("greeter 1.0-r0 → 1.1-r0", upgrade);
        Assert.False(File.Exists(Path.Combine(b.Export, "usr/share/greeter/old.txt")));
        Assert.Equal("v2", File.ReadAllText(Path.Combine(b.Export, "usr/bin/greeter")));

        // same version rebuilt with other content (no PR server): applied again
        Thread.Sleep(1100);
        File.Delete(Path.Combine(b.Feed, "greeter_1.1-r0_core2-64.ipk"));
        b.Ipk("greeter", "1.1-r0", "core2-64", "/usr/bin/greeter=v2-rebuilt", depends: "libgreet (>= 2.0)");
        Assert.Contains("greeter 1.1-r0 → 1.1-r0", b.Update().ShouldSucceed().Stdout);
        Assert.Equal("v2-rebuilt", File.ReadAllText(Path.Combine(b.Export, "usr/bin/greeter")));

        // an older version in the feed is not installed over a newer one
        File.Delete(Path.Combine(b.Feed, "greeter_1.1-r0_core2-64.ipk"));
        b.Ipk("greeter", "1.0-r0", "core2-64", "/usr/bin/greeter=v1");
        var down = b.Update().ShouldSucceed().Stdout;
        Assert.Contains("greeter: feed has 1.0-r0, older than installed 1.1-r0: downgrade refused", down);
        Assert.Equal("v2-rebuilt", File.ReadAllText(Path.Combine(b.Export, "usr/bin/greeter")));
        AssertClean(b);
    }

    [Fact]
    public void Machine_arch_beats_a_higher_version_in_a_tune_arch()
    {
        using var b = new Build();
        b.Update().ShouldSucceed();
        b.Ipk("tool", "9.0-r0", "core2-64", "/usr/bin/tool=tune");
        b.Ipk("tool", "1.0-r0", "qemux86_64", "/usr/bin/tool=machine", dir: "qemux86_64");
        b.Update("--install", "tool").ShouldSucceed();
        Assert.Equal("machine", File.ReadAllText(Path.Combine(b.Export, "usr/bin/tool")));
    }

    [Fact]
    public void Modified_conffile_is_kept_and_the_new_one_written_beside_it()
    {
        using var b = new Build();
        b.Update().ShouldSucceed();
        b.Ipk("daemon", "1.0-r0", "core2-64", "/etc/daemon.conf=port=1", conffiles: "/etc/daemon.conf");
        b.Update("--install", "daemon").ShouldSucceed();
        Assert.Matches(@"Conffiles:\n /etc/daemon.conf [0-9a-f]{32}\n", b.Status);
        Run.Shell($"echo 'port=2 # mine' > {b.Export}/etc/daemon.conf", asUnprivileged: true).ShouldSucceed();
        File.Delete(Path.Combine(b.Feed, "daemon_1.0-r0_core2-64.ipk"));
        b.Ipk("daemon", "1.1-r0", "core2-64", "/etc/daemon.conf=port=3", conffiles: "/etc/daemon.conf", postinst: "echo configure");
        var output = b.Update().ShouldSucceed().Stdout;
        Assert.Contains("kept your /etc/daemon.conf, new one is /etc/daemon.conf-opkg", output);
        Assert.Contains("postinst not run on the host: left 'install ok unpacked' for run-postinsts/opkg configure", output);
        Assert.Contains("to finish on the board (opkg configure, run by run-postinsts at boot): daemon", output);
        Assert.Equal("port=2 # mine\n", File.ReadAllText(Path.Combine(b.Export, "etc/daemon.conf")));
        Assert.Equal("port=3", File.ReadAllText(Path.Combine(b.Export, "etc/daemon.conf-opkg")));
        Assert.Contains("Package: daemon\nVersion: 1.1-r0\nStatus: install ok unpacked", b.Status);
        Assert.True(File.Exists(Path.Combine(b.Export, "var/lib/opkg/info/daemon.postinst")));
        AssertClean(b);
    }

    [Fact]
    public void Kill_9_in_the_middle_of_an_update_converges_on_the_next_run()
    {
        using var b = new Build();
        b.Update().ShouldSucceed();
        var journal = Path.Combine(b.Export + ".pseudo_state", "rootfs-export-feed.journal");
        // kill at growing delays until one lands while the package is being applied; a run that finished
        // first gets a newer version to upgrade to, so the next attempt has something to interrupt again
        int version = 0;
        b.Ipk("big", $"1.{version}-r0", "core2-64", "@4000:/usr/share/big/f");
        bool killedMidPackage = false;
        foreach (var delayMs in new[] { 200, 350, 500, 650, 800, 1000, 1300, 1700, 2200, 3000, 4000, 5000 })
        {
            using (var p = new BackgroundTool(["update", "reference-base-image", "--install", "big"], new Dictionary<string, string> { ["BUILDDIR"] = b.Root }, b.Dir.Path))
            {
                if (!p.WaitForExit(delayMs)) p.Kill(); // SIGKILL at an arbitrary point
            }
            if (File.Exists(journal)) { killedMidPackage = true; break; }
            if (File.Exists(Path.Combine(b.Export, "var/lib/opkg/status")) && b.Status.Contains($"Package: big\nVersion: 1.{version}-r0"))
            {
                File.Delete(Path.Combine(b.Feed, $"big_1.{version}-r0_core2-64.ipk"));
                version++;
                b.Ipk("big", $"1.{version}-r0", "core2-64", $"@4000:/usr/share/big/v{version}-");
            }
        }
        Assert.True(killedMidPackage, "no kill landed while the package was being applied");
        var rerun = b.Update().ShouldSucceed().Stdout; // no --install: the journal alone brings it back
        Assert.Contains("big", rerun);
        var expectedPrefix = version == 0 ? "f" : $"v{version}-";
        Assert.Equal(4000, Directory.GetFiles(Path.Combine(b.Export, "usr/share/big"), expectedPrefix + "*").Length);
        Assert.Equal(4000, Directory.GetFiles(Path.Combine(b.Export, "usr/share/big")).Length); // the old version's files are gone
        Assert.Contains($"Package: big\nVersion: 1.{version}-r0\nStatus: install ok installed", b.Status);
        AssertClean(b);
        Assert.Contains("up to date", b.Update("--install", "big").ShouldSucceed().Stdout);
    }

    [Fact]
    public void A_package_the_image_no_longer_wants_is_removed()
    {
        using var b = new Build();
        b.Update().ShouldSucceed();
        var manifest = Path.Combine(b.Root, "tmp/deploy/images/qemux86-64/reference-base-image-qemux86-64.rootfs.manifest");
        var real = Path.Combine(Path.GetDirectoryName(manifest)!, new FileInfo(manifest).LinkTarget!);
        Run.Shell($"grep -v '^hello-sample ' {real} > {real}.new && mv {real}.new {real}", asUnprivileged: true).ShouldSucceed();
        var output = b.Update().ShouldSucceed().Stdout;
        Assert.Contains("Removing\n  hello-sample 1.1-r0", output);
        Assert.Contains("1 removed", output);
        Assert.False(File.Exists(Path.Combine(b.Export, "usr/bin/hello")));
        Assert.DoesNotContain("Package: hello-sample", b.Status);
        Assert.False(File.Exists(Path.Combine(b.Export, "var/lib/opkg/info/hello-sample.list")));
        Assert.True(File.Exists(Path.Combine(b.Export, "bin/busybox")));
        AssertClean(b);
    }

    [Fact]
    public void Missing_dependency_is_reported_and_nothing_is_installed()
    {
        using var b = new Build();
        b.Update().ShouldSucceed();
        b.Ipk("needy", "1.0-r0", "core2-64", "/usr/bin/needy=x", depends: "does-not-exist");
        var r = b.Update("--install", "needy");
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("does-not-exist: needed by needy, not in the feed", r.Stdout);
        Assert.False(File.Exists(Path.Combine(b.Export, "usr/bin/needy")));
        Assert.DoesNotContain("Package: needy", b.Status);
        AssertClean(b);
    }

    [Fact]
    public void Corrupt_package_is_named_and_the_export_is_untouched()
    {
        using var b = new Build();
        b.Update().ShouldSucceed();
        var db = File.ReadAllBytes(Path.Combine(b.Export + ".pseudo_state", "files.db"));
        File.WriteAllBytes(Path.Combine(b.Feed, "broken_1.0-r0_core2-64.ipk"), "!<arch>\ngarbage that is not an ar member header at all, definitely"u8.ToArray());
        File.SetLastWriteTimeUtc(Path.Combine(b.Feed, "broken_1.0-r0_core2-64.ipk"), DateTime.UtcNow.AddMinutes(-1));
        b.Own();
        var r = b.Update();
        Assert.Equal(1, r.ExitCode);
        Assert.Contains("broken_1.0-r0_core2-64.ipk: corrupt ar header", r.Stderr);
        Assert.Equal(db, File.ReadAllBytes(Path.Combine(b.Export + ".pseudo_state", "files.db")));
        AssertClean(b);
    }
}
