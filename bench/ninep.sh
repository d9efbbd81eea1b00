#!/usr/bin/env bash
# 9P server benchmark on the host (no emulated guest in the way): rootfs-export serve vs diod 1.0.24, same
# export, same unprivileged user, same clients, same run. Clients: diod's diodcat/diodls, and our pipelining
# load generator bench/NineLoad (walk + getattr of the whole export on 1 and 4 connections, streaming reads at
# msize 1 MiB, creating + writing 5,000 small files). Both servers run side by side on two loopback ports and
# every workload runs against ours, then diod, in each round. Prints medians and diod/ours ratios.
# For the serial clients (diodls, diodcat) it also measures the floor: the same run answered by `nineload replay`
# from a recording, a server that does no work at all.
#   bench/ninep.sh [runs] [workload...]   (default 5 runs; workloads: diodcat diodls serial walk1 walk4 read1
#                                          read4 write1 write4, default all)
# `serial` is the walk with one request in flight (per directory Twalk, Tlopen, Treaddir, Tclunk; per entry
# Twalk, Tgetattr, Treadlink for symlinks, Tclunk), the shape of a Linux client's one process doing `ls -lR`.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}; shift || true
workloads=" ${*:-diodcat diodls serial walk1 walk4 read1 read4 write1 write4} "
wanted() { [[ $workloads == *" $1 "* ]]; }
export DEBIAN_FRONTEND=noninteractive DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
command -v diod >/dev/null && command -v bc >/dev/null || { apt-get update -q && apt-get install -y -q --no-install-recommends diod bc; }
"$here/rootfs-export" --help >/dev/null
dotnet build "$here/bench/NineLoad/NineLoad.csproj" -c Release -o "$here/.build/nineload" --nologo -v quiet -clp:ErrorsOnly >/dev/null
tool=$(mktemp -d /tmp/rfe-bench-tool.XXXX); cp -a "$here/.build/rootfs-export/." "$tool/"
mkdir "$tool/nineload"; cp -a "$here/.build/nineload/." "$tool/nineload/"; chmod -R a+rX "$tool"
work=$(mktemp -d /tmp/rfe-bench9p.XXXX); chmod 777 "$work"
# the unprivileged user, as a command prefix (so `timeout` and `&` apply to the real process, and $! is its pid)
asu=(); [ "$(id -u)" -eq 0 ] && asu=(setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp)
as_user() { "${asu[@]}" "$@"; }
export_dir=$work/export
entries=$(python3 "$here/bench/rootfs-tree.py" "$work/rootfs.tar" | cut -d' ' -f1)
chmod a+r "$work/rootfs.tar"
as_user "$tool/rootfs-export" unpack "$work/rootfs.tar" "$export_dir" >/dev/null

port_ours=$((15640 + RANDOM % 1000)); port_diod=$((port_ours + 1000))
"${asu[@]}" "$tool/rootfs-export" serve "$export_dir" --9p tcp:127.0.0.1:$port_ours >"$work/ours.log" 2>&1 & pid_ours=$!
"${asu[@]}" diod -f -n -l 127.0.0.1:$port_diod -e "$export_dir" >"$work/diod.log" 2>&1 & pid_diod=$!
results=$(mktemp)
cleanup() {
  kill -TERM "$pid_ours" "$pid_diod" ${pid_floor:-} 2>/dev/null || true; wait "$pid_ours" "$pid_diod" ${pid_floor:-} 2>/dev/null || true
  rm -f "$results"; as_user rm -rf "$export_dir" "$export_dir.pseudo_state"; rm -rf "$work" "$tool"
}
trap cleanup EXIT
for port in $port_ours $port_diod; do
  for i in $(seq 50); do as_user diodls -s 127.0.0.1:$port -a "$export_dir" / >/dev/null 2>&1 && break; sleep 0.2; done
done

