using RootfsExport.TestSupport;
using Xunit;

namespace RootfsExport.BlockExport.Tests;

/// <summary>update rebuilds an image built from the export when the export changed, and only then.</summary>
public sealed class UpdateTests(BlockFixture fixture) : IClassFixture<BlockFixture>
{
    [Fact]
    public void Update_rebuilds_the_image_only_when_the_export_changed()
    {
        using var dir = new ScratchDir();
        var build = dir["build"];
        Run.Program("cp", "-a", Repository.SampleBuild, build).ShouldSucceed();
        if (Run.IsRoot) Run.Program("chown", "-R", $"{Run.NobodyId}:{Run.NobodyId}", build).ShouldSucceed();
        var env = new Dictionary<string, string> { ["BUILDDIR"] = build };
        Run.Tool(["update", "reference-base-image", "--no-feeds"], env, cwd: dir.Path).ShouldSucceed();
        var export = Path.Combine(build, "export", "reference-base-image-qemux86-64");
        var image = dir["rootfs.ext4"];
        Run.Tool("image", export, "-o", image).ShouldSucceed();
        var built = File.GetLastWriteTimeUtc(image);

        var same = Run.Tool(["update", "reference-base-image", "--no-feeds"], env, cwd: dir.Path).ShouldSucceed();
        Assert.Contains($"Image: {image} (up to date)", same.Stdout);
        Assert.Equal(built, File.GetLastWriteTimeUtc(image));

        // a newer rootfs lands: the export is replaced, so the image is rebuilt from it
        var images = Path.Combine(build, "tmp/deploy/images/qemux86-64");
        var newer = Path.Combine(images, "reference-base-image-qemux86-64.rootfs-20261122120000.tar.gz");
        File.Copy(fixture.TarGz, newer);
        File.Delete(Path.Combine(images, "reference-base-image-qemux86-64.rootfs.tar.zst"));
        File.CreateSymbolicLink(Path.Combine(images, "reference-base-image-qemux86-64.rootfs.tar.gz"), Path.GetFileName(newer));
        if (Run.IsRoot) Run.Program("chown", "-R", $"{Run.NobodyId}:{Run.NobodyId}", images).ShouldSucceed();
        var changed = Run.Tool(["update", "reference-base-image", "--no-feeds"], env, cwd: dir.Path).ShouldSucceed();
        Assert.Contains($"Image: {image} (rebuilt", changed.Stdout);
        Assert.Contains("Mode:  04755", Debugfs.Stat(image, "/bin/su"));

        // a change of ownership alone (files.db, not the tree) counts too
        Run.Tool("exec", export, "--", "chown", "7:7", Path.Combine(export, "etc/hostname")).ShouldSucceed();
        Assert.Contains("(rebuilt", Run.Tool(["update", "reference-base-image", "--no-feeds"], env, cwd: dir.Path).ShouldSucceed().Stdout);
        Assert.Contains("User:     7   Group:     7", Debugfs.Stat(image, "/etc/hostname"));
    }
}
