#!/usr/bin/env bash
# usb9pfs benchmark on the kernel-gadget rig (tests/rigs, docs/TEST-RIGS.md): a QEMU guest (TCG, one vCPU)
# whose trans_usbg board side mounts over dummy_hcd from the guest's own USB host side, where the server runs.
# Chains, measured alternately in the same guest on the same export:
#   ours      rootfs-export serve --usb (our 9P server on the bulk endpoints, in process)
#   fwd+diod  rootfs-export usb forward → diod over TCP on the guest's loopback
#   p9_fwd    the kernel's tools/usb/p9_fwd.py (python3-usb) → diod, the kernel docs' set-up
#   floor     bench/NineLoad's usb-replay: ours's answers, recorded once per guest (usb forward → nineload
#             record → serve --9p), replayed on the gadget by our USB framing with no 9P work at all; the
#             fastest any server behind that framing could be on this rig, so p9_fwd / floor bounds the ratio.
#             Treads are answered from an in-memory image of the file the recorded Rreads made: the client's
#             readahead asks for other offsets and counts from run to run.
#   USB9PFS_CHAINS="ours p9_fwd floor" picks chains (default all four).
# Workloads, each on a fresh mount (cold client caches) after a warm-up on other files: `ls -lnR` of a tree
# (walk + getattr per entry; busybox find has no -ls) and a sequential read of one file. One guest per
# buflen: 16384 (the gadget's default; msize 16384) and 1048576 (msize 1 MiB for ours, 65536 for diod, its cap).
# Reads only: p9_fwd.py hangs on a T-message that fills its last packet (e.g. a 512-byte Twrite).
# The export is unpacked by rootfs-export inside the guest onto tmpfs, as on a PC with the export in its
# page cache; a virtio-9p share under it would add a QEMU round trip to every read of every chain.
# TCG makes every request slow; the ratios between chains are the point, not the absolute times.
#   bench/usb9pfs.sh [files] [MiB] [rounds]      (defaults 1000 files, 16 MiB, 3 rounds; medians printed)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
files=${1:-1000}; mib=${2:-16}; rounds=${3:-3}
buflens=${USB9PFS_BUFLENS:-16384 1048576}
export DEBIAN_FRONTEND=noninteractive
need=""
for p in qemu-system-x86_64 diod busybox cpio zstd gcc make bc; do command -v $p >/dev/null || need=1; done
/usr/bin/python3 -c 'import usb.core' 2>/dev/null || need=1
[ -z "$need" ] || { apt-get update -q && apt-get install -y -q --no-install-recommends qemu-system-x86 diod busybox-static \
  cpio zstd xz-utils gcc make libelf1 libssl3 zlib1g bc python3 python3-usb libusb-1.0-0; }
