#!/usr/bin/env bash
# Memory of `rootfs-export serve --9p` with a large export walked by several clients at once: an export of
# N regular files (default 100,000, in directories of 1,000) is walked whole (walk + getattr of every entry)
# by bench/NineLoad on C connections (default 4), twice; prints the server's peak RSS (VmHWM) and its RSS
# afterwards, from /proc. Goal (issue 21): peak < 150 MB for 100,000 files and 4 clients. Measures the native
# program; ROOTFS_EXPORT_JIT=1 measures the JIT build instead (more: the runtime and JIT'd code are resident).
#   bench/ninep-memory.sh [files] [connections]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
files=${1:-100000}; conns=${2:-4}
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
"$here/rootfs-export" --help >/dev/null
built=$here/.build/rootfs-export; [ "${ROOTFS_EXPORT_JIT:-0}" = 1 ] && built=$here/.build/jit
dotnet build "$here/bench/NineLoad/NineLoad.csproj" -c Release -o "$here/.build/nineload" --nologo -v quiet -clp:ErrorsOnly >/dev/null
tool=$(mktemp -d /tmp/rfe-bench-tool.XXXX); cp -a "$built/." "$tool/"
mkdir "$tool/nineload"; cp -a "$here/.build/nineload/." "$tool/nineload/"; chmod -R a+rX "$tool"
work=$(mktemp -d /tmp/rfe-bench9pmem.XXXX); chmod 777 "$work"
asu=(); [ "$(id -u)" -eq 0 ] && asu=(setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp)
export_dir=$work/export
pid=""
cleanup() {
  [ -n "$pid" ] && { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
  "${asu[@]}" rm -rf "$export_dir" "$export_dir.pseudo_state"; rm -rf "$work" "$tool"
}
trap cleanup EXIT
# the export as a tarball, unpacked by our own tool (so files.db holds every entry, as in real use)
python3 - "$work/many.tar" "$files" <<'PY'
import io, sys, tarfile
out, n = sys.argv[1], int(sys.argv[2])
with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as t:
    def add(name, kind, data=b"", mode=0o644):
        i = tarfile.TarInfo(name); i.type, i.mode = kind, mode
        i.size = len(data) if kind == tarfile.REGTYPE else 0
        t.addfile(i, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    add("./", tarfile.DIRTYPE, mode=0o755)
    for k in range(n):
        if k % 1000 == 0: add(f"./d{k // 1000:04d}", tarfile.DIRTYPE, mode=0o755)
        add(f"./d{k // 1000:04d}/f{k:07d}", tarfile.REGTYPE, data=b"x" * (k % 64))
PY
chmod a+r "$work/many.tar"
"${asu[@]}" "$tool/rootfs-export" unpack "$work/many.tar" "$export_dir" >/dev/null
port=$((17640 + RANDOM % 1000))
"${asu[@]}" "$tool/rootfs-export" serve "$export_dir" --9p tcp:127.0.0.1:$port >"$work/serve.log" 2>&1 & pid=$!
for i in $(seq 300); do ss -Hltn "sport = :$port" | grep -q . && break; sleep 0.1; done
kb() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/status"; }
# `pid` is setpriv's until it execs the tool; it execs at once, so /proc/$pid is the server
idle=$(kb VmRSS)
for pass in 1 2; do
  timeout 900 "${asu[@]}" "$tool/nineload/nineload" --server 127.0.0.1:$port --aname "$export_dir" --timeout 840 \
    walk --connections "$conns" >"$work/walk$pass.log"
done
echo "serve --9p, $files files walked whole by $conns connections, twice: $(tail -1 "$work/walk2.log")"
echo "build: $([ "${ROOTFS_EXPORT_JIT:-0}" = 1 ] && echo JIT || echo native); machine: $(nproc) cores, $(uname -r), $(date -u +%F)"
printf 'RSS idle %d MB, peak (VmHWM) %d MB, after %d MB\n' $((idle / 1024)) $(($(kb VmHWM) / 1024)) $(($(kb VmRSS) / 1024))
