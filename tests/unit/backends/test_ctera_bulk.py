"""The bulk transport (blocking HTTP on worker threads) against the real portal and hostile peers.

Content read through it must equal a plain download; its connections are
reused only when clean; a connection the server dropped while idle is
replaced without an error; and every way a peer can fail it (stalling,
hanging up) ends in the backend's own errors within the timeouts,
cancellation included.  (A refused connection: test_ctera_bulk_lifecycle.py.)
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import trio

from tests.support import portal_http
from tests.support.portal_process import PortalProcess
from tests.unit.backends.conftest import connect, download, in_thread, one_shot_server
from vfs.backends.base import Transient
from vfs.backends.ctera.bulk import BulkTransport, bulk_transport_for
from vfs.backends.ctera.connection import DEFAULT_TIMEOUTS, Timeouts, ssl_context

LARGE = "My Files/Large files/large-1.bin"  # 8 MiB
QUICK = Timeouts(connect=2.0, read=0.5)


def session_cookie(portal: PortalProcess) -> str:
    with portal_http.logged_in(portal) as http:
        return "; ".join(f"{name}={value}" for name, value in http.cookies.items())


def transport_for(portal: PortalProcess, timeouts: Timeouts = DEFAULT_TIMEOUTS) -> BulkTransport:
    transport = bulk_transport_for(portal.url, ssl_context(ca_file=portal.cert, insecure=False), timeouts)
    assert transport is not None
    return transport


async def read_range(transport: BulkTransport, cookie: str, path: str, first: int, last: int) -> tuple[int, bytes]:
    response = await transport.send("GET", portal_http.webdav_url(path),
                                    {"cookie": cookie, "range": f"bytes={first}-{last}"})
    try:
        data, received = await response.read_range(0, last - first + 1)
        assert received == len(data)
        return response.status_code, bytes(data)
    finally:
        await response.aclose()


async def test_ranges_equal_a_plain_download_and_one_connection_is_reused(sample_portal: PortalProcess) -> None:
    whole = await in_thread(download, sample_portal, LARGE)
    cookie = await in_thread(session_cookie, sample_portal)
    transport = transport_for(sample_portal)
    try:
        for first, last in [(0, 4095), (1 << 20, (3 << 20) - 1), (len(whole) - 100, len(whole) - 1)]:
            status, data = await read_range(transport, cookie, LARGE, first, last)
            assert status == 206
            assert data == whole[first:last + 1]
        assert len(transport._idle) == 1  # read to the end each time: the same connection went back
    finally:
        transport.close()


async def test_a_body_left_unread_closes_its_connection(sample_portal: PortalProcess) -> None:
    cookie = await in_thread(session_cookie, sample_portal)
    transport = transport_for(sample_portal)
    try:
        response = await transport.send("GET", portal_http.webdav_url(LARGE),
                                        {"cookie": cookie, "range": "bytes=0-1048575"})
        data, _ = await response.read_range(0, 1000)
        assert len(data) == 1000
        await response.aclose()
        assert transport._idle == []  # the rest of the body is still on the wire: never reused
    finally:
        transport.close()


async def test_a_connection_the_server_dropped_while_idle_is_replaced(sample_portal: PortalProcess) -> None:
    whole = await in_thread(download, sample_portal, LARGE)
    cookie = await in_thread(session_cookie, sample_portal)
    transport = transport_for(sample_portal)
    try:
        await read_range(transport, cookie, LARGE, 0, 99)
        (idle, _), = transport._idle
        assert idle.sock is not None
        socket.socket.shutdown(idle.sock, socket.SHUT_RDWR)  # what a keep-alive expiry looks like to us
        status, data = await read_range(transport, cookie, LARGE, 100, 199)
        assert (status, data) == (206, whole[100:200])
    finally:
        transport.close()


async def read_whole_traced(portal: PortalProcess, path: str, limit: int) -> tuple[bytes, int]:
    """``path``'s body read through the transport up to ``limit``, and the peak memory that took."""
    cookie = await in_thread(session_cookie, portal)
    transport = transport_for(portal)
    try:
        response = await transport.send("GET", portal_http.webdav_url(path), {"cookie": cookie})
        tracemalloc.start()
        try:
            data = await response.read_some(limit)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        await response.aclose()
        return data, peak
    finally:
        transport.close()


