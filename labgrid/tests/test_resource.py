"""USB9PFSGadget against labgrid's own udev matching (USBResource.try_match), fed with devices that libudev builds
from uevents in the kernel's format (pyudev.Devices.from_environment, as a udev RUN program gets them): the
usb_interface uevent carries INTERFACE=class/subclass/protocol in decimal, which is all the kernel says before any
udev rule ran. The rig test (test_usbg_rig.py) matches a real gadget's sysfs."""
import json
import subprocess

import pytest

from conftest import PACKAGE_ROOT

from labgrid.target import Target
from rootfs_export_labgrid import NetworkUSB9PFSGadget, USB9PFSPort, is_usb9pfs_interface

DEVICE = "/devices/pci0000:00/0000:00:01.2/usb1/1-1"

# what drivers/usb/core (usb_if_uevent, usb_dev_uevent) sends for a gadget with one usb9pfs function
USB9PFS_INTERFACE = {
    "DEVPATH": DEVICE + "/1-1:1.0", "SUBSYSTEM": "usb", "DEVTYPE": "usb_interface",
    "PRODUCT": "1d6b/109/612", "TYPE": "0/0/0", "INTERFACE": "255/255/9",
    "MODALIAS": "usb:v1D6Bp0109d0612dc00dsc00dp00icFFiscFFip09in00",
}
MASS_STORAGE_INTERFACE = dict(USB9PFS_INTERFACE, DEVPATH=DEVICE + "/1-1:1.1", INTERFACE="8/6/80",
                              MODALIAS="usb:v1D6Bp0109d0612dc00dsc00dp00ic08isc06ip50in01")
# another vendor-specific function that is not 9P (protocol 0)
VENDOR_INTERFACE = dict(USB9PFS_INTERFACE, DEVPATH=DEVICE + "/1-1:1.2", INTERFACE="255/255/0")
USB_DEVICE = {"DEVPATH": DEVICE, "SUBSYSTEM": "usb", "DEVTYPE": "usb_device", "PRODUCT": "1d6b/109/612",
              "TYPE": "0/0/0", "BUSNUM": "001", "DEVNUM": "002", "DEVNAME": "bus/usb/001/002"}


# libudev reads a process's environment once: each uevent is matched in a process of its own (as udev runs a
# RUN program per event), with nothing but the uevent in its environment
MATCH_ONE = """
import json, sys, pyudev
from labgrid.target import Target
from rootfs_export_labgrid import USB9PFSGadget
gadget = USB9PFSGadget(Target("board"), None, match=json.loads(sys.argv[1]))
matched = gadget.try_match(pyudev.Devices.from_environment(pyudev.Context()))
print(json.dumps({"matched": matched, "avail": gadget.avail,
                  "sys_path": gadget.device.sys_path if gadget.device is not None else None}))
"""


def match_uevent(action, variables, match=None):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": PACKAGE_ROOT, "PYTHONDONTWRITEBYTECODE": "1",
           "ACTION": action, "SEQNUM": "4711", **variables}
    done = subprocess.run(["/usr/bin/python3", "-c", MATCH_ONE, json.dumps(match or {})], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_usb9pfs_interface_makes_the_gadget_available():
    result = match_uevent("add", USB9PFS_INTERFACE)
    assert result == {"matched": True, "avail": True, "sys_path": "/sys" + USB9PFS_INTERFACE["DEVPATH"]}


def test_its_removal_leaves_it_unavailable():
    assert match_uevent("remove", USB9PFS_INTERFACE) == {"matched": True, "avail": False, "sys_path": None}


@pytest.mark.parametrize("variables", [MASS_STORAGE_INTERFACE, VENDOR_INTERFACE, USB_DEVICE],
                         ids=["mass-storage-interface", "vendor-interface-not-9p", "the-usb-device-itself"])
def test_other_usb_devices_and_interfaces_do_not_match(variables):
    assert match_uevent("add", variables) == {"matched": False, "avail": False, "sys_path": None}


def test_any_vendor_and_product_id_matches():
    other = dict(USB9PFS_INTERFACE, PRODUCT="1234/5678/100", MODALIAS="usb:v1234p5678d0100dc00dsc00dp00icFFiscFFip09in00")
    assert match_uevent("add", other)["avail"]


def test_a_match_narrows_it_to_one_board():
    mine = {"PRODUCT": "1d6b/109/612"}
    assert not match_uevent("add", dict(USB9PFS_INTERFACE, PRODUCT="1d6b/109/613"), mine)["matched"]
    assert match_uevent("add", USB9PFS_INTERFACE, mine)["avail"]


def test_the_interface_test_reads_the_uevent_or_sysfs():
    assert is_usb9pfs_interface(USB9PFS_INTERFACE)
    assert not is_usb9pfs_interface(MASS_STORAGE_INTERFACE)
    assert not is_usb9pfs_interface(USB_DEVICE)
    sysfs = {"bInterfaceClass": b"ff", "bInterfaceSubClass": b"ff", "bInterfaceProtocol": b"09"}
    no_uevent = {"DEVTYPE": "usb_interface"}
    assert is_usb9pfs_interface(no_uevent, sysfs)
    assert not is_usb9pfs_interface(no_uevent, dict(sysfs, bInterfaceProtocol=b"00"))
    assert not is_usb9pfs_interface(no_uevent, {})


def test_the_exporter_form_and_the_serving_port_are_labgrid_resources():
    target = Target("board")
    remote = NetworkUSB9PFSGadget(target, None, host="exporter-1", busnum=1, devnum=2, path="1-1",
                                  vendor_id=0x1d6b, model_id=0x0109, serial="rock3a")
    port = USB9PFSPort(target, None, path="1-1")
    assert remote.path == "1-1" and remote.serial == "rock3a"
    assert port.command_prefix == []
    # on another host the driver runs rootfs-export there through labgrid's ssh connection (not opened here)
    assert USB9PFSPort(target, "far", path="1-1", host="exporter-1").host == "exporter-1"
