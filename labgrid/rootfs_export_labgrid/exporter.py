"""labgrid-exporter with this package's resources: `python3 -m rootfs_export_labgrid.exporter [labgrid-exporter
arguments]`. labgrid 0.4.1's exporter only publishes the classes in its own table; this adds USB9PFSGadget (seen as
NetworkUSB9PFSGadget by clients) and USB9PFSPort, then runs labgrid's exporter unchanged."""
import attr

from labgrid.remote import exporter as labgrid_exporter

from .resource import USB9PFSGadget


@attr.s(eq=False)
class USB9PFSGadgetExport(labgrid_exporter.ResourceExport):
    """Publishes a local usb9pfs gadget: its port, bus/device numbers, ids and serial, and whether it is there."""

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        self.data['cls'] = f"Network{self.cls}"
        self.local = USB9PFSGadget(target=None, name=None, **self.local_params)

    def _get_params(self):
        return {
            'host': self.host,
            'busnum': self.local.busnum,
            'devnum': self.local.devnum,
            'path': self.local.path,
            'vendor_id': self.local.vendor_id,
            'model_id': self.local.model_id,
            'serial': self.local.serial,
        }


@attr.s(eq=False)
class USB9PFSPortExport(labgrid_exporter.ResourceExport):
    """Publishes where this host serves usb9pfs to a board: clients run rootfs-export here over ssh."""

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        self.local = None
        self.data['avail'] = True

    def _get_params(self):
        return dict(self.local_params, host=self.host)

    def poll(self):
        params = self._get_params()
        if self.params != params:
            self.data['params'].update(params)
            return True
        return False


labgrid_exporter.exports["USB9PFSGadget"] = USB9PFSGadgetExport
labgrid_exporter.exports["USB9PFSPort"] = USB9PFSPortExport


def main():
    labgrid_exporter.main()


if __name__ == "__main__":
    main()
