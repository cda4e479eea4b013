"""A mount whose portal goes away: bounded errors, cached data still served, recovery.

The portal is killed outright (the harshest fault) and later restarted on the
same port and store; stalls are made with a TCP proxy that stops forwarding.
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.mount_process import mounted
from tests.support.portal_process import PortalProcess, free_port, running_portal

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


class _StallingProxy:
    """A TCP proxy to the portal that can stop forwarding (a portal that hangs)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.stalled = threading.Event()
        self.closing = threading.Event()
        self.threads: list[threading.Thread] = []
        self.sockets: list[socket.socket] = []
        self._accept = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept.start()

    def _accept_loop(self) -> None:
        self.listener.settimeout(0.2)
        while not self.closing.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self.sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                thread = threading.Thread(target=self._pump, args=(source, sink), daemon=True)
                thread.start()
                self.threads.append(thread)

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        source.settimeout(0.2)
        while not self.closing.is_set():
            if self.stalled.is_set():
                time.sleep(0.05)
                continue
            try:
                data = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            if not data:
                return
            try:
                sink.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self.closing.set()
        self.listener.close()
        for sock in self.sockets:
            sock.close()
        for thread in self.threads:
            thread.join(timeout=2)
        self._accept.join(timeout=2)


@pytest.fixture
def stalling_proxy(sample_portal: PortalProcess) -> Iterator[_StallingProxy]:
    proxy = _StallingProxy(sample_portal.port)
    try:
        yield proxy
    finally:
        proxy.close()


def test_stalled_portal_times_out_and_the_mount_keeps_serving(
    sample_portal: PortalProcess, stalling_proxy: _StallingProxy, tmp_path: Path
) -> None:
    proxied = PortalProcess(f"https://127.0.0.1:{stalling_proxy.port}", sample_portal.data_dir, sample_portal.cert,
                            sample_portal.process, sample_portal.log_path)
    with mounted(proxied, tmp_path / "mnt", options=BOUND) as mount:
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
