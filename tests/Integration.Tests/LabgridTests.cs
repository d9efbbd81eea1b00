using RootfsExport.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace RootfsExport.Integration.Tests;

/// <summary>
/// The labgrid package (labgrid/, docs/LABGRID.md) and its pytest tests, run against Debian's labgrid with Debian's
/// python (/usr/bin/python3; a python on PATH from elsewhere does not see python3-labgrid). The driver runs this
/// build's rootfs-export as uid 65534.
/// </summary>
public sealed class LabgridTests(ITestOutputHelper output)
{
    internal static string PackageDir => Path.Combine(Repository.Root, "labgrid");

    internal static RunResult Pytest(string selection, IDictionary<string, string>? extra = null, TimeSpan? timeout = null)
    {
        var env = new Dictionary<string, string>
        {
            ["ROOTFS_EXPORT_COMMAND"] = $"dotnet {ToolCopy.Dll}",
            ["PYTHONDONTWRITEBYTECODE"] = "1",
            ["HOME"] = "/tmp",
        };
        if (extra != null) foreach (var (k, v) in extra) env[k] = v;
        return Run.Program("/usr/bin/python3", ["-m", "pytest", "-q", "-rs", "-m", selection, "tests"], env: env, cwd: PackageDir,
            timeout: timeout ?? TimeSpan.FromMinutes(10));
    }

    [Fact]
    public void The_package_tests_pass_against_Debians_labgrid()
    {
        Run.RequirePeer("diodcat");
        Assert.True(File.Exists("/usr/bin/python3"), "Debian's python3 is missing; ./run-tests installs it (tests/labgrid/apt-packages)");
        var r = Pytest("not e2e");
        output.WriteLine(r.All);
        r.ShouldSucceed();
        Assert.Matches(@"\d+ passed", r.Stdout);
    }
}
