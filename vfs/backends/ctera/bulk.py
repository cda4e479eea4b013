"""Content over blocking HTTP/1.1 on worker threads: the fast path for ranged reads and large uploads.

Why a second way to send a request.  On trio, httpx hands a body over one
TLS record (16 KiB) at a time, each through a chain of async generators and
a scheduler round trip.  Measured here, that costs the mount daemon about
3 s of CPU per GB in the HTTP stack alone, on the one thread that also
answers the kernel, and capped a cold sequential read near 100 MB/s.
``http.client`` reading with ``readinto`` on a blocking socket decrypts
straight into the caller's buffer with the GIL released (about 1 s/GB, close
to curl's), and several such transfers run at once on worker threads while
the trio thread keeps serving the kernel.

Scope.  Only requests whose bodies are content are sent this way (see
``Session.open(bulk=True)``): ``GET``\\ s of content, the ``POST``\\ s that
ask for a ZIP of small files (they only read; their body is a small form),
and the uploads of large files, whose bodies the calling task hands to the
worker a chunk at a time (:mod:`.bulk_body`; encrypting them cost the trio
thread ~2 s/GB on httpx).  The XML API, logins and small uploads stay on
httpx.
The session layer does everything else as for httpx: cookies, expiry
signals, error translation.  No bulk transport is made when a test injects
an httpx transport or when the environment names a proxy for the portal
(httpx honours proxies; this path does not), so those keep the httpx path.

Connections.  Idle keep-alive connections wait in a LIFO list (the most
recently used is the least likely to have been closed by the server) and
are dropped after :data:`IDLE_EXPIRY`.  A connection is reused only after
its response was read to the end; one whose reply was cut short, failed or
announced ``Connection: close`` is closed.  A request on a *reused*
connection that the server closed meanwhile fails before any reply byte;
it is sent once more on a new connection (the usual keep-alive race, safe
for a GET and for a request that only reads).

Timeouts are those of the httpx client: ``connect`` for TCP and TLS set-up,
``read`` for each wait for bytes (so a long transfer that keeps arriving is
never cut off).

Errors are translated by :func:`~.errors.from_socket_error` (worded as the
httpx path's), naming the operation (``what``) the session asked for.

Cancellation.  Threads cannot be interrupted, so the trio side runs them
with ``abandon_on_cancel`` and, when cancelled, aborts the exchange (see
:class:`~.bulk_exchange.Exchange`): if a thread is working on it, its socket is shut down, so
the blocked ``recv`` returns at once, and that thread closes the response and
connection when it returns (``http.client`` objects are not thread-safe, so
the trio side never touches them while a thread may); if none is, the abort
closes them itself.  Nothing of an aborted exchange goes back to the pool.
An upload's worker is started without a waiting trio task (the uploading
task is busy producing the body) and reports through the trio token; when
the uploading task is cancelled or its body fails, it aborts the exchange
the same way and closes the body's pipe, which ends a worker waiting for a
chunk.  A portal that stops reading a body and hangs up may have answered
first (a 413, a 302): that reply is read before the reset counts as one.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import ssl
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping
from typing import Protocol, TypeVar

import httpx
import trio

from vfs.backends.base import Transient
from vfs.backends.ctera.bulk_body import BodyAbandoned, BodyPipe
from vfs.backends.ctera.bulk_exchange import Exchange
from vfs.backends.ctera.connection import KEEPALIVE_EXPIRY, POOL_CONNECTIONS, USER_AGENT, Timeouts

__all__ = ["BulkResponse", "BulkTransport", "bulk_transport_for"]

log = logging.getLogger(__name__)

#: An idle connection older than this is closed rather than reused.  Shorter
#: than the httpx pool's: httpcore sees that the server closed an idle
#: connection before reusing it, http.client only by failing a request on it.
IDLE_EXPIRY = KEEPALIVE_EXPIRY - 10.0
#: Bytes discarded per step when skipping the start of a body.
SKIP_CHUNK = 1 << 20

_STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError,
                     ssl.SSLEOFError, ssl.SSLZeroReturnError)

#: What sending the rest of a body meets when the peer stopped reading it.
_REFUSED_MID_BODY = (BrokenPipeError, ConnectionResetError)

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class _Outcome(Protocol[T_co]):
    """What trio hands a thread's ``deliver`` callback: a value or an exception."""

    def unwrap(self) -> T_co: ...


