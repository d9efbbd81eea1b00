#!/usr/bin/env bash
# 9P server benchmark with the real client: Debian's Linux 6.12 v9fs in a QEMU guest (TCG, one vCPU, the test
# rig of tests/NineP.Tests/QemuGuestTests.cs) mounts the export over TCP (slirp restrict=on + guestfwd to
# 127.0.0.1, loopback only) from rootfs-export serve, then from diod 1.0.24: same export, same unprivileged
# user, same mount options (the rootflags `rootfs-export cmdline --transport tcp` prints). Timed in the guest
# (/proc/uptime): `find -ls` of the whole export (busybox find has no -ls: `find -exec ls -ldn {} +`, the same
# lstat + readlink per entry), `cat` of a 200 MB file to /dev/null, creating + writing 5,000
# files of 1 KiB (sync included). One boot per server per round; prints the times and diod/ours. Then two more
# boots measure the floor of find and read: the same find and cat answered from a recording, by a server that
# does no work (its Treads answered from the recorded bytes in memory).
#   [NINEP_GUEST_MSIZE=65536] bench/ninep-guest.sh [rounds]   (default 1: a round is two boots of a few minutes each under TCG)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
rounds=${1:-1}
big_mb=${NINEP_GUEST_BIG_MB:-200} # smaller only to try the script out
msize=${NINEP_GUEST_MSIZE:-1048576} # diod caps it at 65536: NINEP_GUEST_MSIZE=65536 compares both at the same msize
export DEBIAN_FRONTEND=noninteractive DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
need=""
for p in diod qemu-system-x86_64 socat cpio bc; do command -v $p >/dev/null || need="$need $p"; done
[ -x /bin/busybox ] || need="$need busybox"
[ -z "$need" ] || { apt-get update -q && apt-get install -y -q --no-install-recommends diod qemu-system-x86 busybox-static socat cpio bc; }
kernel=$(ls -d /var/cache/rootfs-export-tests/linux-image-6.12.*-unsigned 2>/dev/null | sort -V | tail -1 || true)
if [ -z "$kernel" ] || [ ! -f "$kernel/ready" ]; then
  echo "fetching the guest kernel once through the test rig (tests/TestSupport/GuestKernel.cs) ..."
  dotnet test "$here/tests/NineP.Tests" -c Release --filter FullyQualifiedName~QemuGuestTests >/dev/null
  kernel=$(ls -d /var/cache/rootfs-export-tests/linux-image-6.12.*-unsigned | sort -V | tail -1)
fi
modules="failover net_failover virtio_net netfs 9pnet 9pnet_fd 9p" # GuestKernel.Modules, in load order