measure() { # label, command... : wall time of a whole client process
  local label=$1; shift
  wanted "${label#*-}" || return 0
  local t0=$(date +%s.%N); timeout 300 "${asu[@]}" "$@" >/dev/null; local t1=$(date +%s.%N)
  echo "$label $(echo "$t1 - $t0" | bc)" >> "$results"
}
load() { # label, port, nineload args... : the load generator's own clock (attached connections, load only)
  local label=$1 port=$2; shift 2
  wanted "${label#*-}" || return 0
  local line; line=$(timeout 300 "${asu[@]}" "$tool/nineload/nineload" --server 127.0.0.1:$port --aname "$export_dir" --timeout 240 "$@")
  echo "$label $(sed -E 's/.* seconds=([0-9.]+) .*/\1/' <<<"$line")" >> "$results"
}
# the floor for the serial clients: diodls and diodcat answered from a recording of their own run against ours
# (blocking receives and one send per request, no work; diodcat's Treads from the recorded file's bytes in
# memory), so diod / floor is the most any server could show them. The recorder and the replays run with
# tiered compilation off, as serve does.
pid_floor=""
# bounded wait (30 s: a loaded machine starts the recorder slowly) until something listens on 127.0.0.1:PORT, without connecting: the recorder and the replay
# count the connections they accept
wait_listening() { for i in $(seq 300); do ss -Hltn "sport = :$1" | grep -q . && return 0; sleep 0.1; done; }
floor_of() { # workload, port for its replay, client args (the server's address is appended by -s)
  local name=$1 port_floor=$2 port_rec=$(($2 + 100)); shift 2
  "${asu[@]}" env DOTNET_TieredCompilation=0 "$tool/nineload/nineload" record --listen 127.0.0.1:$port_rec --server 127.0.0.1:$port_ours --out "$work/$name.rec" \
    --timeout 60 >/dev/null & local pid_rec=$!
  wait_listening $port_rec
  as_user "$@" -s 127.0.0.1:$port_rec >/dev/null; wait $pid_rec
  "${asu[@]}" env DOTNET_TieredCompilation=0 "$tool/nineload/nineload" replay --listen 127.0.0.1:$port_floor --in "$work/$name.rec" --connections "$runs" \
    --timeout 600 >"$work/replay-$name.log" 2>&1 & pid_floor="$pid_floor $!"
  wait_listening $port_floor
}
port_floor_ls=$((port_ours + 2000)); port_floor_cat=$((port_ours + 2001))
wanted diodls && floor_of diodls $port_floor_ls diodls -l -a "$export_dir" /many
wanted diodcat && floor_of diodcat $port_floor_cat diodcat -m 1048576 -a "$export_dir" /data/big
for i in $(seq "$runs"); do
  wanted diodls && measure "floor-diodls" diodls -l -s 127.0.0.1:$port_floor_ls -a "$export_dir" /many
  wanted diodcat && measure "floor-diodcat" diodcat -m 1048576 -s 127.0.0.1:$port_floor_cat -a "$export_dir" /data/big
  for server in ours diod; do
    port=$([ $server = ours ] && echo $port_ours || echo $port_diod)
    measure "$server-diodcat" diodcat -m 1048576 -s 127.0.0.1:$port -a "$export_dir" /data/big
    measure "$server-diodls" diodls -l -s 127.0.0.1:$port -a "$export_dir" /many
    load "$server-serial" $port walk --connections 1 --depth 1
    load "$server-walk1" $port walk --connections 1
    load "$server-walk4" $port walk --connections 4
    load "$server-read1" $port read /data/big --connections 1 --depth 4
    load "$server-read4" $port read /data/big --connections 4 --depth 4
    # in /tmp (1777 in the generated tree): the export's root is 0:0 0755 in files.db, and ours checks the
    # attaching uid's permissions there (access=user), so a Tmkdir in / is refused as it would be on a board
    load "$server-write1" $port write --dir /tmp --files 5000 --size 1024 --connections 1
    load "$server-write4" $port write --dir /tmp --files 1250 --size 1024 --connections 4
  done
done
median() { grep "^$1 " "$results" | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo "9P on the host, $runs rounds, median seconds (diod/ours > 1: ours is faster); export: $entries entries"
echo "machine: $(nproc) cores, $(uname -r), $(date -u +%F); diod $(dpkg-query -W -f '${Version}' diod 2>/dev/null)"
printf '%-58s %9s %9s %10s\n' workload ours diod "diod/ours"
row() { # key, description, work per run for a rate (count unit), or empty
  wanted "$1" || return 0
  local o d; o=$(median ours-$1); d=$(median diod-$1)
  local rate=""
  [ -n "$3" ] && rate=$(printf '  (%s: %.0f vs %.0f /s)' "$4" "$(echo "$3 / $o" | bc -l)" "$(echo "$3 / $d" | bc -l)")
  printf '%-58s %9.3f %9.3f %9.2fx%s\n' "$2" "$o" "$d" "$(echo "$d / $o" | bc -l)" "$rate"
}
floor_row() {
  wanted "$1" || return 0
  local f; f=$(median floor-$1)
  printf '%-58s %9.3f %9s %9.2fx  (diod / floor: the most any server can show; ours / floor %.2f)\n' \
    "  the same against a zero-work replay (the floor)" "$f" "" "$(echo "$(median diod-$1) / $f" | bc -l)" \
    "$(echo "$(median ours-$1) / $f" | bc -l)"
}
row diodcat "diodcat -m 1048576 of 200 MB (diod: msize 65536)" 209.7152 MB
floor_row diodcat
row diodls  "diodls -l of 5,000 files" 5000 files
floor_row diodls
row serial  "nineload walk, 1 connection, 1 request in flight" "$entries" entries
row walk1   "nineload walk, 1 connection" "$entries" entries
row walk4   "nineload walk, 4 connections" "$((4 * entries))" entries
row read1   "nineload read 200 MB, 1 connection, 4 in flight" 209.7152 MB
row read4   "nineload read 4 x 200 MB, 4 connections, 4 in flight each" 838.8608 MB
row write1  "nineload create+write 5,000 x 1 KiB, 1 connection" 5000 files
row write4  "nineload create+write 4 x 1,250 x 1 KiB, 4 connections" 5000 files
