"""A TCP proxy in front of the portal, for fault tests that need a portal which stops receiving.

It forwards raw bytes (TLS passes through untouched, so the portal's
certificate still matches ``127.0.0.1``) and can

* stall every connection: nothing moves either way, as with a portal that hangs;
* hold back the rest of a request once one connection has carried ``hold_after``
  bytes towards the portal: the portal then has a known, unfinished part of an
  upload for as long as the test needs, whatever the machine's load.  Polling
  a portal that receives at full speed cannot promise that (a 64 MiB upload
  once ended between a test's check and its kill, in CI).
"""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from tests.support.portal_process import PortalProcess

PIECE = 65536


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:target_port``, one thread per direction and connection."""

    def __init__(self, target_port: int, *, hold_after: int | None = None) -> None:
        self.target_port = target_port
        self.hold_after = hold_after
        self.stalled = threading.Event()  # set: nothing is forwarded
        self.holding = threading.Event()  # set once a connection has carried ``hold_after`` bytes to the portal
        self.closing = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._accept = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept.start()

    def in_front_of(self, portal: PortalProcess) -> PortalProcess:
        """``portal`` as reached through this proxy (same store, certificate and process)."""
        return dataclasses.replace(portal, url=f"https://127.0.0.1:{self.port}")

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
            self._sockets += [client, upstream]
            for source, sink, limit in ((client, upstream, self.hold_after), (upstream, client, None)):
                thread = threading.Thread(target=self._pump, args=(source, sink, limit), daemon=True)
                thread.start()
                self._threads.append(thread)

    def _pump(self, source: socket.socket, sink: socket.socket, limit: int | None) -> None:
        source.settimeout(0.2)
        forwarded = 0
        while not self.closing.is_set():
            if self.stalled.is_set():
                time.sleep(0.05)
                continue
            wanted = PIECE if limit is None else min(PIECE, limit - forwarded)
            if wanted == 0:  # this connection has carried its share: hold the rest until closed
                self.holding.set()
                self.closing.wait()
                return
            try:
                data = source.recv(wanted)
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
            forwarded += len(data)

    def close(self) -> None:
        """Stop forwarding and close every connection: each side sees the other go."""
        self.closing.set()
        self.listener.close()
        for sock in self._sockets:
            sock.close()
        for thread in self._threads:
            thread.join(timeout=2)
        self._accept.join(timeout=2)


@contextmanager
def tcp_proxy(target_port: int, *, hold_after: int | None = None) -> Iterator[TcpProxy]:
    proxy = TcpProxy(target_port, hold_after=hold_after)
    try:
        yield proxy
    finally:
        proxy.close()
