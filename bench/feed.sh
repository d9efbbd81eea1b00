#!/usr/bin/env bash
# Feed update benchmark on an mmdebstrap-sized export: `update` with nothing to do, and one rebuilt
# package from landing in the feed to applied (watch), against re-unpacking the whole image.
#   bench/feed.sh        (run as root once to prepare the image; the tool runs as uid 65534)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cache=${ROOTFS_EXPORT_BENCH_CACHE:-/var/cache/rootfs-export-bench}
base="$cache/bookworm-minbase.tar.zst"
[ -s "$base" ] || "$here/bench/unpack.sh" 1 >/dev/null
img="$cache/bookworm-opkg.rootfs.tar.zst"
if [ ! -s "$img" ]; then   # the Debian rootfs plus the opkg state an OE image with package-management has
  t=$(mktemp -d); tar --zstd -xf "$base" -C "$t" 2>/dev/null || true
  mkdir -p "$t/var/lib/opkg/info" "$t/usr/bin"
  printf 'echo hello 1.0\n' > "$t/usr/bin/hello"; chmod 755 "$t/usr/bin/hello"
  printf 'Package: hello-sample\nVersion: 1.0-r0\nStatus: install ok installed\nArchitecture: core2-64\nInstalled-Time: 0\n\n' > "$t/var/lib/opkg/status"
  printf '/usr/bin/hello\n' > "$t/var/lib/opkg/info/hello-sample.list"
  tar --numeric-owner --xattrs --zstd -cf "$img" -C "$t" . ; rm -rf "$t"; chmod a+r "$img"
fi
"$here/rootfs-export" --help >/dev/null
tool=$(mktemp -d /tmp/rfe-bench-tool.XXXX); cp -a "$here/.build/rootfs-export/." "$tool/"; chmod -R a+rX "$tool"
work=$(mktemp -d /tmp/rfe-benchfeed.XXXX); chmod 777 "$work"
as_user() { if [ "$(id -u)" -eq 0 ]; then setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp BUILDDIR="$work/build" "$@"; else BUILDDIR="$work/build" "$@"; fi; }
mkipk() { # name version content -> ipk in the feed (ar of debian-binary, control.tar.gz, data.tar.gz)
  local d; d=$(mktemp -d); mkdir -p "$d/c" "$d/data/usr/bin"
  printf 'Package: %s\nVersion: %s\nArchitecture: core2-64\nMaintainer: b\nDescription: b\n' "$1" "$2" > "$d/c/control"
  printf '%s\n' "$3" > "$d/data/usr/bin/hello"; chmod 755 "$d/data/usr/bin/hello"; echo 2.0 > "$d/debian-binary"
  tar --numeric-owner --owner=0 --group=0 -czf "$d/control.tar.gz" -C "$d/c" ./control
  tar --numeric-owner --owner=0 --group=0 -czf "$d/data.tar.gz" -C "$d/data" .
  (cd "$d" && ar -crf "$work/$1_$2_core2-64.ipk" debian-binary control.tar.gz data.tar.gz)
  chmod a+r "$work/$1_$2_core2-64.ipk"; as_user mv "$work/$1_$2_core2-64.ipk" "$work/build/tmp/deploy/ipk/core2-64/"; rm -rf "$d"
}
as_user mkdir -p "$work/build/conf" "$work/build/tmp/deploy/images/qemux86-64" "$work/build/tmp/deploy/ipk/core2-64"
echo 'MACHINE = "qemux86-64"' | as_user tee "$work/build/conf/local.conf" >/dev/null
as_user cp "$img" "$work/build/tmp/deploy/images/qemux86-64/bench-image-qemux86-64.rootfs.tar.zst"
now() { date +%s.%N; }
t0=$(now); as_user "$tool/rootfs-export" update bench-image --no-feeds >/dev/null; t1=$(now)
full=$(echo "$t1 - $t0" | bc)
mkipk hello-sample 1.0-r0 "echo hello 1.0"
as_user "$tool/rootfs-export" update bench-image >/dev/null   # records the installed package's content hash
t0=$(now); as_user "$tool/rootfs-export" update bench-image >/dev/null; t1=$(now)
noop=$(echo "$t1 - $t0" | bc)
export_dir="$work/build/export/bench-image-qemux86-64"
as_user "$tool/rootfs-export" watch bench-image > "$work/watch.log" 2>&1 &
for i in $(seq 300); do grep -q "listening on" "$work/watch.log" 2>/dev/null && break; sleep 0.1; done
t0=$(now); mkipk hello-sample 1.1-r0 "echo hello 1.1"
for i in $(seq 600); do grep -q "hello 1.1" "$export_dir/usr/bin/hello" 2>/dev/null && break; sleep 0.02; done; t1=$(now)
landed=$(echo "$t1 - $t0" | bc)
pkill -INT -f "rootfs-export watch bench-image" || true; sleep 2
entries=$(zstd -dc "$img" | tar -t | wc -l)
echo "export: mmdebstrap minbase bookworm + opkg state ($entries entries); $(date -u +%F), $(nproc) cores"
printf 'full unpack of the image (update, new export):    %7.3f s\n' "$full"
printf 'update with nothing to do:                         %7.3f s  (%.0fx faster than the full unpack)\n' "$noop" "$(echo "$full / $noop" | bc -l)"
printf 'one rebuilt package, file landing -> applied:       %7.3f s  (%.0fx; includes the 0.1 s debounce)\n' "$landed" "$(echo "$full / $landed" | bc -l)"
grep "refresh (" "$work/watch.log" | tail -1
as_user rm -rf "$work/build"; rm -rf "$work" "$tool"
