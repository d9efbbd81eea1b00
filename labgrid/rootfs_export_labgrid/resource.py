"""Resources: where a board reaches the export.

USB9PFSGadget is a board running the Linux usbg 9P transport, seen on this host's USB as a device with an
interface of class FF, subclass FF, protocol 09 (any vendor and product id). It is matched from udev events like
labgrid's own USB resources; a `match` narrows it to one board, e.g. by port (`'@sys_name': '1-1.2'`) or serial.
NetworkUSB9PFSGadget is the same gadget on another host, as labgrid-exporter publishes it.
USB9PFSPort is where the driver serves usb9pfs: the USB port the board's gadget appears on. It is a static
resource because the server must run before the board boots (the gadget appears only when the board's initramfs
creates it); `serve --usb --path` attaches whenever it appears.
NinePTCPPort and NFSPort are the network forms: the address the board connects to, and where the server listens.
"""
import attr

from labgrid.factory import target_factory
from labgrid.resource.common import Resource
from labgrid.resource.remote import RemoteUSBResource
from labgrid.resource.udev import USBResource
from labgrid.util.ssh import sshmanager

#: the usb9pfs function's interface: vendor-specific class and subclass, protocol 9 (as the kernel's uevent says it)
USB9PFS_INTERFACE = (0xFF, 0xFF, 0x09)


def is_usb9pfs_interface(properties, attributes=None):
    """True when a udev usb_interface device is a usb9pfs function.

    The kernel's uevent gives INTERFACE=class/subclass/protocol in decimal; sysfs gives bInterfaceClass etc. in hex.
    Either is enough (no udev daemon is needed for the first)."""
    if properties.get('DEVTYPE') != 'usb_interface':
        return False
    interface = properties.get('INTERFACE')
    if interface:
        try:
            return tuple(int(part) for part in interface.split('/')) == USB9PFS_INTERFACE
        except ValueError:
            return False
    if attributes is None:
        return False
    values = [attributes.get(name) for name in ('bInterfaceClass', 'bInterfaceSubClass', 'bInterfaceProtocol')]
    if any(v is None for v in values):
        return False
    return tuple(int(v.decode() if isinstance(v, bytes) else v, 16) for v in values) == USB9PFS_INTERFACE


def _sysfs_hex(device, name):
    if device is None:
        return None
    value = device.attributes.get(name)
    return int(value.decode(), 16) if value else None


@target_factory.reg_resource
@attr.s(eq=False)
class USB9PFSGadget(USBResource):
    """A usb9pfs gadget on this host's USB: the interface FF/FF/09 of any device.

    `path` is the device's port (BUS-PORT[.PORT...], as `rootfs-export serve --usb --path` takes it)."""

    def __attrs_post_init__(self):
        self.match['SUBSYSTEM'] = 'usb'
        self.match['DEVTYPE'] = 'usb_interface'
        super().__attrs_post_init__()

    def filter_match(self, device):
        if not is_usb9pfs_interface(device.properties, device.attributes):
            return False
        return super().filter_match(device)

    # vendor, product and serial from sysfs: the udev database (ID_VENDOR_ID, ...) is not there without udevd
    @property
    def vendor_id(self):
        return _sysfs_hex(self._get_usb_device(), 'idVendor')

    @property
    def model_id(self):
        return _sysfs_hex(self._get_usb_device(), 'idProduct')

    @property
    def serial(self):
        device = self._get_usb_device()
        value = device.attributes.get('serial') if device is not None else None
        return value.decode() if value else None


@target_factory.reg_resource
@attr.s(eq=False)
class NetworkUSB9PFSGadget(RemoteUSBResource):
    """A usb9pfs gadget on an exporter's host (published by rootfs_export_labgrid.exporter)."""
    serial = attr.ib(default=None, validator=attr.validators.optional(attr.validators.instance_of(str)))

    def __attrs_post_init__(self):
        self.timeout = 10.0
        super().__attrs_post_init__()


@attr.s(eq=False)
class _ServedPort(Resource):
    """Common part of the network forms: `address` is what the board connects to, `listen` where the server binds
    (default: the same address), `host` the machine that runs the server (default: this one; else over ssh)."""
    address = attr.ib(validator=attr.validators.instance_of(str))
    listen = attr.ib(default=None, validator=attr.validators.optional(attr.validators.instance_of(str)))
    host = attr.ib(default=None, validator=attr.validators.optional(attr.validators.instance_of(str)))

    @property
    def bind_address(self):
        return self.listen or self.address

    @property
    def command_prefix(self):
        if not self.host:
            return []
        return sshmanager.get(self.host).get_prefix() + ['--']


@target_factory.reg_resource
@attr.s(eq=False)
class NinePTCPPort(_ServedPort):
    """9P2000.L over TCP: the board mounts address:port; the server listens on listen:port.

    Behind NAT or port forwarding (QEMU's slirp, say) the two differ: listen 127.0.0.1, address 10.0.2.100."""
    port = attr.ib(default=5640, validator=attr.validators.instance_of(int))


@target_factory.reg_resource
@attr.s(eq=False)
class NFSPort(_ServedPort):
    """NFSv3 (unfsd under pseudo): the board mounts address; `port` None takes the first free from 3049."""
    port = attr.ib(default=None, validator=attr.validators.optional(attr.validators.instance_of(int)))
    tcp_only = attr.ib(default=False, validator=attr.validators.instance_of(bool))


@target_factory.reg_resource
@attr.s(eq=False)
class USB9PFSPort(Resource):
    """Serve usb9pfs to the gadget on this USB port (BUS-PORT[.PORT...], e.g. 1-1.2, as `rootfs-export usb list`
    shows it), on this host or on `host` over ssh. vendor_id/model_id narrow it further (hex strings)."""
    path = attr.ib(validator=attr.validators.instance_of(str))
    host = attr.ib(default=None, validator=attr.validators.optional(attr.validators.instance_of(str)))
    vendor_id = attr.ib(default=None, validator=attr.validators.optional(attr.validators.instance_of(str)))
    model_id = attr.ib(default=None, validator=attr.validators.optional(attr.validators.instance_of(str)))

    @property
    def command_prefix(self):
        if not self.host:
            return []
        return sshmanager.get(self.host).get_prefix() + ['--']
