"""One bulk request's connection and response, shared by the trio side and its worker threads.

Split from :mod:`.bulk`, which sends requests through it: the rules of who
may touch an exchange when, and who closes it after the trio side gave up,
are this module's (see :class:`Exchange`).
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable
from typing import TypeVar

from vfs.backends.base import Transient
from vfs.backends.ctera.errors import from_socket_error

__all__ = ["Exchange"]

T = TypeVar("T")


class Exchange:
    """One request's connection and response, shared by the trio side and its worker threads.

    Who may touch them: a worker while it runs (``_running``, one at a time),
    the trio side between runs.  Once the trio side gave up (``aborted``),
    exactly one party closes them, decided under ``_lock``: :meth:`abort` when
    no worker is running, else that worker as it returns (see :meth:`run`).
    ``what`` and ``url`` name the request in error messages.
    """

    def __init__(self, what: str, url: str) -> None:
        self.what = what
        self.url = url
        self._lock = threading.Lock()
        self.connection: http.client.HTTPConnection | None = None
        self.response: http.client.HTTPResponse | None = None
        self.aborted = False
        self._running = False

    def attach(self, connection: http.client.HTTPConnection) -> None:
        """Use ``connection`` (on the worker); shut at once if the exchange is already aborted."""
        with self._lock:
            self.connection = connection
            aborted = self.aborted
        if aborted:
            _shut(connection)

    def run(self, work: Callable[[], T]) -> T:
        """``work()`` on this worker thread; the exchange is closed here if it fails
        or if the trio side aborted it meanwhile (it no longer touches it then)."""
        with self._lock:
            if self.aborted:
                # Abandoned before this thread started: abort() has closed what there was.
                raise self.abandoned()
            self._running = True
        failed = True
        try:
            result = work()
            failed = False
            return result
        finally:
            with self._lock:
                self._running = False
                close = failed or self.aborted
            if close:
                self.close()

    def abort(self) -> None:
        """The trio side gives up on the exchange (it was cancelled): make a running
        worker's blocked socket call return now (it closes the rest), or close it all."""
        with self._lock:
            self.aborted = True
            running, connection = self._running, self.connection
        if not running:
            self.close()
        elif connection is not None:
            _shut(connection)

    def close(self) -> None:
        """Close response and connection; only by the party that owns them (see the class)."""
        response, connection = self.response, self.connection
        self.response = self.connection = None
        if response is not None:
            response.close()
        if connection is not None:
            connection.close()

    def error(self, exc: OSError | http.client.HTTPException, *, connecting: bool = False) -> Transient:
        """The backend error for ``exc`` raised by this exchange's socket."""
        if self.aborted:
            return self.abandoned()
        return from_socket_error(exc, what=self.what, url=self.url, connecting=connecting)

    def abandoned(self) -> Transient:
        return Transient(f"{self.what}: the transfer was abandoned")


def _shut(connection: http.client.HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        try:
            # The plain socket's shutdown: SSLSocket's own would tear down its TLS
            # state under the feet of the thread that is reading.
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass
