"""The dev loop driven by labgrid (issue 23): RootfsExportStrategy takes a QEMU "board" from off through update and
serve to a booted shell, with labgrid's QEMUDriver booting Debian's kernel whose initramfs mounts the root our
driver serves over 9P (the command line from `rootfs-export cmdline`). The board runs /usr/bin/hello from the export;
the package is rebuilt into the feed, refresh() applies it through the running server, and the board runs the new
binary without remount. tests/Integration.Tests/LabgridTests.cs prepares the build, kernel and initramfs and
passes them in RFE_LABGRID_E2E; one TCG guest at a time (/tmp/rfe-qemu.lock)."""
import fcntl
import json
import os
import shlex
import time

import pytest

from labgrid import Environment

from conftest import free_port, run_tool, tool_command, write_env

pytestmark = pytest.mark.e2e
PROMPT = "rfe-board# "


def environment(directory, fixture, port):
    """The env file a user would write for a QEMU board on 9P over TCP: QEMU's slirp forwards 10.0.2.100:port in
    the guest to the server on 127.0.0.1:port."""
    forward = f"user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:{port}-cmd:socat STDIO TCP:127.0.0.1:{port}"
    qemu_args = ["-accel", "tcg", "-smp", "1", "-no-reboot", "-initrd", fixture["initrd"],
                 "-netdev", forward, "-device", "virtio-net-pci,netdev=n0"]
    main = {
        "resources": {"NinePTCPPort": {"address": "10.0.2.100", "listen": "127.0.0.1", "port": port}},
        "drivers": {
            "QEMUDriver": {"qemu_bin": "qemu", "machine": "pc", "cpu": "max", "memory": "512M", "kernel": "kernel",
                           "boot_args": fixture["kernel_args"], "extra_args": shlex.join(qemu_args)},
            "RootfsExportDriver": {"image": fixture["image"], "build_dir": fixture["build_dir"],
                                   "command": tool_command(), "console": "none"},
            "ShellDriver": {"prompt": PROMPT, "login_prompt": "login: ", "username": "root", "login_timeout": 900},
            "RootfsExportStrategy": {},
        },
    }
    return Environment(write_env(directory, {"main": main}, tools={"qemu": "/usr/bin/qemu-system-x86_64"},
                                 images={"kernel": fixture["kernel"]}))


def hello(shell):
    return shell.run_check("/mnt/usr/bin/hello", timeout=120)


def test_labgrid_boots_the_board_over_our_9p_server_and_a_rebuilt_package_reaches_it(scratch):
    if not os.environ.get("RFE_LABGRID_E2E"):
        pytest.skip("needs the build, kernel and initramfs LabgridTests prepares (run it through dotnet test)")
    with open(os.environ["RFE_LABGRID_E2E"]) as f:
        fixture = json.load(f)
    env = environment(scratch, fixture, free_port())
    target = env.get_target("main")
    strategy = target.get_driver("RootfsExportStrategy")
    export = target.get_driver("RootfsExportDriver")
    with open("/tmp/rfe-qemu.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            started = time.monotonic()
            strategy.transition("shell")
            booted = time.monotonic() - started
            shell = target.get_driver("ShellDriver")
            assert hello(shell) == ["hello OLD"]
            mount = shell.run_check("grep ' /mnt ' /proc/mounts")[0]
            assert mount.startswith("10.0.2.100 /mnt 9p ") and "trans=tcp" in mount, mount
            assert f"aname={export.export_path}" in mount, mount

            os.replace(fixture["staged"], fixture["landed"])  # bitbake lands the rebuilt package
            landed = time.monotonic()
            out = strategy.refresh()
            assert "1 upgraded" in out, out
            seen = None
            for _ in range(60):  # the server applied it before refresh() returned; a few tries for the client
                seen = hello(shell)
                if seen == ["hello NEW"]:
                    break
                time.sleep(1)
            assert seen == ["hello NEW"], export.server_output
            print(f"\nlabgrid dev loop: off -> shell {booted:.1f} s; package landed -> board runs it "
                  f"{time.monotonic() - landed:.1f} s (refresh() and one shell command included)")
            strategy.transition("off")
            assert not export.serving
        finally:
            target.cleanup()
    check = run_tool("check", export.export_path)
    assert check.returncode == 0 and "clean" in check.stdout, check.stdout + check.stderr