@pytest.mark.parametrize(("path", "peak_limit"), [
    (LARGE, lambda size: 2.5 * size),  # the body and its copy as bytes: neither the limit nor more buffer
    ("My Files/Documents/Report.txt", lambda size: 256 << 10),
])
async def test_a_body_read_up_to_a_far_larger_limit_takes_memory_for_the_body_only(
        sample_portal: PortalProcess, path: str, peak_limit: Callable[[int], float]) -> None:
    """A reply read with a limit far above its length: the buffer follows the declared length, not the limit."""
    whole = await in_thread(download, sample_portal, path)
    data, peak = await read_whole_traced(sample_portal, path, 64 << 20)
    assert data == whole
    assert peak < peak_limit(len(whole))


async def test_a_chunked_body_of_unknown_length_is_read_whole() -> None:
    body = bytes(range(256)) * (12 << 10)  # 3 MiB in 100 kB chunks

    def chunked(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for start in range(0, len(body), 100_000):
            piece = body[start:start + 100_000]
            conn.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
        conn.sendall(b"0\r\n\r\n")

    with one_shot_server(chunked) as port:
        transport = BulkTransport("http", "127.0.0.1", port, context=None, timeouts=QUICK)
        response = await transport.send("GET", "/x", {})
        assert await response.read_some(32 << 20) == body
        await response.aclose()
        transport.close()


async def test_backend_reads_use_it_and_equal_a_plain_download(sample_portal: PortalProcess) -> None:
    whole = await in_thread(download, sample_portal, LARGE)
    async with connect(sample_portal) as backend:
        entry = await backend.stat(tuple(LARGE.split("/")))
        assert backend._session.bulk is not None
        assert await backend.read(entry, 12345, 3 << 20) == whole[12345:12345 + (3 << 20)]
        assert backend.statistics().content_bytes == 3 << 20


def test_no_bulk_transport_when_a_proxy_is_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    assert bulk_transport_for("https://portal.example", ssl.create_default_context(), Timeouts()) is None
    monkeypatch.setenv("no_proxy", "portal.example")
    assert bulk_transport_for("https://portal.example", ssl.create_default_context(), Timeouts()) is not None


# -- hostile peers ---------------------------------------------------------------


@contextmanager
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never says a word; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()


async def test_a_silent_server_is_a_read_timeout() -> None:
    with silent_server() as port:
        transport = BulkTransport("http", "127.0.0.1", port, context=None, timeouts=QUICK)
        started = time.monotonic()
        with pytest.raises(Transient, match="did not answer in time"):
            await transport.send("GET", "/x", {})
        assert time.monotonic() - started < 5
        transport.close()


async def test_cancelling_a_stalled_request_returns_at_once() -> None:
    with silent_server() as port:
        transport = BulkTransport("http", "127.0.0.1", port, context=None, timeouts=Timeouts(read=30.0))
        started = time.monotonic()
        with trio.move_on_after(0.3) as scope:
            await transport.send("GET", "/x", {})
        assert scope.cancelled_caught
        assert time.monotonic() - started < 2  # not the 30 s read timeout
        assert transport._idle == []
        transport.close()


async def test_a_peer_that_hangs_up_mid_body_is_transient() -> None:
    def hang_up(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 206 Partial Content\r\nContent-Length: 1000\r\n\r\n" + b"x" * 10)

    with one_shot_server(hang_up) as port:
        transport = BulkTransport("http", "127.0.0.1", port, context=None, timeouts=QUICK)
        response = await transport.send("GET", "/x", {})
        assert response.status_code == 206
        with pytest.raises(Transient):
            await response.read_range(0, 1000)
        await response.aclose()
        assert transport._idle == []
        transport.close()
