#!/usr/bin/env bash
# Boots the usb9pfs rig (docs/TEST-RIGS.md): Debian's kernel under QEMU (TCG, one vCPU) with dummy_hcd, so the
# guest is both the board (usb9pfs gadget, trans=usbg mounts) and the USB host, where host programs run from
# the machine's own / (shared read-only with virtio-9p, entered with chroot).
#   usbg-guest.sh <rigdir> <workdir> <script> [timeout-seconds]
# rigdir: made by usbg-modules.sh. workdir: a directory of this machine, shared writable and mounted at the
# same path inside the chroot, so exports and files.db written in the guest are where the host expects them.
# script: sh, run as root in the guest after the set-up below; it can use:
#   host CMD...          run CMD on the machine's userland (chroot), as root
#   host_user CMD...     the same as uid/gid 65534, as our tools run
#   spawn LOG CMD... / spawn_user LOG CMD...   the same in the background, output to LOG, \$! its pid
#   make_gadget NAME [BUFLEN] [UDC]   create usb9pfs.NAME in a gadget of its own and bind it (default UDC
#                        dummy_udc.0; dummy_udc.1 is the second, on USB bus 2)
#   unbind_gadget [NAME] / bind_gadget [NAME]   (default: the first gadget made)
#   gadget_port NAME / gadget_addr NAME   its device's USB path on the guest's host side (1-1, 2-1) and
#                        current address (empty while it is not enumerated)
#   wait_attached LOG NAME [SECONDS]   wait until the server logging to LOG attached NAME's device at its
#                        current address (this enumeration, not an earlier one)
#   rearm_gadget NAME LOG   unbind and bind NAME's UDC (the host sees a new device) and wait_attached: a board
#                        must do this before it mounts an instance it had unmounted, as Linux 6.12.118's
#                        trans_usbg disables the function's endpoints on umount (docs/USB9PFS.md)
#   wait_log FILE TEXT [SECONDS] [LINE]   wait (bounded, default 60 s) until FILE contains TEXT (after LINE)
#   now_ms               milliseconds since boot (10 ms steps), for timings
# Output: the guest console on stdout; the script's lines starting with @@ are its results. @@KERNEL is the
# guest's release; @@KERNEL-TROUBLE-BEGIN/END holds what the guest kernel logged of oopses, BUGs and hangs.
set -euo pipefail
rig=$(readlink -f "$1"); work=$(readlink -f "$2"); script=$3; limit=${4:-300}
busybox=/bin/busybox; [ -x "$busybox" ] || busybox=$(command -v busybox)
tmp=$(mktemp -d /tmp/usbg-guest.XXXXXX); trap 'rm -rf "$tmp"' EXIT
root=$tmp/root
mkdir -p "$root"/{bin,proc,sys,dev,modules,host,mnt,tmp} "$root$work"
cp "$busybox" "$root/bin/busybox"
for a in $("$root/bin/busybox" --list); do [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"; done
cp "$rig"/modules/* "$root/modules/"
cp "$script" "$root/script"
cat > "$root/init" <<INIT
#!/bin/sh
export PATH=/bin WORK='$work'
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
while read m args; do
  [ \$m = dummy_hcd ] && args="\$args num=2"
  insmod /modules/\$m.ko \$args || echo "@@FAIL insmod \$m"
done < /modules/order
ip link set lo up
mount -t configfs none /sys/kernel/config
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 hostroot /host || echo "@@FAIL hostroot"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=none work "/host\$WORK" || echo "@@FAIL work share"
mount -o bind "/host\$WORK" "\$WORK"   # the same path outside the chroot too
mount -o bind /dev /host/dev; mount -o bind /proc /host/proc; mount -o rbind /sys /host/sys
# a local runtime directory for the user's sockets (serve's control socket): QEMU's virtio-9p passthrough share
# refuses to create sockets and then declares the client compromised, so none may go into \$WORK
mount -t tmpfs -o mode=0755 rfe-run /host/run && mkdir -m 0700 /host/run/rfe && chown 65534:65534 /host/run/rfe
HOSTENV="PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=\$WORK TMPDIR=\$WORK XDG_RUNTIME_DIR=/run/rfe DOTNET_EnableDiagnostics=0 DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1"
host() { chroot /host /usr/bin/env -i \$HOSTENV "\$@"; }
host_user() { chroot /host /usr/bin/env -i \$HOSTENV /usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups "\$@"; }
# in the background, with \$! the program's own pid (so kill reaches it, not a subshell)
spawn() { log=\$1; shift; ( exec chroot /host /usr/bin/env -i \$HOSTENV "\$@" ) > "\$log" 2>&1 & }
spawn_user() { log=\$1; shift; ( exec chroot /host /usr/bin/env -i \$HOSTENV /usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups "\$@" ) > "\$log" 2>&1 & }
# one configfs gadget per usb9pfs instance, named after it; dummy_hcd has two UDCs (dummy_udc.0, dummy_udc.1)
gadget_dir() { echo /sys/kernel/config/usb_gadget/\${1:-\$FIRST}; }
make_gadget() {
  G=\$(gadget_dir \$1); FIRST=\${FIRST:-\$1}
  mkdir -p \$G/strings/0x409 \$G/configs/c.1/strings/0x409
  echo 0x1d6b > \$G/idVendor; echo 0x0109 > \$G/idProduct
  echo rootfs-export > \$G/strings/0x409/manufacturer; echo "usbg rig \$1" > \$G/strings/0x409/product
  echo "\$1" > \$G/strings/0x409/serialnumber; echo 9p > \$G/configs/c.1/strings/0x409/configuration
  mkdir \$G/functions/usb9pfs.\$1
  [ -n "\${2:-}" ] && echo \$2 > \$G/functions/usb9pfs.\$1/buflen
  ln -s \$G/functions/usb9pfs.\$1 \$G/configs/c.1/
  echo \${3:-dummy_udc.0} > /tmp/udc-\$1; cat /tmp/udc-\$1 > \$G/UDC
}
unbind_gadget() { echo "" > \$(gadget_dir \${1:-})/UDC; }
bind_gadget() { cat /tmp/udc-\${1:-\$FIRST} > \$(gadget_dir \${1:-})/UDC; }
# dummy_udc.N is wired to the one port of the guest's USB bus N+1
gadget_port() { u=\$(cat /tmp/udc-\${1:-\$FIRST}); echo \$(( \${u##*.} + 1 ))-1; }
gadget_addr() { cat /sys/bus/usb/devices/\$(gadget_port \$1)/devnum 2>/dev/null; }
# the server's log line for this enumeration carries its address: an attach of an earlier one does not count
wait_attached() {
  i=0
  while a=\$(gadget_addr \$2); [ -z "\$a" ] || ! grep -q "^attached \$(gadget_port \$2) (.*address \$a," "\$1" 2>/dev/null; do
    i=\$((i+1)); [ \$i -gt \$(( \${3:-60} * 5 )) ] && { echo "@@FAIL \$2 (\$(gadget_port \$2) address '\$a') not attached in \$1 after \${3:-60} s"; return 1; }
    sleep 0.2
  done
}
rearm_gadget() {
  unbind_gadget \$1; i=0
  while [ -e /sys/bus/usb/devices/\$(gadget_port \$1) ] && [ \$i -lt 150 ]; do sleep 0.2; i=\$((i+1)); done
  bind_gadget \$1; wait_attached \$2 \$1 60
}
now_ms() { read up rest < /proc/uptime; c=\${up#*.}; c=\${c#0}; echo \$(( \${up%.*} * 1000 + c * 10 )); }
wait_log() { i=0; while ! tail -n +\$(( \${4:-0} + 1 )) "\$1" 2>/dev/null | grep -q "\$2"; do i=\$((i+1)); [ \$i -gt \$(( \${3:-60} * 5 )) ] && { echo "@@FAIL no '\$2' in \$1 after \${3:-60} s"; return 1; }; sleep 0.2; done; }
echo "@@KERNEL \$(uname -r)"
. /script
# what the board's kernel said about itself going wrong: a failure message can then name the side at fault
trouble='BUG:|Oops|general protection fault|blocked for more than|WARNING:|Call Trace:|RIP:'
if dmesg | grep -q -E "\$trouble"; then
  echo "@@KERNEL-TROUBLE-BEGIN"; dmesg | grep -E -A12 "\$trouble" | head -200; echo "@@KERNEL-TROUBLE-END"
fi
echo "@@DONE"
poweroff -f
INIT
chmod +x "$root/init"
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) > "$tmp/initrd.gz"
timeout "$limit" qemu-system-x86_64 -accel tcg -cpu max -m 2048 -smp 1 -nographic -no-reboot -nic none \
  -kernel "$rig/vmlinux" -initrd "$tmp/initrd.gz" -append "console=ttyS0 quiet panic=-1 no_timer_check" \
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap \
  -virtfs "local,path=$work,mount_tag=work,security_model=none" </dev/null
