#!/usr/bin/env python3
"""Writes samples/oe-build: a tiny OpenEmbedded-shaped build (conf/local.conf, an image rootfs tarball
named like OE >= 4.3 does, its manifest, and an ipk feed) so rootfs-export runs without an OE install.

The tarball is written like IMAGE_CMD:tar (PAX, numeric owners, ./ first, sorted) with what real images
contain: root-owned files, a 0:42 0640 shadow, device nodes, a fifo, setuid, a file capability as a
SCHILY.xattr record, a sticky /tmp. Deterministic: re-running gives the same bytes.
Run: python3 samples/make-sample-build.py   (no root needed: tarfile writes any owner)."""
import gzip, io, os, shutil, subprocess, tarfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "oe-build")
MACHINE = "qemux86-64"
IMAGE = "reference-base-image"
EPOCH = 1763769600  # 2025-11-22, fixed for reproducible output
KERNEL = "6.6.23-yocto-standard"
CAP_NET_RAW_EP = bytes.fromhex("0100000200200000000000000000000000000000")

PACKAGES = {  # name: (arch, version, files) as installed in the image
    "base-files": ("qemux86_64", "3.0.14-r0", ["/etc/hostname", "/etc/os-release", "/etc/passwd", "/etc/group", "/etc/shadow"]),
    "busybox": ("core2-64", "1.36.1-r0", ["/bin/busybox", "/bin/sh"]),
    "hello-sample": ("core2-64", "1.0-r0", ["/usr/bin/hello"]),
}

def info(name, kind=tarfile.REGTYPE, mode=0o644, uid=0, gid=0, size=0, link="", major=0, minor=0, pax=None):
    i = tarfile.TarInfo(name)
    i.type, i.mode, i.uid, i.gid, i.size, i.linkname = kind, mode, uid, gid, size, link
    i.mtime, i.uname, i.gname, i.devmajor, i.devminor = EPOCH, "", "", major, minor
    if pax: i.pax_headers = pax
    return i

def status_stanza(name, arch, version, state="install ok installed"):
    return f"Package: {name}\nVersion: {version}\nStatus: {state}\nArchitecture: {arch}\nInstalled-Time: {EPOCH}\n\n"

def rootfs_members():
    files = {
        "./bin/busybox": (b"#!/bin/sh\necho 'BusyBox v1.36.1 (sample)'\n", 0o755, 0, 0),
        "./boot/bzImage-" + KERNEL: (b"sample kernel image, not bootable\n", 0o644, 0, 0),
        "./etc/hostname": (MACHINE.encode() + b"\n", 0o644, 0, 0),
        "./etc/os-release": (b'ID=poky\nNAME="Poky (Yocto Project Reference Distro)"\nVERSION="5.0 (scarthgap)"\n'
                             b'VERSION_ID=5.0\nPRETTY_NAME="Poky (Yocto Project Reference Distro) 5.0 (scarthgap)"\n', 0o644, 0, 0),
        "./etc/passwd": (b"root:x:0:0:root:/home/root:/bin/sh\nuser:x:1000:1000::/home/user:/bin/sh\n", 0o644, 0, 0),
        "./etc/group": (b"root:x:0:\nshadow:x:42:\ndisk:x:6:\nuser:x:1000:\n", 0o644, 0, 0),
        "./etc/shadow": (b"root::19000:0:99999:7:::\nuser:*:19000:0:99999:7:::\n", 0o640, 0, 42),
        "./lib/modules/" + KERNEL + "/modules.dep": (b"", 0o644, 0, 0),
        "./usr/bin/hello": (b"#!/bin/sh\necho 'hello 1.0'\n", 0o755, 0, 0),
        "./usr/bin/ping": (b"sample ping with cap_net_raw\n", 0o755, 0, 0),
        "./usr/bin/su": (b"sample setuid su\n", 0o4755, 0, 0),
    }
    status = "".join(status_stanza(n, a, v) for n, (a, v, _) in sorted(PACKAGES.items()))
    files["./var/lib/opkg/status"] = (status.encode(), 0o644, 0, 0)
    for n, (a, v, fl) in PACKAGES.items():
        files[f"./var/lib/opkg/info/{n}.list"] = ("".join(f + "\n" for f in fl).encode(), 0o644, 0, 0)
        files[f"./var/lib/opkg/info/{n}.control"] = (f"Package: {n}\nVersion: {v}\nArchitecture: {a}\n".encode(), 0o644, 0, 0)
    dirs = {".": (0o755, 0, 0), "./bin": (0o755, 0, 0), "./boot": (0o755, 0, 0), "./dev": (0o755, 0, 0), "./etc": (0o755, 0, 0),
            "./home": (0o755, 0, 0), "./home/root": (0o700, 0, 0), "./home/user": (0o755, 1000, 1000), "./lib": (0o755, 0, 0),
            "./lib/modules": (0o755, 0, 0), "./lib/modules/" + KERNEL: (0o755, 0, 0), "./tmp": (0o1777, 0, 0),
            "./usr": (0o755, 0, 0), "./usr/bin": (0o755, 0, 0), "./var": (0o755, 0, 0), "./var/lib": (0o755, 0, 0),
            "./var/lib/opkg": (0o755, 0, 0), "./var/lib/opkg/info": (0o755, 0, 0)}
    members = []
    for d, (mode, uid, gid) in dirs.items():
        members.append((d, info(d if d != "." else "./", tarfile.DIRTYPE, mode, uid, gid), None))
    for f, (data, mode, uid, gid) in files.items():
        pax = {"SCHILY.xattr.security.capability": CAP_NET_RAW_EP.decode("latin-1")} if f == "./usr/bin/ping" else None
        members.append((f, info(f, mode=mode, uid=uid, gid=gid, size=len(data), pax=pax), data))
    members.append(("./bin/sh", info("./bin/sh", tarfile.SYMTYPE, 0o777, link="busybox"), None))
    members.append(("./boot/bzImage", info("./boot/bzImage", tarfile.SYMTYPE, 0o777, link="bzImage-" + KERNEL), None))
    members.append(("./dev/console", info("./dev/console", tarfile.CHRTYPE, 0o600, major=5, minor=1), None))
    members.append(("./dev/null", info("./dev/null", tarfile.CHRTYPE, 0o666, major=1, minor=3), None))
    members.append(("./dev/sda", info("./dev/sda", tarfile.BLKTYPE, 0o660, gid=6, major=8, minor=0), None))
    members.append(("./dev/initctl", info("./dev/initctl", tarfile.FIFOTYPE, 0o600), None))
    return sorted(members, key=lambda m: m[0])

