"""The systemd units: they verify, and the mount unit's command speaks the notify protocol correctly.

``systemd-analyze verify`` checks the unit files as systemd would load them
(only the install path of the ``portalfs`` script is pointed at this
virtualenv, since the units name ``/usr/local/bin/portalfs``).  The machine
need not run systemd: the notify test plays systemd's part itself — it runs
the unit's own ``ExecStart=`` line, expanded as systemd expands it, with
``$NOTIFY_SOCKET`` on a datagram socket it listens on, and expects
``READY=1`` only once the mount answers and ``STOPPING=1`` on ``SIGTERM``
(the unit's ``KillSignal``).
"""

from __future__ import annotations

import re
import shlex
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from tests.cli.conftest import BIN, Cli, no_mounts_left
from tests.support.mount_process import is_mounted
from tests.support.portal_process import PortalProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.fuse

UNITS = Path(__file__).resolve().parents[2] / "systemd"
INSTALLED = "/usr/local/bin/portalfs"


def unit_with_local_script(name: str, into: Path) -> Path:
    """A copy of the unit whose ``portalfs`` is this virtualenv's (systemd insists the command exists)."""
    text = (UNITS / name).read_text()
    assert INSTALLED in text
    copy = into / name
    copy.write_text(text.replace(INSTALLED, str(BIN / "portalfs")))
    return copy


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_units_verify_without_a_warning(tmp_path: Path) -> None:
    units = [unit_with_local_script(name, tmp_path) for name in ("portalfs@.service", "portalfs-portal.service")]
    result = subprocess.run(["systemd-analyze", "verify", "--man=no", *map(str, units)],
                            capture_output=True, text=True, timeout=60)
    # Unknown keys or bad values are only warnings (status 0): any output at all is a finding.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), result.stdout + result.stderr


def exec_start(unit: str, environment: dict[str, str], instance: str) -> list[str]:
    """The unit's ``ExecStart=`` as systemd runs it: split into words, ``${NAME}`` and ``%i`` replaced in place."""
    [line] = [line for line in (UNITS / unit).read_text().splitlines() if line.startswith("ExecStart=")]
    words = shlex.split(line.removeprefix("ExecStart="))
    return [re.sub(r"\$\{(\w+)\}", lambda match: environment[match[1]], word).replace("%i", instance) for word in words]


def receive(sock: socket.socket, timeout: float) -> list[str]:
    sock.settimeout(timeout)
    return sock.recv(4096).decode().split("\n")


def test_mount_unit_command_notifies_ready_once_mounted_and_stopping_on_sigterm(
    cli: Cli, sample_portal: PortalProcess
) -> None:
    mountpoint = cli.mountpoint()
    credentials = cli.root / "credentials"
    credentials.mkdir(mode=0o700)
    (credentials / "password").write_text(sample_portal.users["alice"] + "\n")
    # /etc/portalfs/NAME.conf, as the unit's comment documents it.
    conf = {"PORTALFS_URL": sample_portal.url, "PORTALFS_MOUNTPOINT": str(mountpoint), "PORTALFS_USER": "alice",
            "PORTALFS_OPTIONS": f"ca_file={sample_portal.cert},attr_timeout=5"}
    command = exec_start("portalfs@.service", {**conf, "CREDENTIALS_DIRECTORY": str(credentials)}, "drive")
    assert command[0] == INSTALLED
    command = [word.replace("/var/cache/portalfs/", f"{cli.root}/cache/") for word in command[1:]]  # CacheDirectory=

    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(cli.root / "notify"))
        process = cli.start(*command, env={"NOTIFY_SOCKET": str(cli.root / "notify")})
        try:
            first = receive(sock, 60)
        except TimeoutError:
            raise AssertionError(f"no notification; the mount said:\n{cli.output(process)}") from None
        # Whatever systemd is told first must be READY=1, and by then the mount answers.
        assert is_mounted(mountpoint)
        assert (mountpoint / "Documents" / "Report.txt").read_bytes()
        assert "READY=1" in first, first
        assert any(state.startswith("STATUS=mounted at") for state in first), first

        process.send_signal(signal.SIGTERM)
        assert "STOPPING=1" in receive(sock, 30)
        assert process.wait(timeout=30) == 0, cli.output(process)
    assert no_mounts_left(cli)
    assert (cli.root / "cache" / "drive").is_dir(), "the unit's --cache-dir was not used"
    wait_for(lambda: not cli.processes(), 15, "the mount to end")
