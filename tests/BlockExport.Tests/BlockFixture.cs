using RootfsExport.TestSupport;

namespace RootfsExport.BlockExport.Tests;

/// <summary>
/// A root-built rootfs with the ownership a real one has (shadow 0:42 0640, setuid su, ping's capability, device
/// nodes, a FIFO, a hard link, a user's home), tarred by GNU tar with xattrs and unpacked by our tool as uid 65534.
/// </summary>
public sealed class BlockFixture : IDisposable
{
    public ScratchDir Dir { get; } = new("rfe-block");
    public string TarGz => Dir["rootfs.tar.gz"];

    public BlockFixture()
    {
        if (!Run.IsRoot) throw new Xunit.Sdk.XunitException("the fixture is built as real root (mknod, chown, setcap): run ./run-tests as root, as CI does");
        var r = Dir["rootfs"];
        Run.Shell($"""
            set -e
            umask 022
            mkdir -p {r}/bin {r}/dev {r}/etc {r}/usr/bin {r}/home {r}/boot/firmware/overlays
            echo block > {r}/etc/hostname
            ln {r}/etc/hostname {r}/etc/hostname.hard
            printf 'root:x:0:0:root:/root:/bin/sh\n' > {r}/etc/passwd
            echo secret > {r}/etc/shadow; chmod 640 {r}/etc/shadow; chown 0:42 {r}/etc/shadow
            cp /bin/true {r}/bin/su; chmod 4755 {r}/bin/su
            cp /bin/true {r}/usr/bin/ping; setcap cap_net_raw+ep {r}/usr/bin/ping
            mknod {r}/dev/null c 1 3; chmod 666 {r}/dev/null
            mknod {r}/dev/sda b 8 0; chown 0:6 {r}/dev/sda; chmod 660 {r}/dev/sda
            mkfifo {r}/dev/initctl; chmod 600 {r}/dev/initctl
            ln -s su {r}/bin/sx
            mkdir {r}/home/user; chown 1000:1000 {r}/home/user; chmod 700 {r}/home/user
            head -c 300000 /dev/urandom > {r}/usr/bin/blob
            echo kernel > {r}/boot/Image-6.6.1
            echo start4 > {r}/boot/firmware/start4.elf; echo cfg > {r}/boot/firmware/config.txt; echo dtbo > {r}/boot/firmware/overlays/x.dtbo
            touch -d @1704164645 {r}/usr/bin/blob
            tar --numeric-owner --xattrs --xattrs-include='*' -cpzf {TarGz} -C {r} .
            chmod a+r {TarGz}
            """).ShouldSucceed();
    }

    /// <summary>A fresh export of the fixture in a scratch directory (unpacked by the tool as 65534).</summary>
    public string NewExport(ScratchDir dir, string name = "export")
    {
        var export = dir[name];
        Run.Tool("unpack", TarGz, export).ShouldSucceed();
        return export;
    }

    public void Dispose() => Dir.Dispose();
}

/// <summary>e2fsprogs as the oracle: what an image holds, read with debugfs.</summary>
public static class Debugfs
{
    public static string Stat(string image, string path) => Run.Program("debugfs", "-R", $"stat {path}", image).ShouldSucceed().Stdout;

    public static string Xattrs(string image, string path) => Run.Program("debugfs", "-R", $"ea_list {path}", image).ShouldSucceed().Stdout;

    public static string Cat(string image, string path) => Run.Program("debugfs", "-R", $"cat {path}", image).ShouldSucceed().Stdout;
}
