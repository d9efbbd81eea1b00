using FsCheck;
using FsCheck.Fluent;
using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.FeedWatcher.Tests;

/// <summary>The pure pieces: planning decisions, control stanza round trips, dpkg's relation syntax, and version order against dpkg itself.</summary>
public sealed class PlannerTests
{
    private static (FeedEntry, int) Feed(string name, string version, int priority = 3, string? depends = null, string? provides = null, string sha = "s", long mtime = 1) =>
        (new FeedEntry($"/feed/{name}_{version}.ipk", 1, mtime, name, version, "a", sha, depends, provides), priority);

    private static ControlStanza Installed(string name, string version, string? provides = null)
    {
        var s = ControlStanza.Parse($"Package: {name}\nVersion: {version}\nStatus: install ok installed\nArchitecture: a\n", "t");
        if (provides != null) s["Provides"] = provides;
        return s;
    }

    private static Planner Plan(IEnumerable<ControlStanza> installed, IEnumerable<(FeedEntry, int)> feed, Dictionary<string, string>? recorded = null, params string[] want)
    {
        var p = new Planner(installed.ToList(), feed, recorded ?? new(), _ => false);
        foreach (var w in want) p.Want(w, true);
        return p;
    }

    /// <summary>opkg's pkg_hash_fetch_unsatisfied_dependencies collects every unresolved dependency, and opkg names them all.</summary>
    [Fact]
    public void Install_names_every_missing_dependency_not_only_the_first()
    {
        var p = Plan([], [Feed("app", "1.0", depends: "liba, libb (>= 2), libc"), Feed("libb", "1.0"), Feed("libc", "1.0")], null, "app");
        Assert.Contains("liba: needed by app, not in the feed", p.Problems);
        Assert.Contains("libb: app needs >= 2, the feed has 1.0", p.Problems);
        Assert.Contains("app 1.0: not applied, a dependency cannot be resolved", p.Problems);
        Assert.DoesNotContain(p.Steps, s => s.Package.Name == "app");
    }

    [Fact]
    public void Higher_arch_priority_beats_a_higher_version()
    {
        var p = Plan([], [Feed("tool", "9.0", priority: 3), Feed("tool", "1.0", priority: 4), Feed("tool", "5.0", priority: 0)], null, "tool");
        Assert.Equal("1.0", Assert.Single(p.Steps).Package.Version);
    }

    [Fact]
    public void Within_one_arch_the_newest_version_wins_with_epochs_and_tildes()
    {
        var p = Plan([], [Feed("x", "2.0"), Feed("x", "1:1.0"), Feed("x", "1:1.0~rc1")], null, "x");
        Assert.Equal("1:1.0", Assert.Single(p.Steps).Package.Version);
    }

    [Fact]
    public void Dependencies_come_first_alternatives_fall_back_and_provides_resolve()
    {
        var p = Plan([Installed("libc", "2.39")],
        [
            Feed("app", "1.0", depends: "libc (>= 2.30), missing-one | libz (>= 1.2), virtual-sh"),
            Feed("libz", "1.3"),
            Feed("dash", "0.5", provides: "virtual-sh"),
        ], null, "app");
        Assert.Empty(p.Problems);
        Assert.Equal(["libz", "dash", "app"], p.Steps.Select(s => s.Package.Name));
        Assert.True(p.Steps[0].AutoInstalled);
        Assert.False(p.Steps[2].AutoInstalled);
    }

    [Fact]
    public void Unresolvable_or_too_old_dependencies_are_reported_and_nothing_is_planned()
    {
        var p = Plan([], [Feed("app", "1.0", depends: "lib (>= 2.0)"), Feed("lib", "1.5"), Feed("other", "1.0", depends: "ghost")], null, "app", "other");
        Assert.Empty(p.Steps);
        Assert.Contains("lib: app needs >= 2.0, the feed has 1.5", p.Problems);
        Assert.Contains("ghost: needed by other, not in the feed", p.Problems);
        Assert.Contains("app 1.0: not applied, a dependency cannot be resolved", p.Problems);
    }

    [Fact]
    public void Upgrade_rebuild_downgrade_and_unchanged()
    {
        var installed = new[] { Installed("up", "1.0"), Installed("same", "1.0"), Installed("rebuilt", "1.0"), Installed("down", "2.0") };
        var recorded = new Dictionary<string, string> { ["same"] = "sha-same", ["rebuilt"] = "sha-old", ["down"] = "x" };
        var p = Plan(installed, [Feed("up", "1.1"), Feed("same", "1.0", sha: "sha-same"), Feed("rebuilt", "1.0", sha: "sha-new"), Feed("down", "1.9")], recorded,
            "up", "same", "rebuilt", "down");
        Assert.Equal(["up", "rebuilt"], p.Steps.Select(s => s.Package.Name));
        Assert.Contains("down: feed has 1.9, older than installed 2.0: downgrade refused", p.Problems);
        Assert.Equal("sha-same", p.Confirmed["same"]);
    }