def write_tar(path, members, compress):
    raw = io.BytesIO()
    # pax headers must carry raw bytes for the capability: tarfile encodes str values with this encoding
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT, encoding="latin-1") as t:
        for _, i, data in members:
            t.addfile(i, io.BytesIO(data) if data is not None else None)
    data = raw.getvalue()
    if compress == "zst":
        data = subprocess.run(["zstd", "-q", "-19", "-c"], input=data, stdout=subprocess.PIPE, check=True).stdout
    elif compress == "gz":
        data = gzip.compress(data, 9, mtime=0)
    with open(path, "wb") as f:
        f.write(data)

def write_ar(path, members):
    out = io.BytesIO()
    out.write(b"!<arch>\n")
    for name, data in members:
        out.write(f"{name + '/':<16}{EPOCH:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode())
        out.write(data)
        if len(data) % 2: out.write(b"\n")
    with open(path, "wb") as f:
        f.write(out.getvalue())

def targz(members):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as t:
        for i, data in members:
            t.addfile(i, io.BytesIO(data) if data is not None else None)
    return gzip.compress(raw.getvalue(), 9, mtime=0)

def ipk(dir_, name, arch, version, files, depends=""):
    control = f"Package: {name}\nVersion: {version}\nDescription: {name} (rootfs-export sample)\nSection: base\nPriority: optional\n" \
              f"Maintainer: rootfs-export <sample@example.invalid>\nLicense: MIT\nArchitecture: {arch}\nOE: {name}\n"
    if depends: control += f"Depends: {depends}\n"
    control += "Source: sample.bb\n"
    ctrl = targz([(info("./", tarfile.DIRTYPE, 0o755), None), (info("./control", size=len(control)), control.encode())])
    data_members = [(info("./", tarfile.DIRTYPE, 0o755), None)]
    made = set()
    for path, content, mode in files:
        parts = path.strip("/").split("/")[:-1]
        for k in range(1, len(parts) + 1):
            d = "./" + "/".join(parts[:k])
            if d not in made:
                made.add(d); data_members.append((info(d, tarfile.DIRTYPE, 0o755), None))
        data_members.append((info("." + path, mode=mode, size=len(content)), content))
    os.makedirs(dir_, exist_ok=True)
    write_ar(os.path.join(dir_, f"{name}_{version}_{arch}.ipk"),
             [("debian-binary", b"2.0\n"), ("control.tar.gz", ctrl), ("data.tar.gz", targz(data_members))])

def main():
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(os.path.join(OUT, "conf"))
    with open(os.path.join(OUT, "conf", "local.conf"), "w") as f:
        f.write(f'# rootfs-export sample build (made by samples/make-sample-build.py)\nMACHINE ??= "{MACHINE}"\n'
                'PACKAGE_CLASSES ?= "package_ipk"\nIMAGE_FSTYPES = "tar.zst"\n')
    images = os.path.join(OUT, "tmp", "deploy", "images", MACHINE)
    os.makedirs(images)
    stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(EPOCH))
    real = f"{IMAGE}-{MACHINE}.rootfs-{stamp}.tar.zst"
    write_tar(os.path.join(images, real), rootfs_members(), "zst")
    os.symlink(real, os.path.join(images, f"{IMAGE}-{MACHINE}.rootfs.tar.zst"))
    manifest = "".join(f"{n} {a} {v}\n" for n, (a, v, _) in sorted(PACKAGES.items()))
    with open(os.path.join(images, f"{IMAGE}-{MACHINE}.rootfs-{stamp}.manifest"), "w") as f:
        f.write(manifest)
    os.symlink(f"{IMAGE}-{MACHINE}.rootfs-{stamp}.manifest", os.path.join(images, f"{IMAGE}-{MACHINE}.rootfs.manifest"))
    feed = os.path.join(OUT, "tmp", "deploy", "ipk")
    ipk(os.path.join(feed, "core2-64"), "busybox", "core2-64", "1.36.1-r0",
        [("/bin/busybox", b"#!/bin/sh\necho 'BusyBox v1.36.1 (sample)'\n", 0o755)])
    # a rebuilt package: what `bitbake hello-sample` would have dropped into the feed after the image was built
    ipk(os.path.join(feed, "core2-64"), "hello-sample", "core2-64", "1.1-r0",
        [("/usr/bin/hello", b"#!/bin/sh\necho 'hello 1.1'\n", 0o755)], depends="busybox")
    open(os.path.join(feed, "Packages"), "w").close()  # OE leaves an empty top-level index

if __name__ == "__main__":
    main()
