"""RootfsExportDriver: keeps a target's export current and serves it to the board, by running the native
`rootfs-export` program (update, serve, cmdline) for the transport of the resource it is bound to."""
import logging
import os
import re
import shlex
import signal
import subprocess
import threading
import time

import attr

from labgrid.driver.common import Driver
from labgrid.driver.exception import ExecutionError
from labgrid.factory import target_factory
from labgrid.step import step

from .resource import NFSPort, NinePTCPPort

_TRANSPORT_RESOURCES = {"USB9PFSPort", "NinePTCPPort", "NFSPort"}


class RootfsExportError(ExecutionError):
    """rootfs-export failed; the message carries what it printed."""


def _optional_str():
    return attr.ib(default=None, validator=attr.validators.optional(attr.validators.instance_of(str)))


@target_factory.reg_driver
@attr.s(eq=False)
class RootfsExportDriver(Driver):
    """Updates and serves one image's export for a target.

    Args:
        image (str): the image recipe, e.g. core-image-minimal
        build_dir (str): OE build directory or PTXdist BSP (default: $BUILDDIR, as rootfs-export decides)
        export (str): export directory (default: rootfs-export's own, printed by update)
        machine (str): MACHINE (default: the build's)
        board (str): this board's name: its own copy-on-write overlay over the shared export
        command (str): how to run the program (default: the env's tool 'rootfs-export', else `rootfs-export`)
        console (str): console= for the board's command line (default: the export's serial getty; 'none')
        udc (str): usb9pfs: the board's UDC name (= usb9pfs instance), for its command line
        buflen (int): usb9pfs: the buflen the board's gadget uses
        ready_timeout (float): seconds to wait for serve to report that it serves
    """
    bindings = {"port": _TRANSPORT_RESOURCES}

    image = attr.ib(validator=attr.validators.instance_of(str))
    build_dir = _optional_str()
    export = _optional_str()
    machine = _optional_str()
    board = _optional_str()
    command = _optional_str()
    console = _optional_str()
    udc = _optional_str()
    buflen = attr.ib(default=None, validator=attr.validators.optional(attr.validators.instance_of(int)))
    ready_timeout = attr.ib(default=120.0, converter=float)

    def __attrs_post_init__(self):
        super().__attrs_post_init__()
        self.logger = logging.getLogger(f"{self}")
        self._server = None
        self._server_lines = []
        self._server_lock = threading.Lock()
        self._reader = None

    # -- how the program runs ------------------------------------------------------------------------------------
    @property
    def transport(self):
        """tcp, usbg or nfs, from the bound resource."""
        if isinstance(self.port, NinePTCPPort):
            return "tcp"
        if isinstance(self.port, NFSPort):
            return "nfs"
        return "usbg"

    def _program(self):
        command = self.command
        if command is None and self.target.env is not None:
            command = self.target.env.config.get_tool("rootfs-export")
        argv = shlex.split(command or "rootfs-export")
        return self.port.command_prefix + argv

    def _path(self, value):
        if value is None or self.target.env is None or self.port.command_prefix:
            return value
        return self.target.env.config.resolve_path(value)

    def _build_args(self):
        args = []
        if self.build_dir:
            args += ["--build-dir", self._path(self.build_dir)]
        if self.machine:
            args += ["--machine", self.machine]
        if self.export:
            args += ["--export", self._path(self.export)]
        return args

    def _run(self, args, timeout):
        argv = self._program() + args
        self.logger.debug("running %s", argv)
        try:
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  timeout=timeout, check=False)
        except subprocess.TimeoutExpired as e:
            raise RootfsExportError(f"{shlex.join(argv)} did not finish within {timeout} s") from e
        except FileNotFoundError as e:
            raise RootfsExportError(f"cannot run {argv[0]!r}: {e.strerror} (set the driver's command, or "
                                    "tools: rootfs-export: in the environment)") from e
        out, err = done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace")
        if done.returncode != 0:
            raise RootfsExportError(f"{shlex.join(argv)} exited {done.returncode}:\n{out}{err}")
        return out

    def on_deactivate(self):
        self.stop()

    # -- the export -----------------------------------------------------------------------------------------------
    @Driver.check_active
    @step(title="update", result=True)
    def update(self, install=None, timeout=1800):
        """Creates or refreshes the export (image, then the feeds' packages). While serve runs, the running server
        applies it (the board sees new files without remount). Returns the program's output."""
        args = ["update", self.image] + self._build_args()
        for package in install or []:
            args += ["--install", package]
        out = self._run(args, timeout)
        found = re.search(r"^Export: (\S+)", out, re.MULTILINE)
        if found and not self.export:
            self.export = found.group(1)
        return out

    @property
    def export_path(self):
        if not self.export:
            raise RootfsExportError(f"{self}: no export directory yet: set 'export' or run update() first")
        return self._path(self.export)

    # -- serving ----------------------------------------------------------------------------------------------
    def _serve_args(self):
        port = self.port
        if self.transport == "tcp":
            return ["--9p", f"tcp:{port.bind_address}:{port.port}"]
        if self.transport == "nfs":
            if self.board:
                raise RootfsExportError(f"{self}: per-board overlays (board: {self.board}) are served over 9P only")
            args = ["--nfs", "--bind", port.bind_address]
            if port.port is not None:
                args += ["--nfs-port", str(port.port)]
            return args + (["--tcp-only"] if port.tcp_only else [])
        args = ["--usb", "--path", port.path]
        if port.vendor_id:
            args += ["--vid", port.vendor_id]
        if port.model_id:
            args += ["--pid", port.model_id]
        if self.board:
            args += ["--board", f"{port.path}={self.board}"]
        return args + self._usbg_args()

    def _usbg_args(self):
        args = ["--udc", self.udc] if self.udc else []
        return args + (["--buflen", str(self.buflen)] if self.buflen else [])

    @property
    def serving(self):
        return self._server is not None and self._server.poll() is None

    @property
    def server_output(self):
        """What the running (or last) serve printed so far."""
        with self._server_lock:
            return "".join(self._server_lines)

    @Driver.check_active
    @step(title="serve")
    def serve(self):
        """Starts `rootfs-export serve` for the bound resource and returns once it serves (its control socket is
        then where update() goes). Stopped by stop() or when the driver is deactivated."""
        if self.serving:
            return
        self.stop()
        argv = self._program() + ["serve", self.export_path] + self._serve_args()
        self.logger.debug("starting %s", argv)
        with self._server_lock:
            self._server_lines = []
        # a session of its own: stop() can reach whatever it starts (unfsd, pseudo) as one process group
        self._server = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, start_new_session=True)
        self._reader = threading.Thread(target=self._read_server, args=(self._server,), daemon=True)
        self._reader.start()
        self._await_serving(argv)

    def _read_server(self, process):
        for raw in iter(process.stdout.readline, b""):
            with self._server_lock:
                self._server_lines.append(raw.decode(errors="replace"))

    def _await_serving(self, argv):
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            out = self.server_output
            # both: the listener is bound ("serving ...") and the control socket for update() is up ("updates: ...")
            if re.search(r"^serving ", out, re.MULTILINE) and re.search(r"^updates: ", out, re.MULTILINE):
                return
            if self._server.poll() is not None:
                self._reader.join(5)
                out = self.server_output
                code, self._server = self._server.returncode, None
                raise RootfsExportError(f"{shlex.join(argv)} exited {code} before serving:\n{out}")
            time.sleep(0.05)
        out = self.server_output
        self.stop()
        raise RootfsExportError(f"{shlex.join(argv)} did not report serving within {self.ready_timeout} s:\n{out}")

    @step(title="stop")
    def stop(self, timeout=60.0):
        """Stops serve with SIGTERM (it commits the ownership database as on Ctrl-C), then its process group if
        anything of it is left. Not SIGINT: a process started from a script's background job inherits SIGINT
        ignored, and serve would never see it. Returns serve's exit code (None when nothing ran)."""
        process, self._server = self._server, None
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.logger.warning("serve did not stop on SIGTERM within %s s; killing it", timeout)
        self._kill_group(process.pid)
        code = process.wait()
        if self._reader is not None:
            self._reader.join(5)
        process.stdout.close()
        return code

    @staticmethod
    def _kill_group(pgid):
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    # -- the board's side -------------------------------------------------------------------------------------
    def _cmdline_args(self):
        port = self.port
        if self.transport == "tcp":
            args = ["--transport", "tcp", "--server", port.address, "--port", str(port.port)]
        elif self.transport == "nfs":
            args = ["--transport", "nfs", "--server", port.address]
            args += ["--port", str(port.port)] if port.port is not None else []
        else:
            args = ["--transport", "usbg"] + self._usbg_args()
        if self.console:
            args += ["--console", self.console]
        if self.board:
            args += ["--board", self.board]
        return args

    @Driver.check_active
    @step(title="cmdline", result=True)
    def cmdline(self, append=None):
        """The kernel command line that boots the board from this export over the bound transport (with its
        overlay when a board is named). usbg: the initramfs's gadget set-up is not part of it."""
        args = ["cmdline", self.export_path] + self._cmdline_args()
        if append:
            args += ["--append", append]
        try:
            out = self._run(args, 60)
        except RootfsExportError as e:
            if self.board and "--board" in str(e) and "Unrecognized" in str(e):
                raise RootfsExportError(f"{self}: this rootfs-export has no per-board overlays (cmdline --board); "
                                        f"drop 'board: {self.board}' or update rootfs-export\n{e}") from e
            raise
        lines = [line for line in out.splitlines() if line.strip() and not line.startswith("#")]
        if not lines:
            raise RootfsExportError(f"rootfs-export {shlex.join(args)} printed no command line")
        return lines[-1].strip()
