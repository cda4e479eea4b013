"""A mount whose portal goes away: bounded errors, cached data still served, recovery.

The portal is killed outright (the harshest fault) and later restarted on the
same port and store; stalls are made with a TCP proxy that stops forwarding
(tests/support/tcp_proxy.py).
"""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mount_process import mounted
from tests.support.portal_process import PortalProcess, free_port, running_portal
from tests.support.tcp_proxy import TcpProxy, tcp_proxy

pytestmark = pytest.mark.fuse

BOUND = ["request_timeout=8", "retry_time=3", "connect_timeout=2", "read_timeout=3", "listing_ttl=1",
         "attr_timeout=1", "entry_timeout=1", "negative_timeout=1"]


def test_portal_down_gives_bounded_errors_and_recovers(tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    with running_portal(data, "--sample", port=port) as portal:
        with mounted(portal, tmp_path / "mnt", options=BOUND) as mount:
            cached = (mount.mountpoint / "Documents" / "Report.txt").read_bytes()
            portal.kill()

            started = time.monotonic()
            with pytest.raises(OSError) as raised:
                os.listdir(mount.mountpoint / "Projects" / "Apollo")
            assert raised.value.errno in (errno.EIO, errno.ETIMEDOUT, errno.ENOTCONN)
            assert time.monotonic() - started < 30
            # Blocks already fetched are still served while the portal is away.
            with open(mount.mountpoint / "Documents" / "Report.txt", "rb") as file:
                assert file.read() == cached

            with running_portal(data, port=port):
                deadline = time.monotonic() + 30
                while True:
                    try:
                        assert "Design" in os.listdir(mount.mountpoint / "Projects" / "Apollo")
                        break
                    except OSError:
                        if time.monotonic() > deadline:
                            raise
                        time.sleep(0.5)
                assert (mount.mountpoint / "Photos" / "IMG_1000.png").read_bytes()[:4] == b"\x89PNG"


@pytest.fixture
def stalling_proxy(sample_portal: PortalProcess) -> Iterator[TcpProxy]:
    with tcp_proxy(sample_portal.port) as proxy:
        yield proxy


def test_stalled_portal_times_out_and_the_mount_keeps_serving(
    sample_portal: PortalProcess, stalling_proxy: TcpProxy, tmp_path: Path
) -> None:
    with mounted(stalling_proxy.in_front_of(sample_portal), tmp_path / "mnt", options=BOUND) as mount:
        budget = (mount.mountpoint / "Documents" / "Budget.csv").read_bytes()
        stalling_proxy.stalled.set()
        started = time.monotonic()
        with pytest.raises(OSError) as raised:
            os.listdir(mount.mountpoint / "Photos")
        assert raised.value.errno in (errno.EIO, errno.ETIMEDOUT)
        assert time.monotonic() - started < 30
        assert (mount.mountpoint / "Documents" / "Budget.csv").read_bytes() == budget  # cached, still served
        stalling_proxy.stalled.clear()
        deadline = time.monotonic() + 30
        while True:
            try:
                assert "IMG_1000.png" in os.listdir(mount.mountpoint / "Photos")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
