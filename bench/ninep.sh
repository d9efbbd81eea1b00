#!/usr/bin/env bash
# 9P server benchmark on the host (no emulated guest in the way): rootfs-export serve vs diod 1.0.24,
# same export, same unprivileged user, same client (diod's diodcat/diodls), same run. Prints medians + ratios.
#   bench/ninep.sh [runs]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
export DEBIAN_FRONTEND=noninteractive
command -v diod >/dev/null && command -v bc >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends diod bc; }
"$here/rootfs-export" --help >/dev/null
tool=$(mktemp -d /tmp/rfe-bench-tool.XXXX); cp -a "$here/.build/rootfs-export/." "$tool/"; chmod -R a+rX "$tool"
work=$(mktemp -d /tmp/rfe-bench9p.XXXX); chmod 777 "$work"
as_user() { if [ "$(id -u)" -eq 0 ]; then setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp "$@"; else "$@"; fi; }
export_dir=$work/export
# the export: a small rootfs from Python's tarfile, plus a 200 MB file and a directory of 5,000 small files
python3 - "$work/rootfs.tar" <<'PY'
import io, os, sys, tarfile
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    def d(n): i = tarfile.TarInfo(n); i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)
    d("./"); d("./data"); d("./many")
    blob = os.urandom(1 << 20)
    class Big:
        left = 200 << 20
        def read(s, n=-1):
            n = min(n if n > 0 else len(blob), s.left, len(blob)); s.left -= n; return blob[:n]
    i = tarfile.TarInfo("./data/big"); i.size = 200 << 20; t.addfile(i, Big())
    small = b"x" * 512
    for k in range(5000):
        i = tarfile.TarInfo(f"./many/f{k:05d}"); i.size = len(small); i.uid = k % 7; t.addfile(i, io.BytesIO(small))
PY
chmod a+r "$work/rootfs.tar"
as_user "$tool/rootfs-export" unpack "$work/rootfs.tar" "$export_dir" >/dev/null

results=$(mktemp)
measure() { # label, command...
  local label=$1; shift
  local t0=$(date +%s.%N); "$@" >/dev/null; local t1=$(date +%s.%N)
  echo "$label $(echo "$t1 - $t0" | bc)" >> "$results"
}
serve_ours() { as_user "$tool/rootfs-export" serve "$export_dir" --9p tcp:127.0.0.1:$1 >/dev/null 2>&1 & echo $!; }
serve_diod() { as_user diod -f -n -l 127.0.0.1:$1 -e "$export_dir" >/dev/null 2>&1 & echo $!; }
for server in ours diod; do
  port=$((15640 + RANDOM % 1000))
  pid=$(serve_$server $port)
  for i in $(seq 50); do diodls -s 127.0.0.1:$port -a "$export_dir" / >/dev/null 2>&1 && break; sleep 0.2; done
  for i in $(seq "$runs"); do
    measure "$server-read200M" as_user diodcat -m 1048576 -s 127.0.0.1:$port -a "$export_dir" /data/big
    measure "$server-ls5000" as_user diodls -l -s 127.0.0.1:$port -a "$export_dir" /many
  done
  kill -INT "$pid" 2>/dev/null || true; pkill -INT -f "127.0.0.1:$port" 2>/dev/null || true; sleep 2
done
median() { grep "^$1 " "$results" | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "9P on the host: diodcat (msize 1 MiB) of a 200 MB file; diodls -l of a directory of 5,000 files; $runs runs each, median seconds"
echo "machine: $(nproc) cores, $(uname -r), $(date -u +%F)"
printf '%-12s %10s %10s %14s\n' workload ours diod "diod/ours"
for w in read200M ls5000; do
  o=$(median ours-$w); d=$(median diod-$w)
  printf '%-12s %10.3f %10.3f %13.2fx\n' "$w" "$o" "$d" "$(echo "$d / $o" | bc -l)"
done
rm -f "$results"; as_user rm -rf "$export_dir" "$export_dir.pseudo_state"; rm -rf "$work" "$tool"
