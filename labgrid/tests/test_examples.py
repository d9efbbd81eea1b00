"""The example files in labgrid/examples load with Debian's labgrid: targets build (nothing is activated), the
exporter configuration's rootfs-export resources become exports."""
import os

import pytest

from labgrid import Environment
from labgrid.remote.config import ResourceConfig

from conftest import PACKAGE_ROOT
from rootfs_export_labgrid import RootfsExportDriver, RootfsExportStrategy
from rootfs_export_labgrid.exporter import labgrid_exporter

EXAMPLES = os.path.join(PACKAGE_ROOT, "examples")


@pytest.mark.parametrize("name,target", [("qemu-9p.yaml", "main"), ("board-usb9pfs.yaml", "rock3a")])
def test_an_example_environment_builds_its_target(name, target):
    env = Environment(os.path.join(EXAMPLES, name))
    t = env.get_target(target)
    strategy = t.get_driver(RootfsExportStrategy, activate=False)
    assert isinstance(strategy.export, RootfsExportDriver)
    assert strategy.export.transport == ("tcp" if name == "qemu-9p.yaml" else "usbg")
    assert list(strategy.states) == ["booted", "off", "serving", "shell", "unknown", "updated"]
    assert strategy.find_abs_path("shell") == ["unknown", "off", "updated", "serving", "booted", "shell"]
    t.cleanup()


def test_the_exporter_example_publishes_the_boards_usb9pfs_resources():
    config = ResourceConfig(os.path.join(EXAMPLES, "exporter.yaml"))
    group = config.data["rock3a-1"]
    published = {name: labgrid_exporter.exports[name]({"cls": name, "params": dict(group[name])}, host="farm-1")
                 for name in ("USB9PFSPort", "USB9PFSGadget")}
    for export in published.values():
        export.poll()
    assert published["USB9PFSPort"].args == {"path": "1-1.2", "host": "farm-1"}
    assert published["USB9PFSGadget"].cls == "NetworkUSB9PFSGadget"