def bulk_transport_for(base_url: str, context: ssl.SSLContext, timeouts: Timeouts) -> BulkTransport | None:
    """A bulk transport for ``base_url``, or None when a proxy from the environment applies."""
    parts = urllib.parse.urlsplit(base_url)
    host = parts.hostname or ""
    proxies = urllib.request.getproxies()
    # ALL_PROXY (key "all") applies to every scheme, for httpx as for curl.
    proxied = bool(proxies.get(parts.scheme) or proxies.get("all"))
    if proxied and not urllib.request.proxy_bypass(host):
        log.info("a proxy is configured for %s: content is downloaded through httpx", base_url)
        return None
    return BulkTransport(parts.scheme, host, parts.port, context=context, timeouts=timeouts)


class BulkTransport:
    """Blocking requests on worker threads over a small pool of keep-alive connections.

    ``_idle`` (under ``_lock``, touched by worker threads): connections free
    for reuse with the monotonic time they became idle, most recent last.
    """

    def __init__(self, scheme: str, host: str, port: int | None, *, context: ssl.SSLContext | None,
                 timeouts: Timeouts, connections: int = POOL_CONNECTIONS) -> None:
        if scheme not in ("http", "https"):
            raise ValueError(f"not an HTTP URL scheme: {scheme!r}")
        self._scheme, self._host, self._port = scheme, host, port
        #: Names the portal in messages of requests sent without a ``url``.
        self.url = f"{scheme}://{f'[{host}]' if ':' in host else host}" + (f":{port}" if port else "")
        self._context = context
        self._timeouts = timeouts
        self._connections = connections
        self._limiter = trio.CapacityLimiter(connections)
        #: Requests with a body have slots of their own: an upload's body may
        #: itself wait for downloads (the parts of a file not staged locally),
        #: which must never queue behind it.
        self._senders = trio.CapacityLimiter(connections)
        self._lock = threading.Lock()
        self._idle: list[tuple[http.client.HTTPConnection, float]] = []
        self._closed = False

    async def send(self, method: str, target: str, headers: Mapping[str, str], *,
                   body: Callable[[], httpx.AsyncByteStream] | None = None, content: bytes | None = None,
                   reads_only: bool = False, what: str | None = None, url: str | None = None) -> BulkResponse:
        """Send ``method target``; the response with its status and headers, body unread.

        Raises Unreachable (cannot connect) or Transient (anything that failed
        once connected), like the httpx path's error translation.  ``what``
        (default ``METHOD <target>``) names the request in those errors, for
        the body's reads too, and ``url`` (default :attr:`url`) the portal.

        A request body is streamed from ``body()``: unchunked when ``headers``
        give its ``content-length``, else with chunked transfer coding (a body
        whose length is not known before its end).  This task iterates the
        stream and hands its chunks to the worker that sends them
        (:mod:`.bulk_body`), so whatever the stream raises is raised here as it
        is, not as a transport error.  A small body may come whole, as
        ``content``.  Only a ``GET``, or a request the caller marks
        ``reads_only`` (its body has to be ``content``), may go on a kept-alive
        connection (and be sent again when the portal had closed it while it
        sat idle); anything else gets a new one, since it must not be sent
        twice and a streamed body cannot be.
        """
        if body is not None and (content is not None or reads_only):
            raise ValueError("a streamed body is sent once, alone: not with content=, nor reads_only")
        if not target.startswith("/") or not target.isascii():
            raise ValueError(f"not a percent-encoded request target: {target!r}")
        exchange = Exchange(what or f"{method} {target}", url or self.url)
        all_headers = {"user-agent": USER_AGENT, **headers}
        if body is None:
            reuse = method == "GET" or reads_only
            response = await self._in_thread(
                exchange, lambda: self._send(exchange, method, target, all_headers, content=content, reuse=reuse))
        else:
            response = await self._send_streamed(exchange, method, target, all_headers, body())
        return BulkResponse(self, exchange, response)

    def close(self) -> None:
        """Close the idle connections; later requests fail."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for connection, _ in idle:
            connection.close()

    # ------------------------------------------------------------ on the thread

    def _send(self, exchange: Exchange, method: str, target: str, headers: dict[str, str],
              body: BodyPipe | None = None, *, content: bytes | None = None,
              reuse: bool = False) -> http.client.HTTPResponse:
        while True:
            connection, reused = self._acquire(exchange, fresh=not reuse)
            exchange.attach(connection)
            try:
                try:
                    connection.request(method, target, body=content if body is None else body.chunks(),
                                       headers=headers)
                except _REFUSED_MID_BODY:
                    if body is None or exchange.aborted:
                        raise
                    # The portal may have answered (a 413, a 302 to the login
                    # page) and closed before reading the whole body: its reply,
                    # if it is there, says more than the reset does.
                    body.close()
                exchange.response = connection.getresponse()
            except BodyAbandoned:
                raise exchange.abandoned() from None
            except _STALE_CONNECTION as exc:
                if reused and not exchange.aborted:
                    log.debug("a kept-alive connection was closed by the portal (%r); reconnecting", exc)
                    connection.close()
                    continue
                raise exchange.error(exc) from exc
            except (OSError, http.client.HTTPException) as exc:
                raise exchange.error(exc) from exc
            return exchange.response

    def _acquire(self, exchange: Exchange, *, fresh: bool = False) -> tuple[http.client.HTTPConnection, bool]:
        """An idle connection (reused: True) or a newly connected one (always, if ``fresh``)."""
        now = time.monotonic()
        with self._lock:
            if self._closed:
                raise Transient("the connection pool is closed")
            while self._idle and not fresh:
                connection, since = self._idle.pop()
                if now - since < IDLE_EXPIRY:
                    return connection, True
                connection.close()
        return self._connect(exchange), False

    def _connect(self, exchange: Exchange) -> http.client.HTTPConnection:
        timeouts = self._timeouts
        connection: http.client.HTTPConnection
        if self._scheme == "https":
            connection = http.client.HTTPSConnection(self._host, self._port, timeout=timeouts.connect,
                                                     context=self._context)
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=timeouts.connect)
        try:
            connection.connect()
        except OSError as exc:
            connection.close()
            raise exchange.error(exc, connecting=True) from exc
        assert connection.sock is not None
        connection.sock.settimeout(timeouts.read)
        return connection

    def _release(self, connection: http.client.HTTPConnection) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self._connections:
                self._idle.append((connection, time.monotonic()))
                return
        connection.close()

    # ------------------------------------------------------------ trio side

    async def _send_streamed(self, exchange: Exchange, method: str, target: str, headers: dict[str, str],
                             stream: httpx.AsyncByteStream) -> http.client.HTTPResponse:
        """Send on a worker while this task produces the body into its pipe.

        The worker is started without a trio task waiting for it (this one is
        busy producing) and reports back through the token; cancelled or
        failed here, the exchange is aborted and the worker left to finish.
        """
        token = trio.lowlevel.current_trio_token()
        pipe = BodyPipe(token)
        done = trio.Event()
        results: list[_Outcome[http.client.HTTPResponse]] = []

        def report(result: _Outcome[http.client.HTTPResponse]) -> None:  # on the trio thread
            self._senders.release_on_behalf_of(exchange)
            results.append(result)
            done.set()

        def deliver(result: _Outcome[http.client.HTTPResponse]) -> None:  # on the worker
            pipe.close()  # a producer still waiting for room stops producing
            with contextlib.suppress(trio.RunFinishedError):
                token.run_sync_soon(report, result)

        await self._senders.acquire_on_behalf_of(exchange)
        try:
            trio.lowlevel.start_thread_soon(
                lambda: exchange.run(lambda: self._send(exchange, method, target, headers, pipe)), deliver)
        except BaseException:  # no thread, so no report: give the slot back here
            self._senders.release_on_behalf_of(exchange)
            raise
        try:
            async for chunk in stream:
                if not await pipe.put(chunk):
                    break  # the worker is done with the body: it failed, or the reply came first
            else:
                pipe.finish()
            await done.wait()
        except BaseException:
            pipe.close()
            exchange.abort()
            raise
        return results[0].unwrap()

    async def _in_thread(self, exchange: Exchange, work: Callable[[], T]) -> T:
        try:
            return await trio.to_thread.run_sync(lambda: exchange.run(work), abandon_on_cancel=True,
                                                 limiter=self._limiter)
        except trio.Cancelled:
            exchange.abort()
            raise


class BulkResponse:
    """A reply whose body is read on a worker thread; the parts httpx.Response callers use."""

    def __init__(self, transport: BulkTransport, exchange: Exchange, response: http.client.HTTPResponse) -> None:
        self._transport = transport
        self._exchange = exchange
        self._response = response
        self.status_code = response.status
        self.headers = httpx.Headers(response.getheaders())
        self._finished = False
        #: the body was read to its declared end without an error: the connection is clean
        self._complete = False

    @property
    def is_success(self) -> bool:
        return 200 <= self.status_code < 300

    async def read_range(self, skip: int, wanted: int) -> tuple[bytes | bytearray, int]:
        """``(data, received)``: up to ``wanted`` body bytes after discarding ``skip``.

        Fewer than ``wanted`` only if the body ends first; ``received`` counts
        every body byte taken off the wire, the skipped ones included.
        """
        return await self._transport._in_thread(self._exchange, lambda: self._read(skip, wanted))

    async def read_some(self, limit: int) -> bytes:
        """At most ``limit`` bytes of the body (an error reply's reason)."""
        data, _ = await self.read_range(0, limit)
        return bytes(data)

    async def aclose(self) -> None:
        """Give the connection back if the body was read to its end, else close it.

        Nothing to do for an aborted exchange (its worker or the abort closes
        it) or a failed one (closed by the worker that failed)."""
        if self._finished:
            return
        self._finished = True
        exchange = self._exchange
        if exchange.aborted or exchange.connection is None:
            return
        if self._complete and not self._response.will_close:
            connection, exchange.connection, exchange.response = exchange.connection, None, None
            self._transport._release(connection)
        else:
            exchange.close()
        await trio.lowlevel.checkpoint()

    def _read(self, skip: int, wanted: int) -> tuple[bytes | bytearray, int]:
        response = self._response
        received = 0
        try:
            if skip:
                scratch = memoryview(bytearray(min(skip, SKIP_CHUNK)))
                while received < skip:
                    count = response.readinto(scratch[:min(len(scratch), skip - received)])
                    if not count:
                        break
                    received += count
            data: bytes | bytearray
            if response.length is None:
                # Chunked, or until the connection closes: http.client reads up to ``wanted``
                # or the end, and ``wanted`` may be a mere limit (32 MiB for an XML reply).
                data = response.read(wanted)
                filled = len(data)
            else:
                data = bytearray(min(wanted, response.length))
                filled = 0
                while filled < len(data):
                    with memoryview(data) as view, view[filled:] as rest:
                        count = response.readinto(rest)
                    if not count:
                        break
                    filled += count
                del data[filled:]
            received += filled
        except (OSError, http.client.HTTPException) as exc:
            raise self._exchange.error(exc) from exc
        if filled < wanted and response.length:
            # http.client reports a body cut short by the peer as its end.
            raise self._exchange.error(http.client.IncompleteRead(data, response.length))
        self._complete = response.isclosed()
        return data, received
