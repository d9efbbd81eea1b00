using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.Integration.Tests;

/// <summary>
/// The launcher's decision to rebuild, on a copy of it in a tree shaped like the repository with a stand-in
/// `dotnet` that logs its calls (a real publish takes minutes; InstallTests does one).
/// </summary>
public sealed class LauncherTests
{
    private sealed class Tree : IDisposable
    {
        public ScratchDir Dir { get; } = new("rfe-launcher");
        public string Root => Dir["repo"];
        public string Calls => Dir["dotnet.log"];

        public Tree()
        {
            Directory.CreateDirectory(Path.Combine(Root, "src/RootfsExport/obj/Release/net10.0/linux-x64"));
            Directory.CreateDirectory(Path.Combine(Root, ".build/rootfs-export"));
            Directory.CreateDirectory(Dir["bin"]);
            File.Copy(Path.Combine(Repository.Root, "rootfs-export"), Path.Combine(Root, "rootfs-export"));
            File.WriteAllText(Path.Combine(Root, "src/RootfsExport/Program.cs"), "// source\n");
            File.WriteAllText(Path.Combine(Root, "Directory.Build.props"), "<Project />\n");
            File.WriteAllText(Path.Combine(Root, "Directory.Packages.props"), "<Project />\n");
            // the program a publish leaves, and the stand-in dotnet that "publishes" by logging
            File.WriteAllText(Path.Combine(Root, ".build/rootfs-export/rootfs-export"), "#!/bin/sh\necho \"native $*\"\n");
            File.WriteAllText(Dir["bin/dotnet"], $"#!/bin/sh\necho \"$*\" >> {Calls}\n");
            Run.Program("chmod", "-R", "a+rwX", Dir.Path).ShouldSucceed();
            Run.Program("chmod", "a+x", Path.Combine(Root, "rootfs-export"), Path.Combine(Root, ".build/rootfs-export/rootfs-export"), Dir["bin/dotnet"]).ShouldSucceed();
            Age(Path.Combine(Root, "src/RootfsExport/Program.cs"), Path.Combine(Root, "Directory.Build.props"), Path.Combine(Root, "Directory.Packages.props"));
            File.WriteAllText(Path.Combine(Root, ".build/rootfs-export/.built"), "");
            File.SetLastWriteTimeUtc(Path.Combine(Root, ".build/rootfs-export/.built"), DateTime.UtcNow.AddMinutes(-5));
        }

        public static void Age(params string[] files)
        {
            foreach (var f in files) File.SetLastWriteTimeUtc(f, DateTime.UtcNow.AddMinutes(-10));
        }

        public RunResult Launch(bool asUnprivileged = false) =>
            Run.Program(Path.Combine(Root, "rootfs-export"), ["--help"], asUnprivileged,
                new Dictionary<string, string> { ["PATH"] = $"{Dir["bin"]}:/usr/bin:/bin" });

        public string[] DotnetCalls => File.Exists(Calls) ? File.ReadAllLines(Calls) : [];

        public void Dispose() => Dir.Dispose();
    }

    [Fact]
    public void Generated_files_under_obj_do_not_count_as_sources()
    {
        using var t = new Tree();
        // what every `dotnet publish -r ...` rewrites
        File.WriteAllText(Path.Combine(t.Root, "src/RootfsExport/obj/Release/net10.0/linux-x64/RootfsExport.AssemblyInfo.cs"), "// generated\n");
        Assert.Equal("native --help\n", t.Launch().ShouldSucceed().Stdout);
        Assert.Empty(t.DotnetCalls);

        // a real source change publishes the native program
        File.WriteAllText(Path.Combine(t.Root, "src/RootfsExport/Program.cs"), "// changed\n");
        var r = t.Launch().ShouldSucceed();
        Assert.Contains("publishing the native program", r.Stderr);
        Assert.Matches(@"^publish .*/src/RootfsExport/RootfsExport.csproj -c Release -r linux-x64 -o .*/\.build/rootfs-export", Assert.Single(t.DotnetCalls));
        Assert.Equal("native --help\n", r.Stdout);
    }

    [Fact]
    public void A_user_who_cannot_write_build_runs_the_existing_program()
    {
        if (!Run.IsRoot) return; // needs a second user: the tree belongs to root, the launcher runs as 65534
        using var t = new Tree();
        Run.Program("chmod", "-R", "go-w", t.Root).ShouldSucceed();
        Assert.Equal("native --help\n", t.Launch(asUnprivileged: true).ShouldSucceed().Stdout);
        File.WriteAllText(Path.Combine(t.Root, "src/RootfsExport/Program.cs"), "// changed\n");
        var stale = t.Launch(asUnprivileged: true).ShouldSucceed();
        Assert.Contains("is not writable; running the existing build", stale.Stderr);
        Assert.Equal("native --help\n", stale.Stdout);
        Assert.Empty(t.DotnetCalls);
    }
}
