#!/usr/bin/env bash
# Unpack memory: peak RSS (max resident set, /usr/bin/time) of `rootfs-export unpack` for a 10,000 and a
# 100,000 entry archive of the same shape (directories of 100 entries: small files of 1-8 KiB, a symlink per
# ten files, a hard link per hundred), as uid 65534. The goal is "flat": the large one within a few MB of
# the small one. Also prints the wall and user+sys CPU of each run.
#   bench/unpack-memory.sh [builds]     builds: "native" (default, the installed program) and/or "jit"
#   ROOTFS_EXPORT_BENCH_TOOL=DIR        time DIR/bin/rootfs-export instead of installing this checkout's
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
builds=${1:-native}
command -v zstd >/dev/null && [ -x /usr/bin/time ] || { apt-get update -q && apt-get install -y -q --no-install-recommends zstd time; }
work=$(mktemp -d /tmp/rfe-unpack-memory.XXXX); chmod 777 "$work"
trap 'rm -rf "$work"' EXIT
tool="$work/tool"
if [ -n "${ROOTFS_EXPORT_BENCH_TOOL:-}" ]; then mkdir -p "$tool"; cp -r "$ROOTFS_EXPORT_BENCH_TOOL/bin" "$tool/"
else "$here/rootfs-export" install --prefix "$tool" >/dev/null; fi
if [[ " $builds " == *" jit "* ]]; then
  dotnet build "$here/src/RootfsExport/RootfsExport.csproj" -c Release -o "$tool/jit" --nologo -v quiet -clp:ErrorsOnly >/dev/null
fi
chmod -R a+rX "$tool"

make_archive() { # entries, out.tar.zst
  /usr/bin/python3 - "$1" "$2.tar" <<'EOF'
import io, random, sys, tarfile
entries, out = int(sys.argv[1]), sys.argv[2]
rnd = random.Random(21)
pool = rnd.randbytes(8192)
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
    def add(name, kind=tarfile.REGTYPE, size=0, link=""):
        i = tarfile.TarInfo(name); i.type, i.linkname, i.mode, i.mtime = kind, link, 0o755 if kind == tarfile.DIRTYPE else 0o644, 1700000000
        i.size = size
        t.addfile(i, io.BytesIO(pool[:size]) if kind == tarfile.REGTYPE else None)
    n = 0
    d = 0
    while n < entries:
        top = f"usr/share/d{d // 100:04d}"
        if d % 100 == 0: add(top, tarfile.DIRTYPE); n += 1
        sub = f"{top}/s{d:05d}"; add(sub, tarfile.DIRTYPE); n += 1
        for k in range(min(99, entries - n)):
            name = f"{sub}/f{k:02d}"
            if k % 10 == 9: add(name, tarfile.SYMTYPE, link=f"f{k - 1:02d}")
            elif k == 50: add(name, tarfile.LNKTYPE, link=f"{sub}/f{k - 2:02d}")
            else: add(name, size=rnd.randint(1024, 8192))
            n += 1
        d += 1
EOF
  zstd -q -3 --rm -f "$2.tar" -o "$2.tar.zst"; chmod a+r "$2.tar.zst"
}
make_archive 10000 "$work/small"
make_archive 100000 "$work/large"

user=(); [ "$(id -u)" -eq 0 ] && user=(setpriv --reuid=65534 --regid=65534 --clear-groups)
run() { # build, archive -> "maxrss_kb wall cpu"
  local cmd out="$work/x-$RANDOM"
  case $1 in
    native) cmd=(env -i PATH=/usr/bin:/bin "$tool/bin/rootfs-export") ;;
    jit) cmd=(env -i PATH=/usr/bin:/bin HOME=/tmp DOTNET_CLI_TELEMETRY_OPTOUT=1 "$(command -v dotnet)" "$tool/jit/rootfs-export.dll") ;;
  esac
  /usr/bin/time -f '%M %e %U %S' -o "$work/t" "${user[@]}" "${cmd[@]}" unpack "$2" "$out" >/dev/null 2>&1
  "${user[@]}" rm -rf "$out" "$out.pseudo_state"
  awk '{printf "%d %s %.2f\n", $1, $2, $3 + $4}' "$work/t"
}
echo "machine: $(nproc) cores, $(uname -r), $(date -u +%F), load average $(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-7s %-8s %12s %9s %9s\n' build entries "peak RSS" wall cpu
for b in $builds; do
  for a in small large; do
    read -r rss wall cpu < <(run "$b" "$work/$a.tar.zst")
    printf '%-7s %-8s %9d MB %8ss %8ss\n' "$b" "$([ $a = small ] && echo 10000 || echo 100000)" $((rss / 1024)) "$wall" "$cpu"
  done
done
