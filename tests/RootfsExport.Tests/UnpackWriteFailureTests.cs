using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Tests;

/// <summary>
/// A file's content is written on a thread of its own during an unpack; a write that fails there (a full
/// disk) still ends the unpack with one line naming that file, and leaves nothing behind.
/// </summary>
public sealed class UnpackWriteFailureTests
{
    [Fact]
    public void A_full_disk_names_the_file_and_leaves_nothing()
    {
        Assert.True(Run.IsRoot, "this test mounts a small tmpfs in a mount namespace of its own: run it as root (./run-tests does)");
        using var dir = new ScratchDir();
        var tar = dir["big.tar"];
        Run.Program("python3", "-c", $$"""
            import tarfile, io
            t = tarfile.open('{{tar}}', 'w', format=tarfile.PAX_FORMAT)
            i = tarfile.TarInfo('./'); i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)
            for n in range(4):
                data = bytes([n]) * (700 * 1024)
                i = tarfile.TarInfo(f'usr/lib/big{n}'); i.size = len(data); i.mode = 0o644; t.addfile(i, io.BytesIO(data))
            t.close()
            """).ShouldSucceed();
        Run.Program("chmod", "a+r", tar).ShouldSucceed();
        var small = dir["small"];
        Directory.CreateDirectory(small);
        // the mount ends with the namespace: nothing to clean up, whatever happens
        var script = $"mount -t tmpfs -o size=1m,mode=0777 none {small} && " +
                     $"setpriv --reuid={Run.NobodyId} --regid={Run.NobodyId} --clear-groups env HOME=/tmp dotnet {ToolCopy.Dll} unpack {tar} {small}/export; " +
                     $"echo \"exit=$?\"; echo left:; ls -A {small}";
        var r = Run.Program("unshare", ["--mount", "--", "timeout", "300", "sh", "-c", script]);
        Assert.Contains("exit=1", r.Stdout);
        // no export, no state directory, no staging directory (at most the export's lock file)
        var left = r.Stdout[(r.Stdout.IndexOf("left:") + 5)..].Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.All(left, name => Assert.Equal(".export.rfe-lock", name));
        var line = Assert.Single(r.Stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("rootfs-export: error: big.tar: entry 'usr/lib/big", line);
        Assert.Contains("write: No space left on device", line);
    }
}
