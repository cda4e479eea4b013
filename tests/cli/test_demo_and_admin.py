"""``portalfs demo`` (the one-command tour) and ``portalfs mount --admin`` (the administrator's view)."""

from __future__ import annotations

import os
import signal

import pytest

from tests.cli.conftest import Cli, alive, no_mounts_left, proc_field
from tests.support.portal_process import PortalProcess
from tests.support.waiting import wait_for

pytestmark = pytest.mark.fuse


def test_demo_mounts_the_sample_tree_and_ctrl_c_stops_everything(cli: Cli) -> None:
    mountpoint = cli.root / "demo"  # the demo creates it
    cli.mountpoints.append(mountpoint)
    demo = cli.start("demo", str(mountpoint), "--data", str(cli.root / "demo-data"))
    cli.wait_ready(demo, timeout=120)  # the first start seeds the sample files
    assert f"mounting at {mountpoint}" in cli.output(demo)
    [portal] = [pid for pid in cli.processes() if b"serve" in proc_field(pid, "cmdline").split(b"\0")]

    assert b"Quarterly report" in (mountpoint / "Documents" / "Report.txt").read_bytes()
    assert ".snapshots" in os.listdir(mountpoint)
    assert os.listdir(mountpoint / ".snapshots"), "the sample history has snapshots"

    demo.send_signal(signal.SIGINT)  # Ctrl-C reaches the demo; the portal runs in its own session
    assert demo.wait(timeout=60) == 0, cli.output(demo)
    assert "portalfs demo: stopped." in cli.output(demo)
    assert "Traceback" not in cli.output(demo)
    assert not alive(portal), "the demo left its portal running"
    assert no_mounts_left(cli)
    assert not cli.processes()


def test_admin_mount_shows_every_users_files(cli: Cli, sample_portal: PortalProcess) -> None:
    mountpoint = cli.mountpoint()
    result = cli.run("mount", sample_portal.url, str(mountpoint), "--admin", "--user", "root",
                     "--ca-file", str(sample_portal.cert), env={"PORTALFS_PASSWORD": sample_portal.admins["root"]})
    assert result.returncode == 0, result.stderr
    assert "Users" in os.listdir(mountpoint)
    assert {"alice", "bob"} <= set(os.listdir(mountpoint / "Users"))
    assert (mountpoint / "Users" / "alice" / "My Files" / "Documents" / "Report.txt").read_bytes()
    [daemon] = cli.daemons()
    assert cli.run("unmount", str(mountpoint)).returncode == 0
    wait_for(lambda: not alive(daemon), 30, "the daemon to end")
    assert no_mounts_left(cli)
