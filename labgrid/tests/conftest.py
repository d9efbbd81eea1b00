"""Shared set-up of the labgrid package's tests: the package on sys.path, the rootfs-export program to run (as uid
65534 when the tests run as root, as users run it), scratch directories that user owns, environment files."""
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE_ROOT = os.path.dirname(HERE)
REPO = os.path.dirname(PACKAGE_ROOT)
SAMPLE_BUILD = os.path.join(REPO, "samples", "oe-build")
SAMPLE_IMAGE = "reference-base-image"
NOBODY = 65534
sys.path.insert(0, PACKAGE_ROOT)


def tool_command():
    """ROOTFS_EXPORT_COMMAND (the xunit wrapper sets it to the build's rootfs-export.dll), else the repository's
    launcher, which publishes the native program when it is missing. As uid/gid 65534 under setpriv when root."""
    command = os.environ.get("ROOTFS_EXPORT_COMMAND") or os.path.join(REPO, "rootfs-export")
    if os.geteuid() == 0:
        command = f"setpriv --reuid={NOBODY} --regid={NOBODY} --clear-groups -- {command}"
    return command


def run_tool(*args, timeout=300):
    """rootfs-export run directly (not through the driver), as the driver runs it."""
    done = subprocess.run(shlex.split(tool_command()) + list(args), capture_output=True, text=True, timeout=timeout,
                          env=tool_env())
    return done


def tool_env():
    env = dict(os.environ, HOME="/tmp", DOTNET_CLI_TELEMETRY_OPTOUT="1", DOTNET_NOLOGO="1")
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def scratch():
    """A directory the tool's user owns; removed afterwards."""
    path = tempfile.mkdtemp(prefix="rfe-labgrid-")
    os.chmod(path, 0o755)
    if os.geteuid() == 0:
        os.chown(path, NOBODY, NOBODY)
    yield path
    subprocess.run(["rm", "-rf", "--one-file-system", path], check=False)


@pytest.fixture(autouse=True)
def _tool_environment(monkeypatch):
    monkeypatch.setenv("HOME", "/tmp")
    monkeypatch.setenv("DOTNET_CLI_TELEMETRY_OPTOUT", "1")
    monkeypatch.setenv("DOTNET_NOLOGO", "1")


def write_env(directory, targets, **extra):
    """An environment file importing the package, with the given targets; returns its path."""
    data = {"imports": ["rootfs_export_labgrid"], "targets": targets}
    data.update(extra)
    path = os.path.join(directory, "env.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    return path


def peer(program):
    """A peer program the test command installs (tests/labgrid/apt-packages); missing is a failure, not a skip."""
    found = shutil.which(program) or shutil.which(program, path="/usr/sbin:/sbin")
    if not found:
        pytest.fail(f"peer '{program}' is not installed; ./run-tests installs it (tests/*/apt-packages)")
    return found
