"""labgrid support for rootfs-export: resources for usb9pfs gadgets and 9P/NFS network ports, a driver that updates
and serves a board's export with the native rootfs-export program, and a strategy for the development loop.

Importing the package registers its classes with labgrid (environment files: `imports: [rootfs_export_labgrid]`).
"""
from .resource import (USB9PFSGadget, NetworkUSB9PFSGadget, USB9PFSPort, NinePTCPPort, NFSPort,
                       is_usb9pfs_interface)
from .driver import RootfsExportDriver, RootfsExportError
from .strategy import RootfsExportStrategy

__all__ = [
    "USB9PFSGadget", "NetworkUSB9PFSGadget", "USB9PFSPort", "NinePTCPPort", "NFSPort", "is_usb9pfs_interface",
    "RootfsExportDriver", "RootfsExportError", "RootfsExportStrategy",
]
