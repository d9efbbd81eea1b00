namespace RootfsExport.TestSupport;

/// <summary>
/// Debian's 6.12 kernel for a TCG guest (docs/TEST-RIGS.md): the newest linux-image-6.12.*+deb12-amd64-unsigned
/// apt knows, downloaded once into /var/cache/rootfs-export-tests, with the uncompressed vmlinux and the
/// 9P-over-TCP and virtio-net modules extracted beside it. Nothing of it goes into the repository.
/// </summary>
public static class GuestKernel
{
    /// <summary>
    /// Where the kernel and the rigs built from it are kept between runs; ROOTFS_EXPORT_TEST_CACHE points a run at
    /// another (an empty one shows what a fresh machine does, without taking the shared cache from other runs).
    /// </summary>
    public static readonly string CacheRoot =
        Environment.GetEnvironmentVariable("ROOTFS_EXPORT_TEST_CACHE") is { Length: > 0 } dir ? dir : "/var/cache/rootfs-export-tests";

    /// <summary>Module load order for 9P over a virtio-net TCP connection.</summary>
    public static readonly string[] Modules = ["failover", "net_failover", "virtio_net", "netfs", "9pnet", "9pnet_fd", "9p"];

    private static readonly Lazy<string> _dir = new(Prepare);

    /// <summary>The downloaded linux-image .deb itself (for tests that need more of its modules).</summary>
    public static string Deb => System.IO.Directory.GetFiles(CacheRoot, Path.GetFileName(Directory) + "_*.deb").OrderBy(f => f).Last();

    /// <summary>Directory holding vmlinux and modules/*.ko.</summary>
    public static string Directory => _dir.Value;

    private static string Prepare()
    {
        foreach (var p in new[] { "apt-cache", "apt-get", "dpkg", "zstd", "xz" }) Run.RequirePeer(p);
        var pkg = Run.Shell("apt-cache search --names-only '^linux-image-6\\.12\\.[0-9]+\\+deb12-amd64-unsigned$' | cut -d' ' -f1 | sort -V | tail -1")
            .ShouldSucceed().Stdout.Trim();
        if (pkg.Length == 0) throw new Xunit.Sdk.XunitException("apt knows no linux-image-6.12.*+deb12-amd64-unsigned (is bookworm-security or backports in sources.list? run apt-get update)");
        var dir = Path.Combine(CacheRoot, pkg);
        if (File.Exists(Path.Combine(dir, "ready"))) return dir;
        var script = $$"""
            set -euo pipefail
            mkdir -p '{{CacheRoot}}' && cd '{{CacheRoot}}'
            # test assemblies run in parallel: one downloads and unpacks, the others wait and reuse it
            exec 9>'{{CacheRoot}}/.lock'; flock 9
            [ -f '{{dir}}/ready' ] && exit 0
            ls {{pkg}}_*.deb >/dev/null 2>&1 || timeout 900 apt-get download {{pkg}}
            rm -rf '{{dir}}.tmp' && mkdir -p '{{dir}}.tmp/modules' && cd '{{dir}}.tmp'
            dpkg -x "$(ls -1 ../{{pkg}}_*.deb | tail -1)" root
            cp root/boot/vmlinuz-* vmlinuz
            off=$(grep -abo $'\x28\xb5\x2f\xfd' vmlinuz | head -1 | cut -d: -f1)
            tail -c +$((off+1)) vmlinuz | zstd -dcq > vmlinux || test -s vmlinux
            for m in {{string.Join(' ', Modules)}}; do
              f=$(find root/lib/modules -name "$m.ko*" | head -1)
              test -n "$f" || { echo "module $m missing" >&2; exit 1; }
              case "$f" in *.xz) xz -dc "$f" > modules/$m.ko;; *.zst) zstd -dcq "$f" > modules/$m.ko;; *) cp "$f" modules/$m.ko;; esac
            done
            rm -rf root vmlinuz
            cd .. && rm -rf '{{dir}}' && mv '{{dir}}.tmp' '{{dir}}' && touch '{{dir}}/ready'
            """;
        Run.Shell(script, timeout: TimeSpan.FromMinutes(20)).ShouldSucceed();
        return dir;
    }
}
