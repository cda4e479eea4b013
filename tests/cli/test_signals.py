"""SIGTERM and SIGINT stop a foreground mount the way ``portalfs unmount`` does: unmounted, status 0.

A signal is how service managers (``systemctl stop``, container runtimes) and
users (Ctrl-C) end a foreground mount; it is a normal stop, not a failure, so
the status is 0 — a non-zero status would make systemd mark the unit failed.
Ctrl-C *before* the mount is up is different: the user gave up on mounting,
nothing was mounted, and the status is 130 (the shell's "interrupted").
"""

from __future__ import annotations

import signal
import socket
import subprocess

import pytest

from tests.cli.conftest import Cli, no_mounts_left, one_line_failure
from tests.support.portal_process import PortalProcess
from tests.support.waiting import wait_for

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


@pytest.mark.parametrize("mode", ["daemon", "foreground"])
def test_ctrl_c_while_logging_in_mounts_nothing(cli: Cli, mode: str) -> None:
    """Against a portal that accepts connections and never answers, Ctrl-C ends the wait at once.

    In daemon mode the key press reaches only ``portalfs mount`` (the child runs
    in its own session): it must stop the child too, or the mount would appear
    later behind the user's back.
    """
    mountpoint = cli.mountpoint()
    with socket.socket() as stalled:
        stalled.bind(("127.0.0.1", 0))
        stalled.listen(8)
        stalled.settimeout(60)
        process = cli.start("mount", f"https://127.0.0.1:{stalled.getsockname()[1]}", str(mountpoint),
                            "--user", "alice", *(["--foreground"] if mode == "foreground" else []),
                            env={"PORTALFS_PASSWORD": "whatever"})
        connection, _ = stalled.accept()  # the mount is logging in now
        with connection:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
    result = subprocess.CompletedProcess(process.args, process.returncode, "", cli.output(process))
    assert "nothing mounted" in one_line_failure(result, status=130)
    wait_for(lambda: not cli.processes(), 30, "the login to be abandoned")
    assert no_mounts_left(cli)
