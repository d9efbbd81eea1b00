#!/usr/bin/env bash
# Why serve runs with .NET's tiered compilation off (src/RootfsExport/Cli/LongRunningRuntime.cs): on the usb9pfs
# rig (tests/rigs, QEMU TCG, one vCPU) one `serve --usb` per setting, eight `ls -lnR` walks of the same tree on
# fresh mounts each, printing per walk the guest-timed ms and the server's user and system CPU ms.
#   bench/usb9pfs-tiering.sh [files] [settings...]   (default 200 files; settings: DOTNET_* assignments,
#                                                     default DOTNET_TieredCompilation=1 DOTNET_TieredCompilation=0)
# Run bench/usb9pfs.sh once first: it builds the rig into /var/cache/rootfs-export-tests.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
files=${1:-200}; shift || true
settings=${*:-DOTNET_TieredCompilation=1 DOTNET_TieredCompilation=0}
rig=$(ls -d /var/cache/rootfs-export-tests/usbg-linux-image-6.12.*-unsigned_* 2>/dev/null | sort -V | tail -1 || true)
[ -n "$rig" ] && [ -f "$rig/ready" ] || { echo "no usbg rig yet: run bench/usb9pfs.sh first" >&2; exit 1; }
"$here/rootfs-export" --help >/dev/null
work=$(mktemp -d /tmp/rfe-bench-tier.XXXX); chmod 755 "$work"; trap 'rm -rf "$work"' EXIT
cp -a "$here/.build/rootfs-export" "$work/tool"; mkdir "$work/mem"
python3 - "$work/rootfs.tar" "$files" <<'PY'
import io, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    def d(n):
        i = tarfile.TarInfo(n); i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)
    for n in [".", "tree"]: d(n)
    for k in range(int(sys.argv[2])):
        if k % 50 == 0: d(f"tree/d{k // 50:03d}")
        i = tarfile.TarInfo(f"tree/d{k // 50:03d}/f{k:05d}"); i.size = 100; i.uid = k % 5; t.addfile(i, io.BytesIO(b"x" * 100))
PY
chown -R 65534:65534 "$work"
cat > "$work/guest.sh" <<G
mount -t tmpfs -o size=256m,mode=0755,uid=65534,gid=65534 mem /host\$WORK/mem
EXPORT=\$WORK/mem/export
host_user \$WORK/tool/rootfs-export unpack \$WORK/rootfs.tar \$EXPORT > /dev/null || echo "@@FAIL unpack"
make_gadget rootfs 16384
(i=0; while [ \$i -lt 4000 ]; do chmod a+rw /dev/bus/usb/*/* 2>/dev/null; sleep 0.25; i=\$((i+1)); done) &
OPTS=trans=usbg,cache=loose,uname=root,access=any,dfltuid=0,dfltgid=0,aname=\$EXPORT,msize=16384
cpu() { set -- \$(cat /proc/\$SRV/stat); shift 13; echo "\$1 \$2"; }
for setting in $settings; do
  spawn_user \$WORK/server.log /usr/bin/env \$setting \$WORK/tool/rootfs-export serve \$EXPORT --usb --udc rootfs --buflen 16384; SRV=\$!
  wait_log \$WORK/server.log attached 120
  line=""
  for walk in 1 2 3 4 5 6 7 8; do
    mount -t 9p -o \$OPTS rootfs /mnt
    set -- \$(cpu); u0=\$1; s0=\$2; t0=\$(now_ms); ls -lnR /mnt/tree > /dev/null; t1=\$(now_ms); set -- \$(cpu)
    line="\$line \$((t1-t0))/\$(( (\$1-u0)*10 ))u/\$(( (\$2-s0)*10 ))s"
    umount /mnt
  done
  echo "@@WALKS \$setting ms/user-ms/system-ms:\$line"
  kill \$SRV; wait \$SRV; sleep 1
done
G
"$here/tests/rigs/usbg-guest.sh" "$rig" "$work" "$work/guest.sh" 1500 > "$work/console" 2>&1 || true
tr -d '\r' < "$work/console" | grep -o '@@.*' | sed 's/^@@WALKS //'
grep -q '@@DONE' "$work/console" && ! grep -q '@@FAIL' "$work/console"
