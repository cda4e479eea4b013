"""SIGTERM and SIGINT stop a foreground mount the way ``portalfs unmount`` does: unmounted, status 0.

A signal is how service managers (``systemctl stop``, container runtimes) and
users (Ctrl-C) end a foreground mount; it is a normal stop, not a failure, so
the status is 0 — a non-zero status would make systemd mark the unit failed.
"""

from __future__ import annotations

import signal
import subprocess

import pytest

from tests.cli.conftest import Cli, no_mounts_left, wait_for
from tests.support.portal_process import PortalProcess

pytestmark = pytest.mark.fuse


def start_foreground(cli: Cli, portal: PortalProcess) -> subprocess.Popen:
    mountpoint = cli.mountpoint()
    process = cli.start("mount", portal.url, str(mountpoint), "--user", "alice", "--ca-file", str(portal.cert),
                        "--foreground", env={"PORTALFS_PASSWORD": portal.users["alice"]})
    cli.wait_ready(process)
    assert (mountpoint / "Documents" / "Report.txt").read_bytes()
    return process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_unmounts_and_exits_0(cli: Cli, sample_portal: PortalProcess, signum: signal.Signals) -> None:
    process = start_foreground(cli, sample_portal)
    process.send_signal(signum)
    assert process.wait(timeout=30) == 0, cli.output(process)
    assert no_mounts_left(cli)
    output = cli.output(process)
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    wait_for(lambda: not cli.processes(), 15, "every process of the mount to end")


def test_a_second_signal_while_stopping_does_not_break_the_stop(cli: Cli, sample_portal: PortalProcess) -> None:
    """An impatient Ctrl-C Ctrl-C (or SIGTERM then SIGINT) still ends in a clean unmount and no traceback."""
    process = start_foreground(cli, sample_portal)
    process.send_signal(signal.SIGTERM)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)
    assert no_mounts_left(cli), "killed half-way through unmounting: a dead mount is left behind"
    assert process.returncode == 0, cli.output(process)
    assert "Traceback" not in cli.output(process), cli.output(process)
