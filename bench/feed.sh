#!/usr/bin/env bash
# Feed update benchmark (issue 21) on an mmdebstrap-sized export, for the native (NativeAOT) and the JIT build:
#   - `update` with nothing to do, against the zero-work floor `rootfs-export --version` of the same build;
#   - one rebuilt package (same name and version, new content) applied by a fresh `update` process, against
#     `dpkg --root --unpack` of the same package file into a root of its own (run by the invoking user, root, so
#     its chowns work; fakeroot's own start-up takes seconds here and would swamp it);
#   - `watch`: from the package landing in the feed (timed from before a rename, as sstate's hard link makes it
#     appear whole) to the new file in the export.
# Each figure is the median of RUNS runs, the builds and the peer alternated in every round; wall and user+sys
# CPU (the latter suffers less from other load). Run as root (the tools run as uid 65534):
#   bench/feed.sh [RUNS]        RUNS default 5
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
runs=${1:-5}
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
# both builds, from this source tree, copied where uid 65534 can run them
"$here/rootfs-export" --version >/dev/null
ROOTFS_EXPORT_JIT=1 "$here/rootfs-export" --version >/dev/null
exec 8>/tmp/rfe-bench.lock; flock 8   # no other benchmark measures meanwhile
tools=$(mktemp -d /tmp/rfe-bench-tool.XXXX)
cp -a "$here/.build/rootfs-export" "$tools/native"; cp -a "$here/.build/jit" "$tools/jit"; chmod -R a+rX "$tools"
work=$(mktemp -d /tmp/rfe-benchfeed.XXXX); chmod 777 "$work"
watch_pid=""
cleanup() { [ -z "$watch_pid" ] || kill -INT "$watch_pid" 2>/dev/null || true; rm -rf "$work" "$tools"; }
trap cleanup EXIT
as_user() { if [ "$(id -u)" -eq 0 ]; then setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp BUILDDIR="$work/build" "$@"; else BUILDDIR="$work/build" "$@"; fi; }
feed="$work/build/tmp/deploy/ipk/core2-64"
pkg="hello-sample_1.0-r0_core2-64.ipk"
export_dir="$work/build/export/bench-image-qemux86-64"
build_pkg() { # content -> $work/stage/$pkg: a rebuilt hello-sample 1.0-r0 (same name and version)
  local d="$work/stage"; rm -rf "$d"; mkdir -p "$d/c" "$d/data/usr/bin"
  printf 'Package: hello-sample\nVersion: 1.0-r0\nArchitecture: core2-64\nMaintainer: b\nDescription: b\n' > "$d/c/control"
  printf 'echo %s\n' "$1" > "$d/data/usr/bin/hello"; chmod 755 "$d/data/usr/bin/hello"; echo 2.0 > "$d/debian-binary"
  tar --numeric-owner --owner=0 --group=0 -czf "$d/control.tar.gz" -C "$d/c" ./control
  tar --numeric-owner --owner=0 --group=0 -czf "$d/data.tar.gz" -C "$d/data" .
  (cd "$d" && ar -crf "$d/$pkg" debian-binary control.tar.gz data.tar.gz); chmod -R a+rwX "$d"
}
land() { build_pkg "$1"; as_user mv "$work/stage/$pkg" "$feed/$pkg"; }   # renamed in whole, as sstate's hard link
applied() { local line=""; read -r line < "$export_dir/usr/bin/hello" 2>/dev/null || true; [ "$line" = "echo $1" ]; }
# bash's time keyword, not /usr/bin/time: its %e/%U/%S print 10 ms steps, and a native no-op update is below that
timed() { # out-file command... : wall, user, sys of one run as uid 65534 (milliseconds resolution)
  local TIMEFORMAT='%3R %3U %3S'
  { time setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp BUILDDIR="$work/build" "${@:2}" >/dev/null 2>&3; } 3>&2 2>"$1"
}
add() { cat "$2" >> "$work/$1.times"; }
median() { sort -n | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2]+v[NR/2+1])/2}'; }
col() { awk -v c="$1" '{print $c}' "$work/$2.times" | median; }
cpu() { awk '{print $2+$3}' "$work/$1.times" | median; }

as_user mkdir -p "$work/build/conf" "$work/build/tmp/deploy/images/qemux86-64" "$feed"
echo 'MACHINE = "qemux86-64"' | as_user tee "$work/build/conf/local.conf" >/dev/null
as_user cp "$img" "$work/build/tmp/deploy/images/qemux86-64/bench-image-qemux86-64.rootfs.tar.zst"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
as_user "$tools/native/rootfs-export" update bench-image --no-feeds >/dev/null
land "hello start"; as_user "$tools/native/rootfs-export" update bench-image >/dev/null   # records the package's hash
applied "hello start" || { echo "feed.sh: the first package was not applied" >&2; exit 1; }

