#!/usr/bin/env bash
# Unpack benchmark: rootfs-export unpack vs `pseudo tar -x` vs plain `tar -x` (no ownership), same tarball,
# same unprivileged user (65534 when run as root), same run, interleaved. Prints medians of wall time and of
# user+sys CPU, and the ratios.
#   bench/unpack.sh [runs]          (default 5 runs each; needs root for apt + mmdebstrap on first use)
# Environment:
#   ROOTFS_EXPORT_BENCH_BUILDS="native jit"   which builds of ours to time (default: native, the installed
#                                             NativeAOT program; jit = `dotnet build` output run by dotnet;
#                                             NAME=DIR = the native program DIR/rootfs-export, e.g. an older
#                                             build for a before/after comparison in the same run)
#   ROOTFS_EXPORT_BENCH_PEERS="tar pseudo"    which peers to time (default both)
#   ROOTFS_EXPORT_BENCH_FORMATS="zst gz"      which tarballs (default both)
#   ROOTFS_EXPORT_BENCH_TOOL=DIR              time DIR/bin/rootfs-export instead of installing this checkout's
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
builds=${ROOTFS_EXPORT_BENCH_BUILDS:-native}
peers=${ROOTFS_EXPORT_BENCH_PEERS:-tar pseudo}
formats=${ROOTFS_EXPORT_BENCH_FORMATS:-zst gz}
cache=${ROOTFS_EXPORT_BENCH_CACHE:-/var/cache/rootfs-export-bench}
export DEBIAN_FRONTEND=noninteractive
need=""
for p in mmdebstrap pseudo zstd tar sqlite3 bc; do command -v $p >/dev/null || need="$need $p"; done
[ -x /usr/bin/time ] || need="$need time"
if [ -n "$need" ]; then apt-get update -q && apt-get install -y -q --no-install-recommends mmdebstrap pseudo zstd sqlite3 bc time; fi
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
if [ -n "${ROOTFS_EXPORT_BENCH_TOOL:-}" ]; then cp -r "$ROOTFS_EXPORT_BENCH_TOOL/bin" "$tool/"
else "$here/rootfs-export" install --prefix "$tool" >/dev/null; fi
if [[ " $builds " == *" jit "* ]]; then
  dotnet build "$here/src/RootfsExport/RootfsExport.csproj" -c Release -o "$tool/jit" --nologo -v quiet -clp:ErrorsOnly >/dev/null
fi
chmod -R a+rX "$tool"
work=$(mktemp -d /tmp/rfe-bench.XXXX); chmod 777 "$work"
# as_user: the command line that runs "$@" as the unprivileged user (65534 when we are root)
user=(); [ "$(id -u)" -eq 0 ] && user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
as_user() { "${user[@]}" "$@"; }

# Every run unpacks into a directory of its own and nothing is removed until the end: on ext4, inodes freed
# in the last minutes are skipped by the allocator one by one ("recently deleted"), and with a removal
# before each run that scan took most of both tools' kernel time (perf, 2026-12-04).
n=0
time_one() { # label, kind, tarball: the kind's command gets the run's own target directory
  local label=$1 kind=$2 f=$3 d
  n=$((n + 1)); d="$work/r$n"
  sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
  local cmd
  case $kind in
    native) cmd=(env -i PATH=/usr/bin:/bin "$tool/bin/rootfs-export" unpack "$f" "$d") ;;
    *=*) cmd=(env -i PATH=/usr/bin:/bin "${kind#*=}/rootfs-export" unpack "$f" "$d") ;;
    jit) cmd=(env -i PATH=/usr/bin:/bin HOME=/tmp DOTNET_CLI_TELEMETRY_OPTOUT=1 "$(command -v dotnet)" "$tool/jit/rootfs-export.dll" unpack "$f" "$d") ;;
    pseudo) cmd=(env HOME=/tmp PSEUDO_PREFIX=/usr PSEUDO_LOCALSTATEDIR="$d.pseudo_state" sh -c \
      "mkdir '$d' && pseudo tar --numeric-owner --xattrs --xattrs-include='*' --acls -xpf '$f' -C '$d' && pseudo -S") ;;
    # device nodes cannot be made unprivileged: plain tar reports them and extracts the rest
    tar) cmd=(sh -c "mkdir '$d' && { tar --no-same-owner -xf '$f' -C '$d' 2>/dev/null || true; }") ;;
  esac
  /usr/bin/time -f '%e %U %S %M' -o "$work/t" "${user[@]}" "${cmd[@]}" >/dev/null 2>&1 || { echo "$label failed" >&2; exit 1; }
  echo "$label $(tail -1 "$work/t")"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
results=$(mktemp)
for fmt in $formats; do
  f=$cache/bookworm-minbase.tar.$fmt
  for i in $(seq "$runs"); do
    for b in $builds; do time_one "ours-${b%%=*}-$fmt" "$b" "$f" >> "$results"; done
    for p in $peers; do time_one "$p-$fmt" "$p" "$f" >> "$results"; done
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
as_user rm -rf "$work"/r*; rm -rf "$work" "$tool"

median() { # label, column (2 wall, 5 user+sys)
  { grep "^$1 " "$results" || true; } | awk -v c="$2" '{print (c == 5 ? $3 + $4 : $c)}' | sort -n |
    awk '{a[NR]=$1} END {if (NR == 0) print "-"; else printf "%.2f\n", (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'
}
ratio() { if [ "$1" = - ] || [ "$2" = - ]; then echo "-"; else printf '%.2fx' "$(echo "$1 / $2" | bc -l)"; fi; }
echo
echo "rootfs: mmdebstrap --variant=minbase --include=iputils-ping,libcap2-bin bookworm ($entries entries), $runs runs each, medians"
echo "machine: $(nproc) cores, $(uname -r), $(date -u +%F), load average before $load_before, after $load_after"
printf '%-8s %-7s %9s %9s %11s %11s %10s %10s %11s %11s\n' build format wall cpu "pseudo wall" "pseudo cpu" "tar wall" "tar cpu" "pseudo/ours" "tar/ours"
for b in $builds; do
  b=${b%%=*}
  for fmt in $formats; do
    ow=$(median "ours-$b-$fmt" 2); oc=$(median "ours-$b-$fmt" 5)
    pw=$(median "pseudo-$fmt" 2); pc=$(median "pseudo-$fmt" 5); tw=$(median "tar-$fmt" 2); tc=$(median "tar-$fmt" 5)
    printf '%-8s %-7s %8ss %8ss %10ss %10ss %9ss %9ss %11s %11s\n' "$b" "tar.$fmt" "$ow" "$oc" "$pw" "$pc" "$tw" "$tc" "$(ratio "$pw" "$ow")" "$(ratio "$tw" "$ow")"
  done
done
echo "(cpu = user + sys of the whole process tree, children included: tar's zstd/gzip, pseudo's server is not)"
echo "(ratios are of wall time; > 1x means ours is faster)"
rm -f "$results"
