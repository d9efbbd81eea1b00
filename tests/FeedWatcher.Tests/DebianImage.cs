using RootfsExport.TestSupport;

namespace RootfsExport.FeedWatcher.Tests;

/// <summary>
/// Real Debian material, made or fetched at test time and cached across runs (nothing is committed): a bookworm
/// `mmdebstrap --variant=minbase` rootfs (merged /usr: bin, lib, sbin are symlinks into usr) and .debs from the
/// machine's apt sources (`apt-get download`), which are newer than the image where security/point updates exist.
/// </summary>
internal static class DebianImage
{
    private const string Cache = "/var/cache/rootfs-export-tests";

    /// <summary>The minbase rootfs as a tar.zst with numeric owners and xattrs, as OE's IMAGE_CMD:tar makes it.</summary>
    public static string MinbaseTarball()
    {
        var image = Path.Combine(Cache, "bookworm-minbase.rootfs.tar.zst");
        if (File.Exists(image)) return image;
        Run.RequirePeer("mmdebstrap");
        Directory.CreateDirectory(Cache);
        Run.Shell($"""
            set -e
            t=$(mktemp -d {Cache}/minbase.XXXXXX)
            mmdebstrap --variant=minbase --mode=root --format=directory bookworm "$t/root" http://deb.debian.org/debian
            tar --numeric-owner --xattrs --xattrs-include='*' --sort=name --format=posix -C "$t/root" -cf - . | zstd -q -T0 -3 -o "$t/image.tar.zst"
            chmod a+r "$t/image.tar.zst"
            mv "$t/image.tar.zst" {image}
            rm -rf "$t"
            """, timeout: TimeSpan.FromMinutes(20)).ShouldSucceed();
        return image;
    }

    /// <summary>The newest candidate .deb of each package (apt-get download), cached by package name.</summary>
    public static List<string> Debs(params string[] packages)
    {
        var dir = Path.Combine(Cache, "debs");
        Directory.CreateDirectory(dir);
        var missing = packages.Where(p => !Directory.EnumerateFiles(dir, $"{p}_*.deb").Any()).ToList();
        if (missing.Count > 0)
            Run.Shell($"cd {dir} && apt-get download {string.Join(' ', missing)}", timeout: TimeSpan.FromMinutes(5)).ShouldSucceed();
        return packages.Select(p => Directory.EnumerateFiles(dir, $"{p}_*.deb").Order().Last()).ToList();
    }
}
