"""A TCP proxy in front of the portal, for fault tests that need a portal which stops receiving.

It forwards raw bytes (TLS passes through untouched, so the portal's
certificate still matches ``127.0.0.1``) and can

* stall every connection: nothing moves either way, as with a portal that hangs;
* hold back the rest of a connection once it has carried ``hold_after`` bytes
  towards the portal (TLS records, the handshake and earlier requests
  included): a large upload then leaves the portal with a known, unfinished
  part of it for as long as the test needs, whatever the machine's load.
  Polling a portal that receives at full speed cannot promise that (a
  64 MiB upload once ended between a test's check and its kill, in CI).

Sockets stay blocking, so a slow reader slows the proxy down rather than
making it drop bytes; each pump waits for input with ``select`` so that it
notices a stall or ``close()`` within :data:`POLL` seconds.
"""

from __future__ import annotations

import dataclasses
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from tests.support.portal_process import PortalProcess

PIECE = 65536
POLL = 0.2


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``127.0.0.1:target_port``, one thread per direction and connection."""

    def __init__(self, target_port: int, *, hold_after: int | None = None) -> None:
        self.target_port = target_port
        self.hold_after = hold_after
        self.stalled = threading.Event()  # set: nothing is forwarded
        self.closing = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._lock = threading.Lock()  # the accept thread adds to these while close() may read them
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._accept = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept.start()

    def in_front_of(self, portal: PortalProcess) -> PortalProcess:
        """``portal`` as reached through this proxy (same store, certificate and process)."""
        return dataclasses.replace(portal, url=f"https://127.0.0.1:{self.port}")

    def _accept_loop(self) -> None:
        while not self.closing.is_set():
            if not select.select([self.listener], [], [], POLL)[0]:
                continue
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:  # the portal is away: the client sees its connection closed
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                if self.closing.is_set():
                    client.close()
                    upstream.close()
                    return
                self._sockets += [client, upstream]
                for source, sink, limit in ((client, upstream, self.hold_after), (upstream, client, None)):
                    thread = threading.Thread(target=self._pump, args=(source, sink, limit), daemon=True)
                    thread.start()
                    self._threads.append(thread)

    def _pump(self, source: socket.socket, sink: socket.socket, limit: int | None) -> None:
        forwarded = 0
        try:
            while not self.closing.is_set():
                if self.stalled.is_set():
                    time.sleep(POLL / 4)
                    continue
                wanted = PIECE if limit is None else min(PIECE, limit - forwarded)
                if wanted == 0:  # this connection has carried its share: hold the rest until closed
                    self.closing.wait()
                    return
                if not select.select([source], [], [], POLL)[0]:
                    continue
                data = source.recv(wanted)
                if not data:
                    return
                sink.sendall(data)
                forwarded += len(data)
        except OSError:
            return
        finally:  # one side went (or the proxy closes): the other side learns of it
            with suppress(OSError):
                sink.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Stop forwarding and close every connection: each side sees the other go."""
        self.closing.set()
        self._accept.join(timeout=2)
        self.listener.close()
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)  # wakes a pump blocked in sendall
        for thread in self._threads:
            thread.join(timeout=2)
        for sock in sockets:
            sock.close()


@contextmanager
def tcp_proxy(target_port: int, *, hold_after: int | None = None) -> Iterator[TcpProxy]:
    proxy = TcpProxy(target_port, hold_after=hold_after)
    try:
        yield proxy
    finally:
        proxy.close()
