using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Integration.Tests;

/// <summary>
/// `./rootfs-export install`: the launcher publishes the NativeAOT program (minutes when the sources changed,
/// hence EndToEnd), install copies it; the copy then runs as an ordinary user with an empty environment, no
/// dotnet on PATH and no SDK: what bitbake tasks and the PTXdist wrapper get.
/// </summary>
public sealed class InstallTests
{
    private static string DotnetRoot => Path.GetDirectoryName(new FileInfo("/usr/bin/dotnet").ResolveLinkTarget(true)?.FullName ?? "/usr/share/dotnet/dotnet")!;

    [Fact]
    [Trait("Category", "EndToEnd")]
    public void The_installed_program_runs_without_dotnet_in_an_empty_environment()
    {
        using var dir = new ScratchDir("rfe-install");
        var prefix = dir["prefix"];
        var launcher = Path.Combine(Repository.Root, "rootfs-export");
        var install = Run.Program(launcher, ["install", "--prefix", prefix], timeout: TimeSpan.FromMinutes(30)).ShouldSucceed();
        Assert.Contains($"installed {prefix}/bin/rootfs-export", install.Stdout);
        Assert.True(File.Exists(Path.Combine(prefix, "bin/libe_sqlite3.so")));
        Run.Program("chmod", "-R", "a+rX", dir.Path).ShouldSucceed();

        using var build = new SampleBuildCopy();
        var exe = Path.Combine(prefix, "bin/rootfs-export");
        // as root: a mount namespace where the .NET installation is an empty directory, then the ordinary user
        RunResult Bare(params string[] args) => Run.IsRoot
            ? Run.Program("unshare", ["--mount", "--", "sh", "-c", $"mount -t tmpfs none {DotnetRoot} && exec setpriv --reuid={Run.NobodyId} --regid={Run.NobodyId} --clear-groups -- \"$@\"", "sh",
                "env", "-i", "PATH=/usr/bin:/bin", exe, .. args])
            : Run.Program("env", ["-i", "PATH=/usr/bin:/bin", exe, .. args]);
        if (Run.IsRoot) Assert.NotEqual(0, Run.Program("unshare", ["--mount", "--", "sh", "-c", $"mount -t tmpfs none {DotnetRoot} && dotnet --info"]).ExitCode);
        var export = Path.Combine(build.Dir.Path, "export");
        var r = Bare("update", "reference-base-image", "--build-dir", build.Root, "--export", export).ShouldSucceed();
        Assert.Contains("hello-sample 1.0-r0 → 1.1-r0", r.Stdout);
        Assert.Contains("clean:", Bare("check", export).ShouldSucceed().Stdout);
        // the JSON of the boot entry settings is source-generated: it must round-trip in the native program
        Bare("bootspec", export, "--transport", "tcp", "--server", "10.0.0.1").ShouldSucceed();
        Assert.Contains("\"transport\": \"tcp\"", File.ReadAllText(Path.Combine(export, "loader/rootfs-export.json")));
        var again = Bare("update", "reference-base-image", "--build-dir", build.Root, "--export", export).ShouldSucceed();
        Assert.Contains("image up to date", again.Stdout);
    }
}
