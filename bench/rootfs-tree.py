#!/usr/bin/env python3
"""The 9P benchmarks' export as a tarball: a generated tree shaped like a Debian minbase rootfs (~8,800
entries: deep /usr/share, many small files, .so symlink chains, device nodes, root- and 0:42-owned), plus
data/big (200 MB, the streaming-read file) and many/ (5,000 files of 512 bytes, the `diodls -l` directory).
Deterministic (fixed seed), so every run and both servers see the same export.
    bench/rootfs-tree.py OUT.tar [--big-mb N]
"""
import io, os, random, sys, tarfile

out = sys.argv[1]
big_mb = int(sys.argv[sys.argv.index("--big-mb") + 1]) if "--big-mb" in sys.argv else 200
rnd = random.Random(5)
entries = 0

with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
    def add(name, kind=tarfile.REGTYPE, data=b"", mode=0o644, uid=0, gid=0, link="", dev=(0, 0)):
        global entries
        i = tarfile.TarInfo("./" + name if name else "./")
        i.type, i.mode, i.uid, i.gid, i.linkname = kind, mode, uid, gid, link
        i.devmajor, i.devminor = dev
        i.size = len(data) if kind == tarfile.REGTYPE else 0
        t.addfile(i, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
        entries += 1

    def d(name, mode=0o755, gid=0): add(name, tarfile.DIRTYPE, mode=mode, gid=gid)
    def blob(lo, hi): return rnd.randbytes(rnd.randint(lo, hi))

    d("")
    for top in ["bin", "boot", "dev", "etc", "home", "lib", "media", "mnt", "opt", "proc", "root", "run", "sbin",
                "srv", "sys", "tmp", "usr", "var", "usr/bin", "usr/sbin", "usr/lib", "usr/lib/x86_64-linux-gnu",
                "usr/share", "usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/zoneinfo", "usr/libexec",
                "var/lib", "var/lib/dpkg", "var/lib/dpkg/info", "var/log", "var/cache", "var/spool", "etc/default",
                "etc/init.d", "etc/apt", "etc/apt/apt.conf.d", "etc/security", "etc/pam.d", "etc/cron.daily"]:
        d(top, 0o1777 if top == "tmp" else 0o755)
    for n, (kind, major, minor) in {"null": ("c", 1, 3), "zero": ("c", 1, 5), "random": ("c", 1, 8), "urandom": ("c", 1, 9),
                                    "tty": ("c", 5, 0), "console": ("c", 5, 1), "ptmx": ("c", 5, 2), "sda": ("b", 8, 0)}.items():
        add("dev/" + n, tarfile.CHRTYPE if kind == "c" else tarfile.BLKTYPE, mode=0o666 if minor != 0 or major == 5 else 0o660,
            gid=6 if kind == "b" else 0, dev=(major, minor))
    for k in range(420):
        add(f"usr/bin/tool{k:03d}", data=blob(2000, 60000), mode=0o4755 if k % 97 == 0 else 0o755)
    for k in range(80):
        add(f"usr/sbin/admin{k:02d}", data=blob(2000, 40000), mode=0o755)
    for k in range(360):  # libfoo.so.1.2.3 with its two symlinks
        real = f"lib{k:03d}.so.{k % 7}.{k % 3}.0"
        add("usr/lib/x86_64-linux-gnu/" + real, data=blob(4000, 80000))
        add(f"usr/lib/x86_64-linux-gnu/lib{k:03d}.so.{k % 7}", tarfile.SYMTYPE, link=real, mode=0o777)
        add(f"usr/lib/x86_64-linux-gnu/lib{k:03d}.so", tarfile.SYMTYPE, link=real, mode=0o777)
    for p in range(260):  # per-package docs and dpkg info
        d(f"usr/share/doc/pkg{p:03d}")
        add(f"usr/share/doc/pkg{p:03d}/copyright", data=blob(300, 3000))
        add(f"usr/share/doc/pkg{p:03d}/changelog.Debian.gz", data=blob(200, 8000))
        for ext in ("list", "md5sums") + (("postinst", "prerm") if p % 3 == 0 else ()):
            add(f"var/lib/dpkg/info/pkg{p:03d}.{ext}", data=blob(100, 4000), mode=0o755 if ext in ("postinst", "prerm") else 0o644)
    for s in range(1, 9):
        d(f"usr/share/man/man{s}")
        for k in range(110):
            add(f"usr/share/man/man{s}/page{k:03d}.{s}.gz", data=blob(300, 6000))
    for lang in range(40):
        d(f"usr/share/locale/l{lang:02d}")
        d(f"usr/share/locale/l{lang:02d}/LC_MESSAGES")
        for k in range(16):
            add(f"usr/share/locale/l{lang:02d}/LC_MESSAGES/dom{k:02d}.mo", data=blob(500, 9000))
    for region in range(12):
        d(f"usr/share/zoneinfo/Region{region:02d}")
        for k in range(45):
            add(f"usr/share/zoneinfo/Region{region:02d}/City{k:02d}", data=blob(100, 2500))
    for k in range(220):
        add(f"etc/conf{k:03d}.conf", data=blob(50, 3000), mode=0o640 if k % 11 == 0 else 0o644, gid=42 if k % 11 == 0 else 0)
    for sub in ("default", "init.d", "apt/apt.conf.d", "security", "pam.d", "cron.daily"):
        for k in range(18):
            add(f"etc/{sub}/{sub.replace('/', '-')}{k:02d}", data=blob(50, 2000), mode=0o755 if sub == "init.d" else 0o644)
    add("etc/shadow", data=b"root:*:19000:0:99999:7:::\n", mode=0o640, gid=42)
    add("etc/hostname", data=b"board-under-test\n")
    for k in range(60):
        add(f"usr/libexec/helper{k:02d}", data=blob(1000, 20000), mode=0o755)
    d("var/log/apt"); add("var/log/apt/history.log", data=blob(1000, 9000))
    d("var/cache/apt"); add("var/cache/apt/pkgcache.bin", data=blob(100000, 200000))

    # the large file for streaming reads, and the flat directory for `diodls -l`
    d("data")
    chunk = rnd.randbytes(1 << 20)
    class Big:
        left = big_mb << 20
        def read(self, n=-1):
            n = min(n if n > 0 else len(chunk), self.left, len(chunk)); self.left -= n; return chunk[:n]
    i = tarfile.TarInfo("./data/big"); i.size = big_mb << 20; t.addfile(i, Big()); entries += 1
    d("many")
    small = b"x" * 512
    for k in range(5000):
        add(f"many/f{k:05d}", data=small, uid=k % 7)

print(f"{entries} entries")