cache=/var/cache/rootfs-export-tests; mkdir -p "$cache"
pkg=$(apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb12-amd64-unsigned$' | cut -d' ' -f1 | sort -V | tail -1)
[ -n "$pkg" ] || { echo "no linux-image-6.12.*+deb12-amd64-unsigned known to apt (apt-get update?)" >&2; exit 1; }
deb=$(ls "$cache/${pkg}"_*.deb 2>/dev/null | tail -1 || true)
[ -n "$deb" ] || { (cd "$cache" && apt-get download -q "$pkg" >/dev/null); deb=$(ls "$cache/${pkg}"_*.deb | tail -1); }
rig="$cache/usbg-$(basename "$deb" .deb)"
( exec 9>"$cache/.lock"; flock 9; [ -f "$rig/ready" ] || "$here/tests/rigs/usbg-modules.sh" "$deb" "$rig" )

"$here/rootfs-export" --help >/dev/null
work=$(mktemp -d /tmp/rfe-bench-usb.XXXX); chmod 755 "$work"
trap 'rm -rf "$work"' EXIT
cp -a "$here/.build/rootfs-export" "$work/tool"; cp "$rig/p9_fwd.py" "$work/"; mkdir "$work/mem"
dotnet build "$here/bench/NineLoad/NineLoad.csproj" -c Release -o "$here/.build/nineload" --nologo -v quiet -clp:ErrorsOnly >/dev/null
cp -a "$here/.build/nineload" "$work/tool/nineload"
python3 - "$work/rootfs.tar" "$files" "$mib" <<'PY'
import io, os, sys, tarfile
files, mib = int(sys.argv[2]), int(sys.argv[3])
with tarfile.open(sys.argv[1], "w", format=tarfile.PAX_FORMAT) as t:
    def d(n):
        i = tarfile.TarInfo(n); i.type = tarfile.DIRTYPE; i.mode = 0o755; t.addfile(i)
    def f(n, data, uid=0):
        i = tarfile.TarInfo(n); i.size = len(data); i.uid = uid; t.addfile(i, io.BytesIO(data))
    for n in [".", "tree", "data", "warm"]: d(n)
    for k in range(files):
        if k % 50 == 0: d(f"tree/d{k // 50:03d}")
        f(f"tree/d{k // 50:03d}/f{k:05d}", b"x" * 100, uid=k % 5)
    blob = os.urandom(1 << 20)
    i = tarfile.TarInfo("data/big"); i.size = mib << 20
    class Big:
        left = mib << 20
        def read(s, n=-1):
            n = min(n if n > 0 else len(blob), s.left, len(blob)); s.left -= n; return blob[:n]
    t.addfile(i, Big())
    f("warm/file", blob * 2)
    for k in range(200): f(f"warm/f{k:03d}", b"x" * 100)
PY
chown -R 65534:65534 "$work"

results=$work/results
for buflen in $buflens; do
  cat > "$work/guest.sh" <<G
# the export on tmpfs, at the same path inside the chroot; unpacked there by our CLI as uid 65534
mount -t tmpfs -o size=1g,mode=0755,uid=65534,gid=65534 mem /host\$WORK/mem
EXPORT=\$WORK/mem/export
host_user \$WORK/tool/rootfs-export unpack \$WORK/rootfs.tar \$EXPORT > /dev/null || echo "@@FAIL unpack"
make_gadget rootfs $buflen
start_chain() {
  case \$1 in
    ours) spawn_user \$WORK/server.log \$WORK/tool/rootfs-export serve \$EXPORT --usb --udc rootfs --buflen $buflen; SRV=\$!
          wait_log \$WORK/server.log attached 120 ;;
    fwd+diod) spawn_user \$WORK/diod.log diod -f -n -S -l 127.0.0.1:5640 -e \$EXPORT; DIOD=\$!
          spawn_user \$WORK/server.log \$WORK/tool/rootfs-export usb forward --host 127.0.0.1 --port 5640; SRV=\$!
          wait_log \$WORK/server.log attached 120 ;;
    p9_fwd) spawn_user \$WORK/diod.log diod -f -n -S -l 127.0.0.1:5640 -e \$EXPORT; DIOD=\$!
          sleep 1; spawn_user \$WORK/server.log /usr/bin/python3 \$WORK/p9_fwd.py connect -s 127.0.0.1 -p 5640; SRV=\$!
          wait_log \$WORK/server.log "connected to server" 120 ;;
    rec) spawn_user \$WORK/tcp.log \$WORK/tool/rootfs-export serve \$EXPORT --9p tcp:127.0.0.1:5641; TCP=\$!
          wait_log \$WORK/tcp.log "serving" 120
          spawn_user \$WORK/record.log /usr/bin/env DOTNET_TieredCompilation=0 \$WORK/tool/nineload/nineload record --listen 127.0.0.1:5640 --server 127.0.0.1:5641 \\
            --out \$WORK/mem/usb.rec --timeout 300; REC=\$!
          sleep 2; spawn_user \$WORK/server.log \$WORK/tool/rootfs-export usb forward --host 127.0.0.1 --port 5640; SRV=\$!
          wait_log \$WORK/server.log attached 120 ;;
    floor) spawn_user \$WORK/server.log /usr/bin/env DOTNET_TieredCompilation=0 \$WORK/tool/nineload/nineload usb-replay --in \$WORK/mem/usb.rec; SRV=\$!
          wait_log \$WORK/server.log attached 120 ;;
  esac
}
# CPU time (user + system, clock ticks of 10 ms) the host side has used so far: server, forwarder and diod
host_cpu() { t=0; for p in \$SRV \${DIOD:-}; do set -- \$(cat /proc/\$p/stat); shift 13; t=\$((t + \$1 + \$2)); done; echo \$t; }
stop_chain() {
  kill \$SRV \${DIOD:-} 2>/dev/null; wait \$SRV \${DIOD:-} 2>/dev/null; DIOD=
  # the recorder saves its file when the forwarder's connection closes
  if [ -n "\${REC:-}" ]; then wait \$REC || { echo "@@FAIL record"; cat \$WORK/record.log; }; kill \$TCP; wait \$TCP; REC=; fi
  sleep 1
}
(i=0; while [ \$i -lt 4000 ]; do chmod a+rw /dev/bus/usb/*/* 2>/dev/null; sleep 0.25; i=\$((i+1)); done) &
msize=$buflen
# what reading the file alone costs on this emulated CPU: the host side's preads of a Tread's size from the
# tmpfs export, no USB, no 9P (dd, one read() per Tread a board at this msize sends)
for k in 1 2 3; do
  t0=\$(now_ms); dd if=/host\$EXPORT/data/big of=/dev/null bs=\$((msize - 24)) 2>/dev/null; t1=\$(now_ms)
  echo "@@RESULT pread $buflen read \$((t1 - t0)) 0 0"
done
for round in \$(seq 0 $rounds); do
  chains="${USB9PFS_CHAINS:-ours fwd+diod p9_fwd floor}"
  if [ \$round = 0 ]; then # round 0 records what the floor replays
    case " \$chains " in *" floor "*) chains=rec ;; *) continue ;; esac
  fi
  for chain in \$chains; do
    m=\$msize; case \$chain in ours|rec|floor) ;; *) [ \$m -gt 65536 ] && m=65536 ;; esac
    OPTS=trans=usbg,cache=loose,uname=root,access=any,dfltuid=0,dfltgid=0,aname=\$EXPORT,msize=\$m
    start_chain \$chain
    if mount -t 9p -o \$OPTS rootfs /mnt; then
      # warm-up: the same for every chain; a server runs for hours, its first seconds are not what a board sees
      for k in 1 2 3; do
        ls -lnR /mnt/warm > /dev/null; cat /mnt/warm/file > /dev/null
        umount /mnt; mount -t 9p -o \$OPTS rootfs /mnt
      done
      sleep 3
      c0=\$(host_cpu); t0=\$(now_ms); n=\$(ls -lnR /mnt/tree | grep -c '^-'); t1=\$(now_ms); c1=\$(host_cpu)
      echo "@@RESULT \$chain $buflen walk \$((t1 - t0)) \$(( (c1 - c0) * 10 )) \$n"
      umount /mnt; mount -t 9p -o \$OPTS rootfs /mnt
      c0=\$(host_cpu); t0=\$(now_ms); sz=\$(cat /mnt/data/big | wc -c); t1=\$(now_ms); c1=\$(host_cpu)
      echo "@@RESULT \$chain $buflen read \$((t1 - t0)) \$(( (c1 - c0) * 10 )) \$sz"
      umount /mnt
    else
      echo "@@FAIL mount \$chain"; cat \$WORK/server.log
    fi
    # the replay stops by itself once every recorded request was answered
    [ \$chain = floor ] && { wait_log \$WORK/server.log "replayed all" 30 || cat \$WORK/server.log; }
    stop_chain
  done
done
G
  echo "buflen $buflen: guest console in $work/console.$buflen" >&2
  "$here/tests/rigs/usbg-guest.sh" "$rig" "$work" "$work/guest.sh" 3000 > "$work/console.$buflen" 2>&1 || true
  tr -d '\r' < "$work/console.$buflen" | grep -o '@@.*' | tee -a "$results" || true
done

median() { sort -n | awk '{a[NR]=$1} END {if (NR) print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
get() { awk -v c=$1 -v b=$2 -v w=$3 -v f=${4:-5} '$1=="@@RESULT" && $2==c && $3==b && $4==w {print $f}' "$results" | median; }
echo
echo "usb9pfs on the dummy_hcd rig (QEMU TCG, 1 vCPU): 'ls -lnR' of $files files, read of $mib MiB, fresh mounts;"
echo "median of $rounds alternating rounds; ms measured in the guest (10 ms steps); cpu = user+system ms of the"
echo "host-side processes (server or forwarder, and diod) during the workload, from /proc/PID/stat"
echo "machine: $(nproc) cores, host $(uname -r), guest $(cat "$rig/kernel-release"), $(date -u +%F)"
printf '%-8s %-9s %8s %8s %8s %8s %7s %10s %10s %10s %10s\n' buflen chain walk_ms walk_cpu read_ms read_cpu MB/s \
  "walk p9/x" "read p9/x" "wcpu p9/x" "rcpu p9/x"
ratio() { [ -n "$1" ] && [ -n "$2" ] && [ "$2" != 0 ] && echo "scale=2; $1 / $2" | bc || echo -; }
for buflen in $buflens; do
  pw=$(get p9_fwd $buflen walk); pr=$(get p9_fwd $buflen read); pwc=$(get p9_fwd $buflen walk 6); prc=$(get p9_fwd $buflen read 6)
  for chain in ours fwd+diod p9_fwd floor; do
    w=$(get $chain $buflen walk); r=$(get $chain $buflen read); wc=$(get $chain $buflen walk 6); rc=$(get $chain $buflen read 6)
    mbs=$( [ -n "$r" ] && echo "scale=1; $mib * 1.048576 * 1000 / $r" | bc || echo -)
    printf '%-8s %-9s %8s %8s %8s %8s %7s %9sx %9sx %9sx %9sx\n' $buflen $chain "${w:--}" "${wc:--}" "${r:--}" "${rc:--}" "$mbs" \
      "$(ratio "$pw" "$w")" "$(ratio "$pr" "$r")" "$(ratio "$pwc" "$wc")" "$(ratio "$prc" "$rc")"
  done
  printf '%-8s %-9s %8s %8s %8s %8s   (dd of the file from the guest tmpfs, bs = msize - 24: the preads alone)\n' $buflen pread - - "$(get pread $buflen read)" -
done
grep -q '^@@DONE' "$results" || { echo "a guest did not finish (timeout?)" >&2; exit 1; }
if grep -q '@@FAIL' "$results"; then echo "failures:" >&2; grep '@@FAIL' "$results" >&2; exit 1; fi
