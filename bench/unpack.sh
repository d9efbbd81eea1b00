#!/usr/bin/env bash
# Unpack benchmark: rootfs-export unpack vs `pseudo tar -x` vs plain `tar -x` (no ownership), same tarball,
# same unprivileged user (65534 when run as root), same run. Prints medians and ratios.
#   bench/unpack.sh [runs]          (default 5 runs each; needs root for apt + mmdebstrap on first use)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
cache=${ROOTFS_EXPORT_BENCH_CACHE:-/var/cache/rootfs-export-bench}
export DEBIAN_FRONTEND=noninteractive
need=""
for p in mmdebstrap pseudo zstd tar sqlite3 bc; do command -v $p >/dev/null || need="$need $p"; done
if [ -n "$need" ]; then apt-get update -q && apt-get install -y -q --no-install-recommends mmdebstrap pseudo zstd sqlite3 bc; fi
mkdir -p "$cache"
zst="$cache/bookworm-minbase.tar.zst"
if [ ! -s "$zst" ]; then
  echo "building the rootfs with mmdebstrap (once, cached in $cache) ..."
  mmdebstrap --quiet --variant=minbase --include=iputils-ping,libcap2-bin bookworm "$zst.tmp.tar.zst"
  mv "$zst.tmp.tar.zst" "$zst"
fi
gz="$cache/bookworm-minbase.tar.gz"
[ -s "$gz" ] || zstd -dc "$zst" | gzip -6 > "$gz"
chmod a+r "$zst" "$gz"
entries=$(zstd -dc "$zst" | tar -t | wc -l)

# the installed native program, as users and build tasks run it (no SDK, no .NET runtime, empty environment)
tool=$(mktemp -d /tmp/rfe-bench-tool.XXXX)
"$here/rootfs-export" install --prefix "$tool" >/dev/null; chmod -R a+rX "$tool"
work=$(mktemp -d /tmp/rfe-bench.XXXX); chmod 777 "$work"
as_user() { if [ "$(id -u)" -eq 0 ]; then setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp "$@"; else "$@"; fi; }

time_one() { # label, command...
  local label=$1; shift
  local t0 t1
  as_user rm -rf "$work/x" "$work/x.pseudo_state"
  as_user mkdir -p "$work/x"
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  t0=$(date +%s.%N)
  "$@" >/dev/null
  t1=$(date +%s.%N)
  echo "$label $(echo "$t1 - $t0" | bc)"
}

ours()   { as_user rmdir "$work/x"; as_user env -i PATH=/usr/bin:/bin "$tool/bin/rootfs-export" unpack "$1" "$work/x"; }
pseudo_tar() { as_user env PSEUDO_PREFIX=/usr PSEUDO_LOCALSTATEDIR="$work/x.pseudo_state" sh -c \
  "pseudo tar --numeric-owner --xattrs --xattrs-include='*' --acls -xpf '$1' -C '$work/x' && pseudo -S"; }
# device nodes cannot be made unprivileged: plain tar reports them and extracts the rest
plain_tar() { as_user tar --no-same-owner -xf "$1" -C "$work/x" 2>/dev/null || true; }

results=$(mktemp)
for fmt in zst gz; do
  f=$cache/bookworm-minbase.tar.$fmt
  for i in $(seq "$runs"); do
    time_one "ours-$fmt" ours "$f" >> "$results"
    time_one "pseudo-$fmt" pseudo_tar "$f" >> "$results"
    time_one "tar-$fmt" plain_tar "$f" >> "$results"
  done
done
as_user rm -rf "$work/x" "$work/x.pseudo_state"; rm -rf "$work" "$tool"

median() { grep "^$1 " "$results" | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo
echo "rootfs: mmdebstrap --variant=minbase --include=iputils-ping,libcap2-bin bookworm ($entries entries), $runs runs each, median seconds"
echo "machine: $(nproc) cores, $(uname -r), $(date -u +%F)"
printf '%-6s %10s %12s %10s %16s %16s\n' format ours "pseudo tar" "plain tar" "pseudo/ours" "tar/ours"
for fmt in zst gz; do
  o=$(median ours-$fmt); p=$(median pseudo-$fmt); t=$(median tar-$fmt)
  printf '%-6s %10.3f %12.3f %10.3f %15.2fx %15.2fx\n' "tar.$fmt" "$o" "$p" "$t" "$(echo "$p / $o" | bc -l)" "$(echo "$t / $o" | bc -l)"
done
rm -f "$results"
