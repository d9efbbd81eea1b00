using System.Security.Cryptography;
using RootfsExport.TestSupport;
using Xunit;
using Xunit.Abstractions;

namespace RootfsExport.BlockExport.Tests;

/// <summary>
/// Two QEMU guests (Debian's kernel with its nbd and ext4 modules, Debian's nbd-client) boot against one serve
/// --nbd at the same time, through guestfwd: each connects with the nbdroot= our cmdline prints, parsed as
/// Debian's nbd-client initramfs script parses it, mounts /dev/nbd0, sees the owners, modes and capability of
/// files.db, and writes a file of its own. Each sees only its own; the image is unchanged; each board's overlay
/// holds its own write.
/// </summary>
public sealed class NbdGuestTests(BlockFixture fixture, ITestOutputHelper output) : IClassFixture<BlockFixture>
{
    /// <summary>ext4 and its dependencies, crc32c for metadata checksums (the initramfs has no modprobe), nbd.</summary>
    private static readonly string[] BlockModules = ["crc16", "mbcache", "jbd2", "crc32c_generic", "ext4", "nbd"];

    [Fact]
    [Trait("Category", "EndToEnd")]
    public async Task Two_guests_mount_their_own_overlay_of_one_image_over_nbd()
    {
        foreach (var p in new[] { "nbd-client", "getcap", "xz" }) Run.RequirePeer(p);
        using var dir = new ScratchDir();
        var export = fixture.NewExport(dir);
        var image = dir["rootfs.ext4"];
        Run.Tool("image", export, "-o", image).ShouldSucceed();
        var before = SHA256.HashData(File.ReadAllBytes(image));
        var payload = GuestPayload(dir["payload"]);
        int port = FreeBase();

        var logs = new string[2];
        using (var serve = new BackgroundTool(["serve", export, "--nbd", "--port", port.ToString(), "--board", "g0", "--board", "g1"]))
        {
            serve.WaitFor("test:", 60);
            var boots = Enumerable.Range(0, 2).Select(i => Task.Run(() =>
            {
                var line = Run.Tool("cmdline", export, "--transport", "nbd", "--server", TcpGuest.Address(0), "--port", (port + i).ToString(),
                    "--name", $"g{i}", "--console", "none").ShouldSucceed().Stdout.Trim();
                var work = dir[$"guest{i}"];
                Directory.CreateDirectory(work);
                File.WriteAllText(Path.Combine(work, "board-cmdline"), line + "\n");
                logs[i] = TcpGuest.Boot(work, Init($"g{i}"), [port + i], payload.Append(Path.Combine(work, "board-cmdline")), seconds: 420);
            })).ToList();
            await Task.WhenAll(boots);
            for (int i = 0; i < 2; i++) output.WriteLine($"---- guest g{i}\n{logs[i]}");

            for (int i = 0; i < 2; i++)
            {
                Assert.Contains("@@DONE", logs[i]);
                Assert.DoesNotContain("@@FAIL", logs[i]);
                Assert.Contains("@@SHADOW 0:42 640", logs[i]);
                Assert.Contains("@@SU 0:0 4755", logs[i]);
                Assert.Contains("@@NULL c 1:3", logs[i]);
                Assert.Contains("@@CAP /mnt/usr/bin/ping cap_net_raw=ep", logs[i]);
                Assert.Contains($"@@MINE written-by-g{i}@@", logs[i]);
                Assert.DoesNotContain($"written-by-g{1 - i}", logs[i]);
            }
            // each board's overlay still holds its own write, read back over NBD while serve runs
            for (int i = 0; i < 2; i++)
            {
                var copy = dir[$"overlay-g{i}.ext4"];
                Run.Program("nbdcopy", $"nbd://127.0.0.1:{port + i}/g{i}", copy).ShouldSucceed();
                Assert.Equal($"g{i}\n", Debugfs.Cat(copy, $"/etc/written-by-g{i}"));
                Assert.DoesNotContain("written-by", Run.Program("debugfs", "-R", "ls /etc", copy).Stdout.Replace($"written-by-g{i}", ""));
            }
            Assert.Equal(0, serve.Stop());
        }
        Assert.Equal(before, SHA256.HashData(File.ReadAllBytes(image)));
        Assert.DoesNotContain("written-by", Run.Program("debugfs", "-R", "ls /etc", image).Stdout);
    }

