"""RootfsExportDriver with the real rootfs-export on the bundled sample build (samples/oe-build), in a labgrid
Environment read from a YAML file as users write it. What it serves is read back with diod's 9P client."""
import os
import socket
import subprocess

import pytest

from labgrid import Environment
from labgrid.binding import BindingState

from conftest import SAMPLE_BUILD, SAMPLE_IMAGE, free_port, peer, run_tool, tool_command, write_env
from rootfs_export_labgrid import RootfsExportDriver, RootfsExportError


def make_target(scratch, port_resource, **driver):
    driver = {"image": SAMPLE_IMAGE, "build_dir": SAMPLE_BUILD, "export": os.path.join(scratch, "export"),
              "command": tool_command(), **driver}
    env = Environment(write_env(scratch, {"board": {"resources": port_resource,
                                                     "drivers": {"RootfsExportDriver": driver}}}))
    target = env.get_target("board")
    return target, target.get_driver("RootfsExportDriver")


@pytest.fixture
def tcp(scratch):
    port = free_port()
    target, driver = make_target(scratch, {"NinePTCPPort": {"address": "192.0.2.1", "listen": "127.0.0.1", "port": port}})
    yield target, driver, port
    target.cleanup()


def read_9p(port, aname, path):
    """diodcat, a 9P2000.L client of diod's, reads a file of the served export."""
    done = subprocess.run([peer("diodcat"), "-s", f"127.0.0.1:{port}", "-a", aname, "-t", "30", path],
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode(errors="replace")
    return done.stdout.decode()


def port_is_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def test_update_creates_the_export_from_the_build(tcp, scratch):
    _, driver, _ = tcp
    out = driver.update()
    export = os.path.join(scratch, "export")
    assert f"Export: {export}" in out
    assert driver.export_path == export
    assert open(os.path.join(export, "etc/hostname")).read() == "qemux86-64\n"
    check = run_tool("check", export)
    assert check.returncode == 0 and "clean" in check.stdout, check.stdout + check.stderr


def test_serve_serves_the_export_over_9p_until_stopped(tcp):
    target, driver, port = tcp
    driver.update()
    driver.serve()
    assert driver.serving
    assert read_9p(port, driver.export_path, "/etc/hostname") == "qemux86-64\n"
    assert driver.stop() == 0
    assert "stopped; the database is consistent" in driver.server_output
    assert not driver.serving and port_is_free(port)


def test_update_while_serving_is_applied_by_the_running_server(tcp):
    _, driver, port = tcp
    driver.update()
    driver.serve()
    out = driver.update()
    assert "Summary:" in out
    assert read_9p(port, driver.export_path, "/etc/hostname") == "qemux86-64\n"


def test_deactivating_the_driver_stops_the_server(tcp):
    target, driver, port = tcp
    driver.update()
    driver.serve()
    pid = driver._server.pid
    target.deactivate(driver)
    assert driver.state is BindingState.bound
    assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"
    assert port_is_free(port)


def test_cmdline_is_the_board_side_of_the_bound_port(tcp):
    _, driver, port = tcp
    driver.update()
    line = driver.cmdline()
    assert line.startswith("root=192.0.2.1 rootfstype=9p rootflags=trans=tcp,")
    assert f"port={port}," in line
    assert f"aname={driver.export_path}" in line


def test_a_serve_that_cannot_bind_fails_with_what_the_tool_said(tcp):
    _, driver, port = tcp
    driver.update()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen(1)
        with pytest.raises(RootfsExportError) as failed:
            driver.serve()
    assert "exited" in str(failed.value) and "before serving" in str(failed.value)
    assert not driver.serving


def test_nfs_without_unfsd_fails_clearly(scratch):
    """Debian has no unfsd (docs/DEVLOOP.md says why): serve --nfs must fail before serving, naming it."""
    port = free_port()
    target, driver = make_target(scratch, {"NFSPort": {"address": "192.0.2.1", "port": port}})
    try:
        driver.update()
        assert driver.transport == "nfs"
        line = driver.cmdline()
        assert "root=/dev/nfs" in line and f"nfsroot=192.0.2.1:{driver.export_path}" in line and str(port) in line
        with pytest.raises(RootfsExportError, match="unfsd"):
            driver.serve()
    finally:
        target.cleanup()


def test_a_board_name_selects_its_overlay_or_is_refused_clearly(scratch):
    port = free_port()
    target, driver = make_target(scratch, {"NinePTCPPort": {"address": "127.0.0.1", "port": port}}, board="rock3a")
    try:
        driver.update()
        assert "--board" in run_tool("cmdline", "--help").stdout
        assert f"aname={driver.export_path}@rock3a" in driver.cmdline()
    finally:
        target.cleanup()


def test_a_missing_program_is_named(scratch):
    target, driver = make_target(scratch, {"NinePTCPPort": {"address": "127.0.0.1"}}, command="/nonexistent/rootfs-export")
    try:
        with pytest.raises(RootfsExportError, match="cannot run '/nonexistent/rootfs-export'"):
            driver.update()
    finally:
        target.cleanup()
