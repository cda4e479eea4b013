"""The bulk transport: when it is used at all, and what it leaves behind when a transfer is cut short.

(The transport's transfers and failures against the real portal are in
test_ctera_bulk.py.)
"""

from __future__ import annotations

import gc
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable

import httpx
import pytest
import trio

from tests.support.portal_process import free_port
from tests.support.waiting import until
from tests.unit.backends.conftest import one_shot_server
from vfs.backends.base import Transient, Unreachable
from vfs.backends.ctera.bulk import BulkTransport, bulk_transport_for
from vfs.backends.ctera.connection import Timeouts
from vfs.backends.ctera.errors import from_socket_error, from_transport

PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
QUICK = Timeouts(connect=2.0, read=0.5)


def bulk_for(url: str) -> object:
    return bulk_transport_for(url, ssl.create_default_context(), Timeouts())


@pytest.fixture
def no_proxies(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_all_proxy_alone_keeps_content_on_httpx(no_proxies: pytest.MonkeyPatch) -> None:
    assert bulk_for("https://portal.example") is not None
    no_proxies.setenv("ALL_PROXY", "socks5://proxy.example:1080")
    assert bulk_for("https://portal.example") is None
    assert bulk_for("http://portal.example:8080") is None
    no_proxies.setenv("NO_PROXY", "portal.example")
    assert bulk_for("https://portal.example") is not None


# -- errors name the operation ---------------------------------------------------


async def test_a_refused_connection_names_the_portal() -> None:
    port = free_port()
    transport = BulkTransport("http", "127.0.0.1", port, context=None, timeouts=QUICK)
    with pytest.raises(Unreachable, match=rf"^cannot connect to http://portal\.example: connection refused"):
        await transport.send("GET", "/x", {}, what="read of /a at 0", url="http://portal.example")
    with pytest.raises(Unreachable, match=rf"^cannot connect to http://127\.0\.0\.1:{port}: connection refused"):
        await transport.send("GET", "/x", {})
    transport.close()


async def test_failures_once_connected_name_the_read() -> None:
    def stall(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 206 Partial Content\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        time.sleep(1.5)  # past the read timeout

    with one_shot_server(stall) as port:
        transport = BulkTransport("http", "127.0.0.1", port, context=None, timeouts=QUICK)
        response = await transport.send("GET", "/x", {}, what="read of /a at 0")
        with pytest.raises(Transient, match=r"^read of /a at 0: TimeoutError \(the portal did not answer in time\)"):
            await response.read_range(0, 100)
        await response.aclose()
        assert transport._idle == []
        transport.close()


def test_socket_errors_are_worded_as_httpx_ones() -> None:
    args = {"what": "read of /a", "url": "https://portal.example"}
    refused = from_socket_error(ConnectionRefusedError(111, "Connection refused"), connecting=True, **args)
    assert isinstance(refused, Unreachable)
    assert str(refused) == str(from_transport(httpx.ConnectError("refused"), **args)).replace(
        "refused", "connection refused (is the portal running on that port?)")
    timed_out = from_socket_error(TimeoutError("timed out"), connecting=True, **args)
    assert str(timed_out) == str(from_transport(httpx.ConnectTimeout("x"), **args))
    slow = from_socket_error(TimeoutError("timed out"), connecting=False, **args)
    assert type(slow) is Transient and str(slow).startswith("read of /a: ")
    assert str(slow).endswith("(the portal did not answer in time)")
    reset = from_socket_error(ConnectionResetError(104, "Connection reset by peer"), connecting=False, **args)
    assert type(reset) is Transient and str(reset) == "read of /a: ConnectionResetError: [Errno 104] Connection reset by peer"


# -- cancellation leaves nothing behind ------------------------------------------


def trickle(closed: threading.Event) -> Callable[[socket.socket], None]:
    """A server that promises a large body and sends it slowly until the client hangs up."""

    def serve(conn: socket.socket) -> None:
        conn.recv(65536)
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n")
            for _ in range(2000):
                conn.sendall(b"x" * 1024)
                time.sleep(0.005)
        except OSError:
            closed.set()

    return serve


async def test_cancelling_mid_body_closes_the_connection_on_the_worker() -> None:
    closed = threading.Event()
    with one_shot_server(trickle(closed)) as port:
        transport = BulkTransport("http", "127.0.0.1", port, context=None, timeouts=Timeouts(connect=2.0, read=30.0))
        response = await transport.send("GET", "/x", {})
        exchange = response._exchange
        closers: list[int] = []
        connection = exchange.connection
        assert connection is not None
        close = connection.close
        connection.close = lambda: (closers.append(threading.get_ident()), close())[1]  # type: ignore[method-assign]
        started = time.monotonic()
        with trio.move_on_after(0.3) as scope:
            try:
                await response.read_range(0, 100 << 20)
            finally:
                await response.aclose()  # as Session.open's finally does, cancelled
        assert scope.cancelled_caught
        assert time.monotonic() - started < 2
        await until(closed.is_set)  # the peer sees the hang-up: the worker closed the socket
        await until(lambda: exchange.connection is None and exchange.response is None)
        # Closed once, by the worker that was reading (http.client is not thread-safe), not by aclose().
        assert len(closers) == 1 and closers[0] != threading.get_ident()
        assert transport._idle == []
        transport.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []


async def test_aborting_an_exchange_whose_worker_already_returned_closes_it() -> None:
    # What happens when a cancel wins the race against a worker that had already got its reply.
    closed = threading.Event()
    with one_shot_server(trickle(closed)) as port:
        transport = BulkTransport("http", "127.0.0.1", port, context=None, timeouts=QUICK)
        response = await transport.send("GET", "/x", {})
        exchange = response._exchange
        connection = exchange.connection
        assert connection is not None and connection.sock is not None
        exchange.abort()
        assert connection.sock is None and exchange.connection is None  # closed, not merely shut down
        await response.aclose()
        assert transport._idle == []
        await until(closed.is_set)
        transport.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    assert [w for w in caught if issubclass(w.category, ResourceWarning)] == []