"$here/rootfs-export" --help >/dev/null
tool=$(mktemp -d /tmp/rfe-bench-tool.XXXX); cp -a "$here/.build/rootfs-export/." "$tool/"; chmod -R a+rX "$tool"
work=$(mktemp -d /tmp/rfe-bench9pg.XXXX); chmod 777 "$work"
asu=(); [ "$(id -u)" -eq 0 ] && asu=(setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp)
export_dir=$work/export
entries=$(python3 "$here/bench/rootfs-tree.py" "$work/rootfs.tar" --big-mb "$big_mb" | cut -d' ' -f1)
chmod a+r "$work/rootfs.tar"
"${asu[@]}" "$tool/rootfs-export" unpack "$work/rootfs.tar" "$export_dir" >/dev/null
rm -f "$work/rootfs.tar"
server_pid=""
cleanup() {
  [ -z "$server_pid" ] || { kill -TERM "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
  "${asu[@]}" rm -rf "$export_dir" "$export_dir.pseudo_state"; rm -rf "$work" "$tool"
}
trap cleanup EXIT

# the initramfs: busybox, the 9P-over-TCP modules, and an /init that mounts, times and powers off
root=$work/initramfs
mkdir -p "$root"/{bin,proc,sys,dev,modules,mnt}
cp /bin/busybox "$root/bin/busybox"
for a in $("$root/bin/busybox" --list); do [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"; done
for m in $modules; do cp "$kernel/modules/$m.ko" "$root/modules/"; done
cat > "$root/init" <<'INIT'
#!/bin/sh
echo # the firmware's "Booting from ROM.." ends without a newline
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in $(cat /modules/order); do insmod /modules/$m.ko || echo "@@FAIL insmod $m"; done
ip link set lo up; ip link set eth0 up
ip addr add 10.0.2.15/24 dev eth0; ip route add default via 10.0.2.2
opts=$(cat /proc/cmdline | tr ' ' '\n' | sed -n 's/^bench.opts=//p')
# busybox date has no %N: /proc/uptime counts in centiseconds, enough for runs of seconds
ms() { read up idle < /proc/uptime; echo $(( ${up%.*} * 1000 + (1${up#*.} - 100) * 10 )); }
only=$(cat /proc/cmdline | tr ' ' '\n' | sed -n 's/^bench.only=//p')
if [ "$only" = find+read ] && mount -t 9p -o "$opts" 10.0.2.100 /mnt; then
  # no writes (the replay has no disk) and no umount: the recording and its replay end with the same requests
  t0=$(ms); n=$(find /mnt -exec ls -ldn {} + | wc -l); t1=$(ms); echo "@@T find $((t1 - t0)) $n"
  t0=$(ms); cat /mnt/data/big > /dev/null; t1=$(ms); echo "@@T read $((t1 - t0))"
elif mount -t 9p -o "$opts" 10.0.2.100 /mnt; then
  t0=$(ms); n=$(find /mnt -exec ls -ldn {} + | wc -l); t1=$(ms); echo "@@T find $((t1 - t0)) $n"
  t0=$(ms); cat /mnt/data/big > /dev/null; t1=$(ms); echo "@@T read $((t1 - t0))"
  kib=$(head -c 1024 /dev/zero | tr '\0' 'x')
  mkdir /mnt/guest-writes
  t0=$(ms)
  i=0; while [ $i -lt 5000 ]; do echo "$kib" > /mnt/guest-writes/f$i; i=$((i + 1)); done; sync
  t1=$(ms); echo "@@T write $((t1 - t0)) $(ls /mnt/guest-writes | wc -l)"
  rm -rf /mnt/guest-writes; sync
  umount /mnt && echo "@@UMOUNT ok"
else
  echo "@@FAIL mount"
fi
echo "@@DONE"
poweroff -f
INIT
chmod +x "$root/init"
echo "$modules" > "$root/modules/order"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initrd.gz"

results=$work/results
boot() { # server, port [only]: one guest run against the server listening on 127.0.0.1:port (only=find+read: no writes)
  local server=$1 port=$2 only=${3:-all} opts
  # the mount options a board boots with (rootflags=), from our command-line generator
  opts=$("$tool/rootfs-export" cmdline "$export_dir" --transport tcp --server 10.0.2.100 --port "$port" --msize $msize |
    tr ' ' '\n' | sed -n 's/^rootflags=//p')
  timeout 900 qemu-system-x86_64 -accel tcg -cpu max -m 1024 -smp 1 -nographic -no-reboot \
    -kernel "$kernel/vmlinux" -initrd "$work/initrd.gz" -append "console=ttyS0 quiet panic=-1 no_timer_check bench.opts=$opts bench.only=$only" \
    -netdev "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:$port-cmd:socat STDIO TCP:127.0.0.1:$port" \
    -device virtio-net-pci,netdev=n0 </dev/null | tr -d '\r' > "$work/guest-$server.log" || true
  grep -q '^@@DONE' "$work/guest-$server.log" && ! grep -q '^@@FAIL' "$work/guest-$server.log" ||
    { echo "guest run against $server failed:" >&2; tail -60 "$work/guest-$server.log" >&2; exit 1; }
  cp "$work/guest-$server.log" "${TMPDIR:-/tmp}/ninep-guest-$server.log" # kept for a look afterwards
  sed -n "s/.*@@T /$server-/p" "$work/guest-$server.log" >> "$results"
  grep -q "@@T find [0-9]* $entries\$" "$work/guest-$server.log" || { echo "$server: the guest did not see all $entries entries:" >&2; grep '^@@' "$work/guest-$server.log" >&2; exit 1; }
  echo "$server (guest ms): $(sed -n 's/.*@@T //p' "$work/guest-$server.log" | tr '\n' ' ')"
}
# the same without connecting, for the recorder and the replay, which count the connections they accept
wait_listening() { for i in $(seq 50); do ss -Hltn "sport = :$1" | grep -q . && return 0; sleep 0.1; done; }
wait_port() { for i in $(seq 100); do (exec 3<>/dev/tcp/127.0.0.1/$1) 2>/dev/null && return 0; sleep 0.1; done; echo "no server on port $1" >&2; exit 1; }
for r in $(seq "$rounds"); do
  port=$((15640 + RANDOM % 1000))
  "${asu[@]}" "$tool/rootfs-export" serve "$export_dir" --9p tcp:127.0.0.1:$port >"$work/ours.log" 2>&1 & server_pid=$!
  wait_port $port; boot ours $port
  kill -TERM $server_pid; wait $server_pid || true; server_pid=""
  port=$((port + 1000))
  # -S (all users squashed to nobody): diod running unprivileged admits the guest's root attach that way
  "${asu[@]}" diod -f -n -S -l 127.0.0.1:$port -e "$export_dir" >"$work/diod.log" 2>&1 & server_pid=$!
  wait_port $port; boot diod $port
  kill -TERM $server_pid; wait $server_pid || true; server_pid=""
done
# the floor for find and read: one boot records what ours answered (nineload record between the guest and ours),
# a second boot gets those answers replayed (nineload replay: one receive and one send per request, no work; a
# Tread gets its bytes from the recorded file's image in memory, whatever readahead asks for). The guest's
# find and cat against the replay are the fastest any server could make them, so diod / floor bounds the ratio.
dotnet build "$here/bench/NineLoad/NineLoad.csproj" -c Release -o "$here/.build/nineload" --nologo -v quiet -clp:ErrorsOnly >/dev/null
mkdir "$tool/nineload"; cp -a "$here/.build/nineload/." "$tool/nineload/"; chmod -R a+rX "$tool"
port=$((15640 + RANDOM % 1000)); rec=$((port + 2000))
"${asu[@]}" "$tool/rootfs-export" serve "$export_dir" --9p tcp:127.0.0.1:$port >"$work/ours.log" 2>&1 & server_pid=$!
wait_port $port
"${asu[@]}" env DOTNET_TieredCompilation=0 "$tool/nineload/nineload" record --listen 127.0.0.1:$rec --server 127.0.0.1:$port --out "$work/find.rec" --timeout 120 \
  >"$work/record.log" 2>&1 & rec_pid=$!
wait_listening $rec
cpu_ms() { local st; st=$(cat /proc/$1/stat 2>/dev/null) || { echo 0; return; }; set -- $st; shift 13; echo $(( ($1 + $2) * 1000 / $(getconf CLK_TCK) )); }
c0=$(cpu_ms $server_pid); boot record $rec find+read; c1=$(cpu_ms $server_pid)
echo "ours's CPU (user + system) for the find and the read: $((c1 - c0)) ms"
wait $rec_pid || { echo "recording the find failed: $(cat "$work/record.log")" >&2; exit 1; }
kill -TERM $server_pid; wait $server_pid || true; server_pid=""
"${asu[@]}" env DOTNET_TieredCompilation=0 "$tool/nineload/nineload" replay --listen 127.0.0.1:$rec --in "$work/find.rec" --timeout 300 >"$work/replay.log" 2>&1 & server_pid=$!
wait_listening $rec
boot floor $rec find+read
wait $server_pid || { echo "replaying the find failed: $(cat "$work/replay.log")" >&2; exit 1; }; server_pid=""
median() { grep "^$1 " "$results" | awk '{print $2}' | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
echo
echo "9P in a QEMU TCG guest (Linux $(basename "$kernel" | sed 's/linux-image-//; s/-unsigned//'), one vCPU), $rounds round(s), median seconds (diod/ours > 1: ours is faster)"
echo "mount: $(sed 's/port=[0-9]*/port=P/; s/aname=[^,]*/aname=EXPORT/' <<<"$("$tool/rootfs-export" cmdline "$export_dir" --transport tcp --server 10.0.2.100 --port 1 --msize $msize | tr ' ' '\n' | sed -n 's/^rootflags=//p')")"
echo "machine: $(nproc) cores, $(uname -r), $(date -u +%F); export: $entries entries; diod $(dpkg-query -W -f '${Version}' diod 2>/dev/null) caps msize at 65536"
printf '%-44s %9s %9s %10s\n' workload ours diod "diod/ours"
for w in "find|find -exec ls -ldn of the export ($entries entries)" "read|cat of a $big_mb MB file to /dev/null" "write|create + write 5,000 x 1 KiB files, sync"; do
  key=${w%%|*}; o=$(median ours-$key); d=$(median diod-$key)
  printf '%-44s %9.2f %9.2f %9.2fx\n' "${w#*|}" "$(echo "$o / 1000" | bc -l)" "$(echo "$d / 1000" | bc -l)" "$(echo "$d / $o" | bc -l)"
done
for key in find read; do
  f=$(median floor-$key)
  printf '%-44s %9.2f %9s %9.2fx  (diod / floor: the most any server can show; ours / floor %.2f)\n' "  $key against a zero-work replay (the floor)" \
    "$(echo "$f / 1000" | bc -l)" "" "$(echo "$(median diod-$key) / $f" | bc -l)" "$(echo "$(median ours-$key) / $f" | bc -l)"
done
