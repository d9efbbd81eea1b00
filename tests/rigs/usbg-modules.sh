#!/usr/bin/env bash
# Builds the usb9pfs guest rig's kernel side (docs/TEST-RIGS.md) from Debian's packages, at test time:
#   usbg-modules.sh <linux-image-…-unsigned.deb> <outdir>
# outdir gets vmlinux, modules/*.ko with modules/order (insmod order and parameters), p9_fwd.py (the
# reference forwarder, for the benchmark) and 'ready'. Debian leaves CONFIG_NET_9P_USBG off, so
# net/9p/trans_usbg.c is built out of tree from linux-source-<same version> against the matching headers
# (downloaded and unpacked, not installed). dummy_hcd.c is rebuilt with one module parameter,
# fifo_emulation: stock dummy_hcd completes small IN requests inside usb_ep_queue(), which the gadget API
# forbids and which self-deadlocks trans_usbg (it queues under its own lock); fifo_emulation=0 completes
# them from dummy_hcd's timer like a real UDC's interrupt. Nothing here is ever committed.
set -euo pipefail
deb=$(readlink -f "$1"); out=$2
pkg=$(dpkg-deb -f "$deb" Package)            # linux-image-6.12.117+deb12-amd64-unsigned
ver=$(dpkg-deb -f "$deb" Version)            # 6.12.117-1~deb12u1
abi=${pkg#linux-image-}; abi=${abi%-unsigned} # 6.12.117+deb12-amd64
flavour=${abi##*-}; base=${abi%-"$flavour"}  # amd64, 6.12.117+deb12
series=$(echo "$abi" | cut -d. -f1,2)        # 6.12
rm -rf "$out.tmp"; mkdir -p "$out.tmp/modules" "$out.tmp/dl" && cd "$out.tmp"

(cd dl && timeout 900 apt-get download -q "linux-headers-$abi=$ver" "linux-headers-$base-common=$ver" \
   "linux-kbuild-$base=$ver" "linux-source-$series=$ver" >/dev/null 2>&1) ||
  { echo "usbg-modules: apt-get download of the headers/source for $abi ($ver) failed (apt-get update?)" >&2; exit 1; }
for d in dl/linux-headers-*.deb dl/linux-kbuild-*.deb; do dpkg -x "$d" hdr; done
hdr=$PWD/hdr/usr/src/linux-headers-$abi
# the flavour Makefile includes the common one by its installed path; point it at the unpacked copy
sed -i "s|include /usr/src/|include $PWD/hdr/usr/src/|" "$hdr/Makefile"

dpkg -x dl/linux-source-*.deb src
tar -xJf src/usr/src/linux-source-$series.tar.xz -C . \
  "linux-source-$series/net/9p/trans_usbg.c" "linux-source-$series/drivers/usb/gadget/udc/dummy_hcd.c" \
  "linux-source-$series/tools/usb/p9_fwd.py"
mkdir build
cp "linux-source-$series/net/9p/trans_usbg.c" "linux-source-$series/drivers/usb/gadget/udc/dummy_hcd.c" build/
cp "linux-source-$series/tools/usb/p9_fwd.py" p9_fwd.py
python3 - build/dummy_hcd.c <<'PY'
import sys
p = sys.argv[1]; s = open(p).read()
anchor = "struct dummy_hcd_module_parameters {"
shortcut = "/* implement an emulated single-request FIFO */\n\tif (ep->desc && "
if s.count(anchor) != 1 or s.count(shortcut) != 1:
    sys.exit("usbg-modules: dummy_hcd.c changed shape; the fifo_emulation switch needs updating")
s = s.replace(anchor, "static bool fifo_emulation = true;\n"
              "module_param(fifo_emulation, bool, 0444);\n"
              "MODULE_PARM_DESC(fifo_emulation, \"complete IN requests <= 64 bytes inside usb_ep_queue()\");\n\n" + anchor)
s = s.replace(shortcut, shortcut.replace("if (ep->desc", "if (fifo_emulation && ep->desc"))
open(p, "w").write(s)
PY
printf 'obj-m := 9pnet_usbg.o dummy_hcd.o\n9pnet_usbg-objs := trans_usbg.o\n' > build/Kbuild
# BTF for modules needs pahole; the guest loads them fine without it
make -s -C "$hdr" M="$PWD/build" CONFIG_DEBUG_INFO_BTF_MODULES= modules >build.log 2>&1 ||
  { cat build.log >&2; echo "usbg-modules: building trans_usbg/dummy_hcd against $abi failed" >&2; exit 1; }
cp build/9pnet_usbg.ko build/dummy_hcd.ko modules/

# the stock modules, decompressed, and the vmlinux the guest boots (docs/TEST-RIGS.md)
dpkg -x "$deb" img
kdir=img/lib/modules/$abi/kernel
order="usb-common usbcore configfs udc-core libcomposite dummy_hcd netfs 9pnet 9pnet_virtio 9p 9pnet_usbg"
for m in $order; do
  [ -f "modules/$m.ko" ] && continue
  f=$(find "$kdir" -name "$m.ko*" | head -1)
  [ -n "$f" ] || { echo "usbg-modules: $m not in $pkg" >&2; exit 1; }
  case "$f" in *.xz) xz -dc "$f" > "modules/$m.ko";; *.zst) zstd -dcq "$f" > "modules/$m.ko";; *) cp "$f" "modules/$m.ko";; esac
done
for m in $order; do
  case $m in dummy_hcd) echo "dummy_hcd fifo_emulation=0";; *) echo "$m";; esac
done > modules/order
cp img/boot/vmlinuz-* vmlinuz
off=$(grep -abo $'\x28\xb5\x2f\xfd' vmlinuz | head -1 | cut -d: -f1)
tail -c +$((off+1)) vmlinuz | zstd -dcq 2>/dev/null > vmlinux || test -s vmlinux
echo "$abi" > kernel-release
rm -rf dl hdr src img build "linux-source-$series" vmlinuz build.log
cd .. && rm -rf "$out" && mv "$out.tmp" "$out" && touch "$out/ready"
