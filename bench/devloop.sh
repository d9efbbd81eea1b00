#!/usr/bin/env bash
# The dev loop's latency: `dev` serves the sample build's export over 9P/TCP; a rebuilt package lands in the feed
# (renamed into place, as sstate does) and
#  - on the host, diod's 9P client polls the served file until it has the new content (ROUNDS rounds, a new
#    version each time), then
#  - in a QEMU guest (Debian's 6.12 kernel, TCG, the tests' rig) that mounted the export with the options `dev`
#    printed, a loop runs /usr/bin/hello every 0.02 s until it prints the new text and then writes a marker into
#    the export (GUEST_ROUNDS rounds, the same version rebuilt with new content each time, as bitbake does).
#    Both are timed on the host's clock, from the rename to the 9P read / to the guest's marker.
# Prints each round and the medians.
#   flock /tmp/rfe-qemu.lock bench/devloop.sh [ROUNDS] [GUEST_ROUNDS]   (defaults 10 and 5; GUEST_ROUNDS=0: no guest)
# The tool runs as uid 65534 when started as root.
set -euo pipefail
rounds=${1:-10}
guest_rounds=${2:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
command -v diodcat >/dev/null || { echo "diodcat (Debian package diod) is needed" >&2; exit 1; }
"$here/rootfs-export" --help >/dev/null   # builds (ROOTFS_EXPORT_JIT=1: the quick JIT build) before timing
work=$(mktemp -d /tmp/rfe-benchdev.XXXX); chmod 777 "$work"
cp -a "$here/samples/oe-build" "$work/build"
as_user() { if [ "$(id -u)" -eq 0 ]; then setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp BUILDDIR="$work/build" ROOTFS_EXPORT_JIT="${ROOTFS_EXPORT_JIT:-0}" "$@"; else BUILDDIR="$work/build" "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown -R 65534:65534 "$work"
export="$work/export"
# started directly (not through the as_user function, whose subshell would get the pid) so that $! is the
# tool itself: setpriv, env and the launcher all exec
user=(env BUILDDIR="$work/build" ROOTFS_EXPORT_JIT="${ROOTFS_EXPORT_JIT:-0}")
[ "$(id -u)" -eq 0 ] && user=(setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp BUILDDIR="$work/build" ROOTFS_EXPORT_JIT="${ROOTFS_EXPORT_JIT:-0}")
"${user[@]}" "$here/rootfs-export" dev reference-base-image --export "$export" --9p tcp:127.0.0.1:0 > "$work/dev.log" 2>&1 &
dev=$!
trap 'kill -TERM $dev 2>/dev/null; wait $dev 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 300); do grep -q "listening on" "$work/dev.log" && break; sleep 0.1; done
port=$(grep -o 'on tcp:127.0.0.1:[0-9]*' "$work/dev.log" | head -1 | cut -d: -f3)
mkipk() { # version [text] -> hello-sample_VERSION in the feed printing "hello TEXT", written beside it and renamed in
  local d; d=$(mktemp -d); chmod 755 "$d"; mkdir -p "$d/c" "$d/data/usr/bin"
  printf 'Package: hello-sample\nVersion: %s\nArchitecture: core2-64\nMaintainer: b\nDescription: b\nDepends: busybox\n' "$1" > "$d/c/control"
  printf '#!/bin/sh\necho hello %s\n' "${2:-$1}" > "$d/data/usr/bin/hello"; chmod 755 "$d/data/usr/bin/hello"; echo 2.0 > "$d/debian-binary"
  tar --numeric-owner --owner=0 --group=0 -czf "$d/control.tar.gz" -C "$d/c" ./control
  tar --numeric-owner --owner=0 --group=0 -czf "$d/data.tar.gz" -C "$d/data" .
  (cd "$d" && ar -crf "$d/p.ipk" debian-binary control.tar.gz data.tar.gz)
  chmod a+r "$d/p.ipk"; as_user cp "$d/p.ipk" "$work/build/tmp/deploy/ipk/core2-64/.p.tmp"
  as_user mv "$work/build/tmp/deploy/ipk/core2-64/.p.tmp" "$work/build/tmp/deploy/ipk/core2-64/hello-sample_$1_core2-64.ipk"; rm -rf "$d"
}
results=$work/results; : > "$results"
echo "round  landed->served (9P read on the host) [s]"
for r in $(seq "$rounds"); do
  v="2.$r-r0"
  mkipk "$v"; t1=$(date +%s.%N)
  for _ in $(seq 1000); do
    diodcat -s "127.0.0.1:$port" -a "$export" /usr/bin/hello 2>/dev/null | grep -q "hello $v" && break
    sleep 0.01
  done
  t2=$(date +%s.%N)
  printf '%5d  %.3f\n' "$r" "$(echo "$t2 - $t1" | bc)" | tee -a "$results.host"
done
grep "refresh (" "$work/dev.log" | sed 's/refresh (.*) took/refresh took/' | tail -"$rounds"
median() { awk '{print $2}' "$1" | sort -n | awk '{a[NR]=$1} END {if (NR) printf "%.3f", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

if [ "$guest_rounds" -gt 0 ]; then
  for p in qemu-system-x86_64 socat cpio; do command -v $p >/dev/null || { echo "$p is needed for the guest rounds (GUEST_ROUNDS=0 skips them)" >&2; exit 1; }; done
  kernel=$(ls -d /var/cache/rootfs-export-tests/linux-image-6.12.*-unsigned 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$kernel" ] || [ ! -f "$kernel/ready" ]; then
    echo "fetching the guest kernel once through the test rig (tests/TestSupport/GuestKernel.cs) ..."
    dotnet test "$here/tests/NineP.Tests" -c Release --filter FullyQualifiedName~QemuGuestTests >/dev/null
    kernel=$(ls -d /var/cache/rootfs-export-tests/linux-image-6.12.*-unsigned | sort -V | tail -1)
  fi
  # the mount options exactly as dev printed them, from the guest's side of the guestfwd
  opts=$(sed -n 's|^mount: *mount -t 9p -o \([^ ]*\) 127\.0\.0\.1 /mnt$|\1|p' "$work/dev.log" | head -1)
  [ -n "$opts" ] || { echo "dev printed no mount line:" >&2; cat "$work/dev.log" >&2; exit 1; }
  root=$work/initramfs
  mkdir -p "$root"/{bin,proc,sys,dev,modules,mnt}
  cp /bin/busybox "$root/bin/busybox"
  for a in $("$root/bin/busybox" --list); do [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"; done
  modules="failover net_failover virtio_net netfs 9pnet 9pnet_fd 9p" # GuestKernel.Modules, in load order
  for m in $modules; do cp "$kernel/modules/$m.ko" "$root/modules/"; done
  cat > "$root/init" <<INIT
#!/bin/sh
echo
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $modules; do insmod /modules/\$m.ko || echo "@@FAIL insmod \$m"; done
ip link set lo up; ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0; ip route add default via 10.0.2.2
mount -t 9p -o $opts 10.0.2.100 /mnt || echo "@@FAIL mount"
r=1
while [ \$r -le $guest_rounds ]; do
  echo ready > /mnt/tmp/devloop-ready-\$r
  i=0; until [ "\$(/mnt/usr/bin/hello)" = "hello guest \$r" ] || [ \$i -ge 1500 ]; do sleep 0.02; i=\$((i+1)); done
  echo seen > /mnt/tmp/devloop-seen-\$r
  r=\$((r+1))
done
umount /mnt
echo "@@DONE"
poweroff -f
INIT
  chmod +x "$root/init"
  (cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initrd.gz"
  timeout 1200 qemu-system-x86_64 -accel tcg -cpu max -m 512 -smp 1 -nographic -no-reboot \
    -kernel "$kernel/vmlinux" -initrd "$work/initrd.gz" -append "console=ttyS0 quiet panic=-1 no_timer_check" \
    -netdev "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:$port-cmd:socat STDIO TCP:127.0.0.1:$port" \
    -device virtio-net-pci,netdev=n0 </dev/null 2>&1 | tr -d '\r' > "$work/guest.log" &
  guest=$!
  wait_file() { for _ in $(seq $(( $2 * 100 ))); do [ -e "$1" ] && return 0; kill -0 $guest 2>/dev/null || break; sleep 0.01; done
    echo "no $(basename "$1") from the guest:" >&2; tail -40 "$work/guest.log" >&2; exit 1; }
  echo "round  landed->the guest ran the new /usr/bin/hello [s]   (mount -o $(sed 's/port=[0-9]*/port=P/; s/aname=[^,]*/aname=EXPORT/' <<<"$opts"))"
  for r in $(seq "$guest_rounds"); do
    wait_file "$export/tmp/devloop-ready-$r" 900
    sleep 0.3
    mkipk 3.0-r0 "guest $r"; t1=$(date +%s.%N)
    wait_file "$export/tmp/devloop-seen-$r" 60
    t2=$(date +%s.%N)
    printf '%5d  %.3f\n' "$r" "$(echo "$t2 - $t1" | bc)" | tee -a "$results.guest"
  done
  wait $guest || true
  grep -q '^@@DONE' "$work/guest.log" && ! grep -q '^@@FAIL' "$work/guest.log" || { echo "the guest failed:" >&2; tail -40 "$work/guest.log" >&2; exit 1; }
fi
echo
echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(uname -r), $(date -u +%F)"
echo "median landed -> served over 9P on the host: $(median "$results.host") s ($rounds rounds)"
[ "$guest_rounds" -gt 0 ] && echo "median landed -> the guest runs the new binary: $(median "$results.guest") s ($guest_rounds rounds, Linux $(basename "$kernel" | sed 's/linux-image-//; s/-unsigned//') under TCG)"
exit 0
