#!/usr/bin/env bash
# Image benchmark: `rootfs-export image` (mke2fs -d under pseudo, as uid 65534, plus the timestamp pass) vs the
# same `mke2fs -d` run by real root on a tree with real owners (the limit: no pseudo round trips at all), same
# rootfs (mmdebstrap bookworm minbase + ping, ~8.7k entries), same size and options, same run. Prints medians and
# the ratio.
#   bench/image.sh [runs]       (default 5; run as root: the reference tree needs real owners and device nodes)
#   RFE=/path/to/rootfs-export bench/image.sh   (default: the native program, published by ./rootfs-export install)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
cache=${ROOTFS_EXPORT_BENCH_CACHE:-/var/cache/rootfs-export-bench}
[ "$(id -u)" -eq 0 ] || { echo "run as root (the reference tree is extracted with real owners)"; exit 1; }
for p in mmdebstrap pseudo zstd mke2fs bc; do command -v $p >/dev/null || { apt-get install -y -q --no-install-recommends mmdebstrap pseudo zstd e2fsprogs bc; break; }; done
mkdir -p "$cache"
zst="$cache/bookworm-minbase.tar.zst"
if [ ! -s "$zst" ]; then
  mmdebstrap --quiet --variant=minbase --include=iputils-ping,libcap2-bin bookworm "$zst.tmp.tar.zst"
  mv "$zst.tmp.tar.zst" "$zst"
fi
chmod a+r "$zst"
work=$(mktemp -d /tmp/rfe-bench-image.XXXX); chmod 755 "$work"
if [ -z "${RFE:-}" ]; then
  "$here/rootfs-export" install --prefix "$work/tool" >/dev/null; chmod -R a+rX "$work/tool"; RFE="$work/tool/bin/rootfs-export"
fi
as_user() { setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@"; }

# the reference: real root, real owners, device nodes and capabilities on disk
mkdir "$work/tree"; zstd -dc "$zst" | tar --numeric-owner --xattrs --xattrs-include='*' -xpf - -C "$work/tree"
# ours: the export made by our unpack, as an ordinary user
mkdir "$work/user"; chown 65534:65534 "$work/user"
as_user "$RFE" unpack "$zst" "$work/user/export" >/dev/null
entries=$(find "$work/tree" | wc -l)
size=$(as_user "$RFE" image "$work/user/export" -o "$work/user/probe.ext4" | sed -n 's/.*ext4, \([0-9]*\) MiB.*/\1/p')
inodes=$(( (entries - 1) * 2 + 4096 ))
rm -f "$work/user/probe.ext4"*

results=$(mktemp)
for i in $(seq "$runs"); do
  sync
  t0=$(date +%s.%N)
  E2FSPROGS_FAKE_TIME=1700000000 mke2fs -q -F -t ext4 -b 4096 -I 256 -N $inodes -m 1 -d "$work/tree" "$work/root.ext4" "${size}M"
  t1=$(date +%s.%N)
  echo "root $(echo "$t1 - $t0" | bc)" >> "$results"
  sync
  t0=$(date +%s.%N)
  as_user "$RFE" image "$work/user/export" -o "$work/user/ours.ext4" --size "${size}M" >/dev/null
  t1=$(date +%s.%N)
  echo "ours $(echo "$t1 - $t0" | bc)" >> "$results"
done
median() { grep "^$1 " "$results" | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
root=$(median root); ours=$(median ours)
fsck_root=$(e2fsck -fn "$work/root.ext4" >/dev/null 2>&1 && echo clean || echo errors)
fsck_ours=$(e2fsck -fn "$work/user/ours.ext4" >/dev/null 2>&1 && echo clean || echo errors)
echo "rootfs: $entries entries, image ${size} MiB, $runs runs each (medians)"
echo "mke2fs -d as root, real owners:        ${root} s (e2fsck: $fsck_root)"
echo "rootfs-export image as uid 65534:      ${ours} s (e2fsck: $fsck_ours)"
echo "ratio ours/root: $(echo "scale=2; $ours / $root" | bc)"
rm -rf "$work" "$results"
