#!/usr/bin/env bash
# The dev loop's latency on the host: `dev` serves the sample build's export over 9P/TCP; a rebuilt package
# lands in the feed (renamed into place, as sstate does) and diod's 9P client polls the served file until it
# has the new content. Prints, per round, landing -> the server's refresh done -> a 9P client reads it.
#   bench/devloop.sh [ROUNDS]     (the tool runs as uid 65534 when started as root)
set -euo pipefail
rounds=${1:-10}
here=$(cd "$(dirname "$0")/.." && pwd)
command -v diodcat >/dev/null || { echo "diodcat (Debian package diod) is needed" >&2; exit 1; }
"$here/rootfs-export" --help >/dev/null   # builds (ROOTFS_EXPORT_JIT=1: the quick JIT build) before timing
work=$(mktemp -d /tmp/rfe-benchdev.XXXX); chmod 777 "$work"
cp -a "$here/samples/oe-build" "$work/build"
as_user() { if [ "$(id -u)" -eq 0 ]; then setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp BUILDDIR="$work/build" ROOTFS_EXPORT_JIT="${ROOTFS_EXPORT_JIT:-0}" "$@"; else BUILDDIR="$work/build" "$@"; fi; }
[ "$(id -u)" -eq 0 ] && chown -R 65534:65534 "$work"
export="$work/export"
# started directly (not through the as_user function, whose subshell would get the pid) so that $! is the
# tool itself: setpriv, env and the launcher all exec
user=(env BUILDDIR="$work/build" ROOTFS_EXPORT_JIT="${ROOTFS_EXPORT_JIT:-0}")
[ "$(id -u)" -eq 0 ] && user=(setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp BUILDDIR="$work/build" ROOTFS_EXPORT_JIT="${ROOTFS_EXPORT_JIT:-0}")
"${user[@]}" "$here/rootfs-export" dev reference-base-image --export "$export" --9p tcp:127.0.0.1:0 > "$work/dev.log" 2>&1 &
dev=$!
trap 'kill -TERM $dev 2>/dev/null; wait $dev 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 300); do grep -q "listening on" "$work/dev.log" && break; sleep 0.1; done
port=$(grep -o 'on tcp:127.0.0.1:[0-9]*' "$work/dev.log" | head -1 | cut -d: -f3)
mkipk() { # version -> hello-sample_VERSION in the feed, written beside it and renamed in
  local d; d=$(mktemp -d); chmod 755 "$d"; mkdir -p "$d/c" "$d/data/usr/bin"
  printf 'Package: hello-sample\nVersion: %s\nArchitecture: core2-64\nMaintainer: b\nDescription: b\nDepends: busybox\n' "$1" > "$d/c/control"
  printf '#!/bin/sh\necho hello %s\n' "$1" > "$d/data/usr/bin/hello"; chmod 755 "$d/data/usr/bin/hello"; echo 2.0 > "$d/debian-binary"
  tar --numeric-owner --owner=0 --group=0 -czf "$d/control.tar.gz" -C "$d/c" ./control
  tar --numeric-owner --owner=0 --group=0 -czf "$d/data.tar.gz" -C "$d/data" .
  (cd "$d" && ar -crf "$d/p.ipk" debian-binary control.tar.gz data.tar.gz)
  chmod a+r "$d/p.ipk"; as_user cp "$d/p.ipk" "$work/build/tmp/deploy/ipk/core2-64/.p.tmp"
  as_user mv "$work/build/tmp/deploy/ipk/core2-64/.p.tmp" "$work/build/tmp/deploy/ipk/core2-64/hello-sample_$1_core2-64.ipk"; rm -rf "$d"
}
echo "round  landed->served (9P read) [s]"
for r in $(seq "$rounds"); do
  v="2.$r-r0"
  t0=$(date +%s.%N); mkipk "$v"; t1=$(date +%s.%N)
  for _ in $(seq 1000); do
    diodcat -s "127.0.0.1:$port" -a "$export" /usr/bin/hello 2>/dev/null | grep -q "hello $v" && break
    sleep 0.01
  done
  t2=$(date +%s.%N)
  printf '%5d  %.3f\n' "$r" "$(echo "$t2 - $t1" | bc)"
done
grep "refresh (" "$work/dev.log" | sed 's/refresh (.*) took/refresh took/' | tail -"$rounds"
