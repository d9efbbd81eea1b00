"""Run inside the usbg rig (tests/rigs/usbg-guest.sh, from LabgridTests): the guest's own USB host sees a real
usb9pfs gadget made by Linux's usb_f_9pfs, with no udev daemon, as a minimal lab host might.
  rig_usb9pfs.py match PORT                   -> @@MATCH {json of what USB9PFSGadget found}
  rig_usb9pfs.py serve PORT UDC DIR STOPFILE  -> the driver updates and serves the sample build's export to the
                                                 gadget at PORT; @@MOUNT OPTIONS SOURCE once attached; stops when
                                                 STOPFILE appears (bounded), then @@STOPPED CODE"""
import json
import os
import re
import sys
import time

from labgrid import Environment
from labgrid.target import Target

from conftest import SAMPLE_BUILD, SAMPLE_IMAGE, tool_command, write_env
from rootfs_export_labgrid import USB9PFSGadget


def match(port):
    target = Target("board")
    gadget = USB9PFSGadget(target, None, match={"@sys_name": port})
    elsewhere = USB9PFSGadget(target, "elsewhere", match={"@sys_name": "2-1"})
    target.await_resources([gadget], timeout=20)
    print("@@MATCH " + json.dumps({"avail": gadget.avail, "path": gadget.path, "vendor_id": gadget.vendor_id,
                                   "model_id": gadget.model_id, "serial": gadget.serial, "busnum": gadget.busnum,
                                   "devnum": gadget.devnum, "elsewhere": elsewhere.avail}), flush=True)


def serve(port, udc, directory, stopfile):
    env = Environment(write_env(directory, {"board": {
        "resources": {"USB9PFSPort": {"path": port}},
        "drivers": {"RootfsExportDriver": {"image": SAMPLE_IMAGE, "build_dir": SAMPLE_BUILD, "udc": udc,
                                           "export": os.path.join(directory, "export"), "command": tool_command()}}}}))
    target = env.get_target("board")
    driver = target.get_driver("RootfsExportDriver")
    driver.update()
    driver.serve()
    line = driver.cmdline()
    source = re.search(r"\broot=(\S+)", line).group(1)
    options = re.search(r"\brootflags=(\S+)", line).group(1)
    for _ in range(600):
        if re.search(rf"^attached {re.escape(port)} ", driver.server_output, re.MULTILINE):
            break
        time.sleep(0.2)
    print(f"@@MOUNT {options} {source}", flush=True)
    for _ in range(1200):
        if os.path.exists(stopfile):
            break
        time.sleep(0.1)
    code = driver.stop()
    print(driver.server_output, flush=True)
    print(f"@@STOPPED {code}", flush=True)
    target.cleanup()


if __name__ == "__main__":
    {"match": match, "serve": serve}[sys.argv[1]](*sys.argv[2:])
