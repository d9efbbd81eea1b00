using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Integration.Tests;

/// <summary>The PTXdist wrapper runs `update` after `ptxdist images` on a BSP tree.</summary>
public sealed class PtxdistHookTests
{
    [Fact]
    public void Wrapper_updates_the_export_after_ptxdist_images()
    {
        using var dir = new ScratchDir("rfe-ptx");
        var bsp = dir["bsp"];
        var bin = dir["bin"];
        Directory.CreateDirectory(bin);
        // a BSP as ptxdist leaves it: platform-<name>/images/root.tgz
        Run.Program("python3", "-c", $$"""
            import io, os, tarfile
            os.makedirs('{{bsp}}/platform-v7a/images', exist_ok=True)
            os.makedirs('{{bsp}}/configs', exist_ok=True)
            with tarfile.open('{{bsp}}/platform-v7a/images/root.tgz', 'w:gz', format=tarfile.GNU_FORMAT) as t:
                for n, mode in [('./', 0o755), ('./etc', 0o755), ('./dev', 0o755)]:
                    i = tarfile.TarInfo(n); i.type = tarfile.DIRTYPE; i.mode = mode; t.addfile(i)
                data = b'ptx\n'; i = tarfile.TarInfo('./etc/hostname'); i.size = len(data); t.addfile(i, io.BytesIO(data))
                i = tarfile.TarInfo('./dev/console'); i.type = tarfile.CHRTYPE; i.devmajor = 5; i.devminor = 1; i.mode = 0o600; t.addfile(i)
            """).ShouldSucceed();
        File.WriteAllText(Path.Combine(bin, "ptxdist"), "#!/bin/sh\necho \"fake ptxdist $*\"\n");
        File.WriteAllText(Path.Combine(bin, "rootfs-export"), $"#!/bin/sh\nexec dotnet {ToolCopy.Dll} \"$@\"\n");
        Run.Program("chmod", "-R", "a+rx", bin).ShouldSucceed();
        if (Run.IsRoot) Run.Program("chown", "-R", $"{Run.NobodyId}:{Run.NobodyId}", bsp).ShouldSucceed();

        var wrapper = Path.Combine(BitbakeClassTests.Repo, "ptxdist/ptxdist-rootfs-export");
        var env = new Dictionary<string, string> { ["PATH"] = $"{bin}:/usr/local/bin:/usr/bin:/bin", ["BUILDDIR"] = "" };
        var other = Run.Program("bash", [wrapper, "clean"], asUnprivileged: true, env: env, cwd: bsp).ShouldSucceed();
        Assert.DoesNotContain("update root", other.Stdout);

        var r = Run.Program("bash", [wrapper, "images"], asUnprivileged: true, env: env, cwd: bsp).ShouldSucceed();
        Assert.Contains("fake ptxdist images", r.Stdout);
        Assert.Contains("Build: PTXdist", r.Stdout);
        var export = Path.Combine(bsp, "export", "root-v7a");
        Assert.Equal("ptx\n", File.ReadAllText(Path.Combine(export, "etc/hostname")));
        var rows = Run.Program("sqlite3", export + ".pseudo_state/files.db", $"select mode, rdev from files where path = '{export}/dev/console'").ShouldSucceed().Stdout.Trim();
        Assert.Equal("8576|1281", rows);
    }
}
