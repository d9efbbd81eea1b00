"""The exporter side of a farm: labgrid 0.4.1's own ResourceExport machinery publishing this package's resources
as a client's RemotePlace would receive them (the coordinator and its transport are not started here)."""
from labgrid.factory import target_factory
from labgrid.target import Target

from rootfs_export_labgrid import NetworkUSB9PFSGadget, USB9PFSPort
from rootfs_export_labgrid.exporter import labgrid_exporter


def test_a_gadget_is_published_as_a_network_gadget_that_clients_can_build():
    export = labgrid_exporter.exports["USB9PFSGadget"](
        {"cls": "USB9PFSGadget", "params": {"match": {"@sys_name": "1-1.2"}}}, host="farm-1")
    assert export.poll()
    assert export.cls == "NetworkUSB9PFSGadget"
    assert not export.avail  # no such gadget on this machine
    remote = target_factory.make_resource(Target("board"), export.cls, "gadget", export.args)
    assert isinstance(remote, NetworkUSB9PFSGadget) and remote.host == "farm-1" and remote.path is None


def test_a_serving_port_is_published_with_the_exporters_host():
    export = labgrid_exporter.exports["USB9PFSPort"]({"cls": "USB9PFSPort", "params": {"path": "1-1.2"}}, host="farm-1")
    assert export.poll() and export.avail
    port = target_factory.make_resource(Target("board"), export.cls, "port", export.args)
    assert isinstance(port, USB9PFSPort) and (port.path, port.host) == ("1-1.2", "farm-1")
