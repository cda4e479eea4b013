"""Real sockets misbehaving: a server that never answers, faults injected in front of the real portal.

Unlike ``test_ctera_faults`` (no network at all), these run the real httpx
transport and connection pool, on the real trio clock with short timeouts,
to show that nothing blocks forever and that a pool survives failures.
"""

from __future__ import annotations

import random
import ssl
from functools import partial

import httpx
import pytest
import trio

from tests.support.portal_process import PortalProcess
from tests.unit.backends.conftest import connect, download, in_thread
from tests.unit.backends.fake_ctera import error_response
from vfs.backends.base import Transient
from vfs.backends.ctera import Timeouts, open_ctera_backend
from vfs.backends.retry import RetryPolicy

FAST_RETRY = RetryPolicy(max_attempts=20, budget=2.0, first_delay=0.05, max_delay=0.2, rng=random.Random(3))


async def _serve_login_then_hang(stream: trio.SocketStream) -> None:
    """Answer a login like a portal, then read requests and never answer them."""
    buffer = b""
    while True:
        while b"\r\n\r\n" not in buffer:
            data = await stream.receive_some()
            if not data:
                return
            buffer += data
        head, _, buffer = buffer.partition(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(buffer) < length:
            buffer += await stream.receive_some()
        buffer = buffer[length:]
        if b"/api/login" in head.split(b"\r\n", 1)[0]:
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nset-cookie: JSESSIONID=abc; Path=/\r\ncontent-length: 0\r\n\r\n"
            )
        else:
            await trio.sleep_forever()


async def test_a_portal_that_stops_answering_fails_in_bounded_time() -> None:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, _serve_login_then_hang, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        timeouts = Timeouts(connect=1.0, read=0.3, write=1.0, pool=1.0)
        async with open_ctera_backend(
            f"http://127.0.0.1:{port}", "alice", "pw", timeouts=timeouts, retry=FAST_RETRY
        ) as backend:
            started = trio.current_time()
            with pytest.raises(Transient) as caught:
                await backend.stat(("My Files",))
            elapsed = trio.current_time() - started
            assert elapsed < 2.0 + 0.3 + 1.0  # the budget, one last attempt, slack
            assert "did not answer in time" in str(caught.value)
            assert backend.statistics().retries >= 2
        nursery.cancel_scope.cancel()


class InjectFaults(httpx.AsyncBaseTransport):
    """The real transport to a real portal, with scripted failures for the next requests."""

    def __init__(self, portal: PortalProcess) -> None:
        assert portal.cert is not None
        self.inner = httpx.AsyncHTTPTransport(verify=ssl.create_default_context(cafile=str(portal.cert)))
        self.next: list[httpx.Response | Exception] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.next and not request.url.path.endswith("/api/login"):
            fault = self.next.pop(0)
            if isinstance(fault, Exception):
                raise fault
            return fault
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_faults_in_front_of_the_real_portal_are_retried(sample_portal: PortalProcess) -> None:
    path = "My Files/Large files/large-1.bin"
    expected = await in_thread(download, sample_portal, path)
    faults = InjectFaults(sample_portal)
    async with connect(sample_portal, transport=faults, retry=FAST_RETRY) as backend:
        faults.next = [error_response(503), httpx.ReadError("connection reset by peer"), error_response(502)]
        entry = await backend.stat(tuple(path.split("/")))
        faults.next = [httpx.RemoteProtocolError("server disconnected"), error_response(504)]
        assert await backend.read(entry, 12345, 100_000) == expected[12345 : 12345 + 100_000]
        assert backend.statistics().retries == 5