    [Fact]
    public void Dependency_cycles_terminate()
    {
        var p = Plan([], [Feed("a", "1", depends: "b"), Feed("b", "1", depends: "a")], null, "a");
        Assert.Equal(["b", "a"], p.Steps.Select(s => s.Package.Name));
    }

    [Fact]
    public void Control_stanzas_round_trip_with_continuation_lines_and_field_order()
    {
        const string text = "Package: x\nVersion: 1:2.0-r0\nDescription: short\n long line\n .\n more\nConffiles:\n /etc/a 0123\n /etc/b 4567\nZ-Custom: v\n";
        var all = ControlStanza.ParseAll(text + "\n" + text.Replace("Package: x", "Package: y"), "t");
        Assert.Equal(2, all.Count);
        Assert.Equal(text, all[0].ToString());
        Assert.Equal("0123", PackageState.Conffiles(all[0])["/etc/a"]);
    }

    [Theory]
    [InlineData("a(>=1) ,b|c (<< 2)", "a (>= 1), b | c (<< 2)")]
    [InlineData("libc6 (>= 2.34), x (< 3)", "libc6 (>= 2.34), x (<= 3)")]
    [InlineData("a:any (>= 1.0)", "a:any (>= 1.0)")]
    public void Dpkg_relation_syntax_is_normalised(string input, string expected) => Assert.Equal(expected, DpkgState.NormaliseRelations(input));

    /// <summary>Random versions (epochs, revisions, '~', letters, punctuation) ordered like `dpkg --compare-versions`.</summary>
    [Fact]
    public void Version_order_matches_dpkg_compare_versions()
    {
        Run.RequirePeer("dpkg");
        var part = Gen.Elements("0", "1", "9", "10", "01", "a", "b", "z", "A", ".", "+", "~", "~~", "rc", "r0", "r0.1");
        var upstream = Gen.Elements("0", "1", "2", "10").SelectMany(first => Gen.ListOf(part).Select(l => first + string.Concat(l.Take(5))));
        var version = from epoch in Gen.Elements("", "", "1:", "2:")
                      from up in upstream
                      from rev in Gen.Elements("", "-1", "-r0", "-r0.1", "-0~bpo1", "-1a")
                      select epoch + up + rev;
        var pairs = Gen.Zip(version, version).Sample(10, new Rnd(1234UL), 400).ToList(); // fixed seed: reproducible
        var script = "while read a b; do if dpkg --compare-versions \"$a\" lt \"$b\" 2>/dev/null; then echo -1; elif dpkg --compare-versions \"$a\" eq \"$b\" 2>/dev/null; then echo 0; else echo 1; fi; done";
        var theirs = Run.Program("bash", ["-c", script], stdin: string.Concat(pairs.Select(p => $"{p.Item1} {p.Item2}\n"))).ShouldSucceed()
            .Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(int.Parse).ToList();
        Assert.Equal(pairs.Count, theirs.Count);
        for (int i = 0; i < pairs.Count; i++)
            Assert.True(theirs[i] == Math.Sign(PackageVersion.Compare(pairs[i].Item1, pairs[i].Item2)), $"{pairs[i].Item1} vs {pairs[i].Item2}: dpkg says {theirs[i]}");
    }

    /// <summary>Examples from Debian Policy §5.6.12 and dpkg's own test suite (t-version.c).</summary>
    [Theory]
    [InlineData("1.0~rc1-1", "1.0-1")]
    [InlineData("1.0-1", "1.0+b1-1")]
    [InlineData("0:1.0", "1:0.1")]
    [InlineData("1.2.3", "1.2.3a")]
    [InlineData("1.2.3~", "1.2.3")]
    [InlineData("1.0-1~bpo1", "1.0-1")]
    [InlineData("2.30-1", "2.30-1+deb12u1")]
    [InlineData("1:1.35.0-4+deb12u1", "1:1.35.0-4+deb12u1+b1")]
    [InlineData("0.9", "0.10")]
    [InlineData("a", "b")]
    public void Debian_examples(string older, string newer) => Assert.True(PackageVersion.Compare(older, newer) < 0, $"{older} < {newer}");
}
