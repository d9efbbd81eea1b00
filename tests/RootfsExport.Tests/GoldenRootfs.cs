using RootfsExport.TestSupport;

namespace RootfsExport.Tests;

/// <summary>
/// The acceptance fixture: a rootfs built by real root with every kind of ownership a rootfs has, packed
/// by GNU tar with xattrs and ACLs, as OE does with IMAGE_CMD_TAR = "tar --xattrs".
/// </summary>
public sealed class GoldenRootfs : IDisposable
{
    public ScratchDir Dir { get; } = new("rfe-golden");
    public string TarGz => Dir["rootfs.tar.gz"];

    public GoldenRootfs()
    {
        if (!Run.IsRoot) throw new Xunit.Sdk.XunitException("the golden tarball is built as real root (mknod, chown, setcap): run ./run-tests as root, as CI does");
        var r = Dir["rootfs"];
        Run.Shell($"""
            set -e
            umask 022
            mkdir -p {r}/bin {r}/dev {r}/etc {r}/usr/bin {r}/home {r}/data/acl {r}/sgid
            echo golden > {r}/etc/hostname
            ln {r}/etc/hostname {r}/etc/hostname.hard
            setfattr -n user.comment -v "hi there" {r}/etc/hostname
            printf 'root:x:0:0:root:/root:/bin/sh\n' > {r}/etc/passwd
            echo secret > {r}/etc/shadow; chmod 640 {r}/etc/shadow; chown 0:42 {r}/etc/shadow
            cp /bin/true {r}/usr/bin/suidprog; chmod 4755 {r}/usr/bin/suidprog
            cp /bin/true {r}/usr/bin/ping; setcap cap_net_raw+ep {r}/usr/bin/ping
            chown 0:42 {r}/sgid; chmod 2755 {r}/sgid
            mknod {r}/dev/console c 5 1; chmod 600 {r}/dev/console
            mknod {r}/dev/sda b 8 0; chown 0:6 {r}/dev/sda; chmod 644 {r}/dev/sda
            mknod {r}/dev/null c 1 3; chmod 666 {r}/dev/null
            mkfifo {r}/dev/initctl; chmod 600 {r}/dev/initctl
            ln -s busybox {r}/bin/sp
            ln -s /etc/hostname {r}/etc/abs-link
            mkdir {r}/home/user; chown 1000:1000 {r}/home/user; chmod 700 {r}/home/user
            touch {r}/etc/owned998; chown 998:997 {r}/etc/owned998
            setfacl -m u:1000:rwx {r}/data/acl
            setfacl -d -m g:997:r-x {r}/data/acl
            long={r}/usr/share/a-very-long-directory-name-that-needs-more-than-one-hundred-characters-in-total/and-a-long-file-name-too.txt
            mkdir -p "$(dirname "$long")"; echo long > "$long"
            tar --numeric-owner --xattrs --xattrs-include='*' --acls -cpzf {TarGz} -C {r} .
            chmod a+r {TarGz}
            """).ShouldSucceed();
    }

    public void Dispose() => Dir.Dispose();
}
