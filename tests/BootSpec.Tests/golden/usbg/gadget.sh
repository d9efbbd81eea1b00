# usb9pfs gadget set-up the initramfs does before mounting the root (rsinit does this itself)
mount -t configfs -o nosuid,noexec,nodev configfs /sys/kernel/config
mkdir /sys/kernel/config/usb_gadget/9pfs
cd /sys/kernel/config/usb_gadget/9pfs
echo 0x1d6b > idVendor
echo 0x0109 > idProduct
mkdir strings/0x409
echo 01234567 > strings/0x409/serialnumber
echo 'Pengutronix e.K.' > strings/0x409/manufacturer
echo '9PFS Gadget' > strings/0x409/product
mkdir configs/c.1
mkdir configs/c.1/strings/0x409
mkdir functions/usb9pfs.ci_hdrc.0
ln -s functions/usb9pfs.ci_hdrc.0 configs/c.1/usb9pfs.ci_hdrc.0
echo ci_hdrc.0 > UDC
sleep 1
mount -t 9p -o trans=usbg,cache=mmap,uname=root,access=user,dfltuid=0,dfltgid=0,aname=@EXPORT@ ci_hdrc.0 /newroot
