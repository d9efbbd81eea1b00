#!/usr/bin/env bash
# What a board's copy-on-write layer costs (docs/BOARDS.md): one rootfs-export serve, one export, three views
# of it in the same run: the plain export (aname = the export path), a fresh board (aname <export>@fresh, its
# layer empty) and a used board (<export>@used, every 20th file by inode copied up first, with the directories
# that hold them, as a board that ran a while has them). Host-side client: bench/NineLoad (no guest in the way).
#   walk:    find + stat of the whole export, 1 connection (nineload walk)
#   readall: the same walk, and every regular file read once start to end, 1 connection (nineload readall)
# Each round runs every workload on the three views, interleaved (plain, fresh, used); medians of the rounds.
# Prints board/plain ratios (> 1: the overlay costs that much more) for the client's wall time and for the
# serve process's own CPU time (user+sys from /proc, less sensitive to other load on the machine).
#   bench/overlay.sh [runs]   (default 5)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
export DEBIAN_FRONTEND=noninteractive DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
command -v bc >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends bc; }
"$here/rootfs-export" --help >/dev/null
dotnet build "$here/bench/NineLoad/NineLoad.csproj" -c Release -o "$here/.build/nineload" --nologo -v quiet -clp:ErrorsOnly >/dev/null
tool=$(mktemp -d /tmp/rfe-bench-tool.XXXX); cp -a "$here/.build/rootfs-export/." "$tool/"
mkdir "$tool/nineload"; cp -a "$here/.build/nineload/." "$tool/nineload/"; chmod -R a+rX "$tool"
work=$(mktemp -d /tmp/rfe-benchov.XXXX); chmod 777 "$work"
asu=(); [ "$(id -u)" -eq 0 ] && asu=(setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp)
as_user() { "${asu[@]}" "$@"; }
export_dir=$work/export
# the benchmarks' generated rootfs (~8,800 entries), with a 16 MB data/big so reading small files dominates
entries=$(python3 "$here/bench/rootfs-tree.py" "$work/rootfs.tar" --big-mb 16 | cut -d' ' -f1)
chmod a+r "$work/rootfs.tar"
as_user "$tool/rootfs-export" unpack "$work/rootfs.tar" "$export_dir" >/dev/null

port=$((16640 + RANDOM % 1000))
# exec'd through setpriv and env: $! is the serve process itself, whose CPU time /proc gives
"${asu[@]}" "$tool/rootfs-export" serve "$export_dir" --9p tcp:127.0.0.1:$port >"$work/serve.log" 2>&1 & pid=$!
results=$(mktemp)
cleanup() {
  kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true
  rm -f "$results"; as_user rm -rf "$export_dir" "$export_dir.pseudo_state" "$export_dir.boards"; rm -rf "$work" "$tool"
}
trap cleanup EXIT
nineload() { # aname, nineload args...: one run as the unprivileged user, attached as root (the files are 0:0 in files.db)
  local aname=$1; shift
  timeout 600 "${asu[@]}" "$tool/nineload/nineload" --server 127.0.0.1:$port --aname "$aname" --uid 0 --gid 0 --timeout 540 "$@"
}
for i in $(seq 100); do nineload "$export_dir" walk >/dev/null 2>&1 && break; sleep 0.2; done
nineload "$export_dir@fresh" walk >/dev/null             # attaches once: the layer exists, empty
touched=$(nineload "$export_dir@used" touch --every 20 | sed -E 's/.* bytes=([0-9]+) .*/\1/')
layer_files=$(find "$export_dir.boards/used" -type f | wc -l)

cpu() { awk '{print $14 + $15}' "/proc/$pid/stat"; } # serve's user+sys, in clock ticks
hz=$(getconf CLK_TCK)
measure() { # label, aname, workload
  local before line after
  before=$(cpu); line=$(nineload "$2" "$3"); after=$(cpu)
  echo "$1-$3 $(sed -E 's/.* seconds=([0-9.]+) .*/\1/' <<<"$line") $(echo "($after - $before) / $hz" | bc -l)" >> "$results"
}
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
for i in $(seq "$runs"); do
  for w in walk readall; do
    measure plain "$export_dir" $w
    measure fresh "$export_dir@fresh" $w
    measure used "$export_dir@used" $w
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
median() { grep "^$1 " "$results" | awk -v f="$2" '{print $f}' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "board overlay vs the plain export, one serve, $runs rounds interleaved, medians; export: $entries entries"
echo "used board: $touched files changed (copied up), $layer_files files in its layer"
echo "machine: $(nproc) cores, $(uname -r), $(date -u +%F); load average before $load_before, after $load_after"
printf '%-44s %9s %9s %9s %11s %11s\n' workload plain fresh used fresh/plain used/plain
for w in walk readall; do
  for col in 2 3; do
    p=$(median plain-$w $col); f=$(median fresh-$w $col); u=$(median used-$w $col)
    what=$([ $col = 2 ] && echo "client wall s" || echo "serve CPU s (user+sys)")
    printf '%-44s %9.3f %9.3f %9.3f %10.2fx %10.2fx\n' "$w, 1 connection: $what" "$p" "$f" "$u" \
      "$(echo "$f / $p" | bc -l)" "$(echo "$u / $p" | bc -l)"
  done
done