    private static string Init(string board) => TcpGuest.Prelude + $$"""

        for m in {{string.Join(' ', BlockModules)}}; do insmod /$m.ko || echo "@@FAIL insmod $m"; done
        # nbdroot= as Debian's nbd-client initramfs script (local-top/nbd) reads it: ipv4:port/name
        for x in $(cat /board-cmdline); do
          case "$x" in nbdroot=*) nbdroot="${x#nbdroot=}";; root=/dev/nbd*) nbddev="${x#root=}";; esac
        done
        nbdsrv=${nbdroot%%[:/]*}; pp=${nbdroot#$nbdsrv}; pp=${pp#:}; nbdport=${pp%%/*}; nbdpath=${pp#$nbdport/}
        run() { /ld-linux-x86-64.so.2 --library-path / "$@"; }
        run /nbd-client $nbdsrv -N $nbdpath $nbdport $nbddev || echo "@@FAIL nbd-client $nbdsrv $nbdpath $nbdport $nbddev"
        mkdir -p /mnt
        if mount -t ext4 $nbddev /mnt; then
          echo "@@SHADOW $(stat -c '%u:%g %a' /mnt/etc/shadow)"
          echo "@@SU $(stat -c '%u:%g %a' /mnt/bin/su)"
          echo "@@NULL $(stat -c '%F' /mnt/dev/null | cut -c1) $(stat -c '%t:%T' /mnt/dev/null)"
          echo "@@CAP $(run /getcap /mnt/usr/bin/ping)"
          echo {{board}} > /mnt/etc/written-by-{{board}}; sync
          sleep 5  # the other guest writes meanwhile
          echo 3 > /proc/sys/vm/drop_caches
          echo "@@MINE $(ls /mnt/etc | grep written-by | tr '\n' ' ' | sed 's/ $//')@@"
          umount /mnt || echo "@@FAIL umount"
        else
          echo "@@FAIL mount"
        fi
        run /nbd-client -d $nbddev
        echo "@@DONE"
        poweroff -f
        """;

    /// <summary>The guest's extra files, flat in the initramfs root: the block modules (decompressed from the
    /// kernel package the rig caches), Debian's nbd-client and getcap with their libraries and the dynamic loader.</summary>
    private static IEnumerable<string> GuestPayload(string into)
    {
        Directory.CreateDirectory(into);
        var mods = string.Join(" ", BlockModules.Select(m => $"'*/{m}.ko.xz'"));
        Run.Shell($$"""
            set -euo pipefail
            cd '{{into}}'
            dpkg-deb --fsys-tarfile '{{GuestKernel.Deb}}' | tar -x --wildcards {{mods}}
            for f in $(find lib -name '*.ko.xz'); do xz -dc "$f" > "$(basename "${f%.xz}")"; done
            rm -rf lib
            for b in $(command -v nbd-client || echo /usr/sbin/nbd-client) $(command -v getcap || echo /usr/sbin/getcap); do
              cp "$b" .
              for l in $(ldd "$b" | grep -o '/[^ ]*'); do cp -L "$l" .; done
            done
            """).ShouldSucceed();
        return Directory.GetFiles(into);
    }

    /// <summary>Two free ports P, P+1 below the ephemeral range (32768+), so no client socket takes one while a board's nbdkit restarts.</summary>
    private static int FreeBase()
    {
        var random = new Random();
        for (int i = 0; i < 200; i++)
        {
            int port = random.Next(20000, 32000);
            if (RootfsExport.BlockExport.NbdServer.IsFree(System.Net.IPAddress.Loopback, port) && RootfsExport.BlockExport.NbdServer.IsFree(System.Net.IPAddress.Loopback, port + 1)) return port;
        }
        throw new InvalidOperationException("no two free ports in 20000..32000");
    }
}