# dpkg's root for the peer: an empty dpkg database (the package has no dependencies and no scripts)
peer="$work/dpkgroot"; mkdir -p "$peer/var/lib/dpkg/info" "$peer/var/lib/dpkg/updates" "$peer/var/lib/dpkg/triggers"
touch "$peer/var/lib/dpkg/status" "$peer/var/lib/dpkg/available"
dpkg_peer=(dpkg --root="$peer" --log=/dev/null --force-architecture --unpack "$feed/$pkg")
[ "$(id -u)" -eq 0 ] || dpkg_peer=(fakeroot "${dpkg_peer[@]}" --force-not-root)
peer_timed() { local TIMEFORMAT='%3R %3U %3S'; { time "${@:2}" >/dev/null 2>&1; } 2>"$1"; }

for i in $(seq "$runs"); do
  for b in native jit; do timed "$work/t" "$tools/$b/rootfs-export" update bench-image; add "noop-$b" "$work/t"
                          timed "$work/t" "$tools/$b/rootfs-export" --version; add "floor-$b" "$work/t"; done
  for b in native jit; do
    land "hello $b $i"
    timed "$work/t" "$tools/$b/rootfs-export" update bench-image; add "one-$b" "$work/t"
    applied "hello $b $i" || { echo "feed.sh: update ($b) did not apply the rebuilt package" >&2; exit 1; }
    peer_timed "$work/t" "${dpkg_peer[@]}"; add "dpkg-$b" "$work/t"
  done
done

for b in native jit; do   # watch: rename into the feed -> new content in the export, polled every 2 ms
  : > "$work/watch-$b.log"; chmod 666 "$work/watch-$b.log"
  # started directly (not through a shell function, whose subshell would get the signal): $! is the watch itself
  if [ "$(id -u)" -eq 0 ]; then setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp BUILDDIR="$work/build" "$tools/$b/rootfs-export" watch bench-image > "$work/watch-$b.log" 2>&1 &
  else BUILDDIR="$work/build" "$tools/$b/rootfs-export" watch bench-image > "$work/watch-$b.log" 2>&1 & fi
  watch_pid=$!
  for _ in $(seq 600); do grep -q "listening on" "$work/watch-$b.log" && break; sleep 0.05; done
  sleep 0.5
  for i in $(seq "$runs"); do
    tag="hello watch $b $i"; build_pkg "$tag"
    t1=$EPOCHREALTIME; as_user mv "$work/stage/$pkg" "$feed/$pkg"   # timed from before the rename (mv's start-up included)
    for _ in $(seq 5000); do applied "$tag" && break; sleep 0.002; done; t2=$EPOCHREALTIME
    applied "$tag" || { echo "feed.sh: watch ($b) did not apply the package" >&2; cat "$work/watch-$b.log" >&2; exit 1; }
    echo "$t2 $t1" | awk '{printf "%.3f\n", $1-$2}' >> "$work/watch-$b.times"
    sleep 0.3
  done
  kill -INT "$watch_pid"   # Ctrl-C: it stops by itself (a zombie until waited for)
  for _ in $(seq 100); do case "$(ps -o stat= -p "$watch_pid" 2>/dev/null)" in ""|Z*) break;; esac; sleep 0.1; done
  case "$(ps -o stat= -p "$watch_pid" 2>/dev/null)" in ""|Z*) ;; *) echo "feed.sh: watch ($b) did not stop on SIGINT" >&2; kill -KILL "$watch_pid";; esac
  wait "$watch_pid" || true; watch_pid=""
done

entries=$(zstd -dc "$img" | tar -t | wc -l)
echo "export: mmdebstrap minbase bookworm + opkg state ($entries entries); $(date -u +%F), $(nproc) cores, load average $load_start at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end"
echo "median of $runs, wall (user+sys CPU); the builds and the peer alternated in each round"
for b in native jit; do
  printf 'no-op update, %-6s  %6.3f s (%5.3f s CPU)   floor --version %6.3f s (%5.3f s CPU)   %4.1fx the floor\n' "$b" \
    "$(col 1 "noop-$b")" "$(cpu "noop-$b")" "$(col 1 "floor-$b")" "$(cpu "floor-$b")" "$(echo "$(col 1 "noop-$b") / $(col 1 "floor-$b")" | bc -l)"
done
for b in native jit; do
  printf 'one package, %-6s   %6.3f s (%5.3f s CPU)   dpkg --unpack %6.3f s (%5.3f s CPU)   %4.2fx dpkg\n' "$b" \
    "$(col 1 "one-$b")" "$(cpu "one-$b")" "$(col 1 "dpkg-$b")" "$(cpu "dpkg-$b")" "$(echo "$(col 1 "one-$b") / $(col 1 "dpkg-$b")" | bc -l)"
done
for b in native jit; do
  printf 'watch, %-6s rename -> applied %6.3f s   (runs: %s)\n' "$b" "$(median < "$work/watch-$b.times")" "$(tr '\n' ' ' < "$work/watch-$b.times")"
  grep "refresh (" "$work/watch-$b.log" | tail -1 | sed 's/^/    last refresh logged: /'
done
