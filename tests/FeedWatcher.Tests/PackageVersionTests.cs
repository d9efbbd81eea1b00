using RootfsExport.FeedWatcher;
using Xunit;

namespace RootfsExport.FeedWatcher.Tests;

/// <summary>Version order is dpkg's verrevcmp, which opkg shares.</summary>
public sealed class PackageVersionTests
{
    [Theory]
    [InlineData("1.0~rc1", "1.0")]
    [InlineData("1.0", "1.0a")]
    [InlineData("1.0a", "1.0+x")]
    [InlineData("1.0-r0.9", "1.0-r0.10")]
    [InlineData("1.36.1-r0", "1.36.1-r1")]
    [InlineData("1.36.1-r0", "1:1.0-r0")]
    [InlineData("2.0", "10.0")]
    [InlineData("1.0~~", "1.0~")]
    [InlineData("1.0-1", "1.0.1-1")]
    [InlineData("1.1-r0", "1.10-r0")]
    public void Left_sorts_before_right(string older, string newer)
    {
        Assert.True(PackageVersion.Compare(older, newer) < 0, $"{older} < {newer}");
        Assert.True(PackageVersion.Compare(newer, older) > 0, $"{newer} > {older}");
    }

    [Theory]
    [InlineData("1.0", "1.0")]
    [InlineData("0:1.0", "1.0")]
    [InlineData("1.00", "1.0")]
    [InlineData("1.0-r0", "1.0-r00")]
    public void Equal_versions(string a, string b) => Assert.Equal(0, PackageVersion.Compare(a, b));

    [Fact]
    public void Order_is_antisymmetric_and_transitive_on_random_versions()
    {
        var rng = new Random(42);
        string Gen() => string.Concat(Enumerable.Range(0, rng.Next(1, 6)).Select(_ => "0123456789.~+a-"[rng.Next(15)]));
        var versions = Enumerable.Range(0, 300).Select(_ => (rng.Next(3) == 0 ? "1:" : "") + Gen()).ToList();
        foreach (var a in versions)
        foreach (var b in versions.Take(40))
        {
            Assert.Equal(Math.Sign(PackageVersion.Compare(a, b)), -Math.Sign(PackageVersion.Compare(b, a)));
            foreach (var c in versions.Take(15))
                if (PackageVersion.Compare(a, b) <= 0 && PackageVersion.Compare(b, c) <= 0) Assert.True(PackageVersion.Compare(a, c) <= 0, $"{a} <= {b} <= {c}");
        }
    }

    [Fact]
    public void Dependencies_with_alternatives_and_versions_parse()
    {
        var s = ControlStanza.Parse("Package: x\nVersion: 1\nDepends: libc6 (>= 2.39), busybox | toybox, base-files (= 3.0.14-r0)\n", "test");
        var deps = s.Relations("Depends");
        Assert.Equal(3, deps.Count);
        Assert.Equal(new Relation("libc6", ">=", "2.39"), deps[0][0]);
        Assert.Equal(["busybox", "toybox"], deps[1].Select(r => r.Name));
        Assert.True(deps[2][0].SatisfiedBy("3.0.14-r0"));
        Assert.False(deps[0][0].SatisfiedBy("2.38"));
    }
}
