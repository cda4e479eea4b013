"""Backends logged in to the real reference portal, and plain-httpx helpers to compare with.

The plain helpers (``tests.support.portal_http``) are synchronous; they run in
a worker thread so the trio loop of the test stays responsive.
``one_shot_server`` is a hostile peer for the bulk transport's tests.
"""

from __future__ import annotations

import errno
import random
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager, suppress
from typing import Any, TypeVar

import pytest
import trio

from tests.support import portal_http
from tests.support.portal_process import PortalProcess
from vfs.backends.ctera import CteraBackend, open_ctera_backend
from vfs.backends.ctera.bulk import BulkTransport

T = TypeVar("T")


def connect(portal: PortalProcess, user: str = "alice", **kwargs: Any) -> AbstractAsyncContextManager[CteraBackend]:
    """``open_ctera_backend`` for ``user`` on ``portal``, trusting its certificate."""
    admin = user in portal.admins
    password = portal.admins[user] if admin else portal.users[user]
    kwargs.setdefault("ca_file", portal.cert)
    return open_ctera_backend(portal.url, user, password, admin=admin, **kwargs)


@pytest.fixture
async def alice(sample_portal: PortalProcess) -> AsyncIterator[CteraBackend]:
    """Alice on the sample portal (read-only use)."""
    async with connect(sample_portal) as backend:
        yield backend


@pytest.fixture
async def fresh_alice(portal: PortalProcess) -> AsyncIterator[CteraBackend]:
    """Alice on the test's own fresh portal.  Modules whose tests change the portal import it
    as ``alice``, shadowing the read-only fixture above."""
    async with connect(portal) as backend:
        yield backend


@pytest.fixture
async def root(sample_portal: PortalProcess) -> AsyncIterator[CteraBackend]:
    """The global administrator on the sample portal, in ``/admin``."""
    async with connect(sample_portal, "root") as backend:
        yield backend


async def in_thread(function: Callable[..., T], *args: object) -> T:
    return await trio.to_thread.run_sync(lambda: function(*args))


def download(portal: PortalProcess, path: str, user: str = "alice") -> bytes:
    """The whole content of ``path`` fetched with plain httpx (no Range)."""
    context = portal_http.SERVICES if user in portal.users else "/admin"
    with portal_http.logged_in(portal, user, context) as http:
        reply = http.get(portal_http.webdav_url(path, context))
        assert reply.status_code == 200, reply.text
        return reply.content


def upload(portal: PortalProcess, path: str, content: bytes, user: str = "alice") -> None:
    """Upload ``content`` as ``path`` (spec §4.6 multipart), which must succeed."""
    with portal_http.logged_in(portal, user) as http:
        portal_http.put(http, portal, path, content)


def expire_sessions(portal: PortalProcess) -> None:
    """The portal's test hook: forget every session now."""
    with portal_http.client(portal) as http:
        reply = http.post("/portalfs/test/expire-sessions")
        assert reply.status_code == 200, reply.text


@contextmanager
def one_shot_server(serve: Callable[[socket.socket], None]) -> Iterator[int]:
    """A TCP server that hands its first connection to ``serve`` (on a thread); yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))

    def run() -> None:
        conn, _ = listener.accept()
        with conn:
            serve(conn)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        with suppress(OSError):
            socket.create_connection(listener.getsockname(), timeout=1).close()  # unblocks accept()
        thread.join(timeout=10)
        listener.close()
    assert not thread.is_alive()


class CountingSource:
    """A source that counts how often it is started and produces its bytes on the fly;
    it can fail (``OSError(EIO)``, as a staged copy that cannot be read) or stall
    forever once ``fail_after``/``stall_after`` bytes are out."""

    def __init__(self, size: int, seed: int = 7, chunk: int = 256 << 10, *, fail_after: int | None = None,
                 stall_after: int | None = None) -> None:
        self.size, self.seed, self.chunk = size, seed, chunk
        self.fail_after, self.stall_after = fail_after, stall_after
        self.calls = 0

    def expected(self) -> bytes:
        return b"".join(self._pieces())

    def _pieces(self) -> list[bytes]:
        rng = random.Random(self.seed)
        pieces, left = [], self.size
        while left:
            length = min(left, rng.randrange(1, self.chunk))
            pieces.append(rng.randbytes(length))
            left -= length
        return pieces

    def __call__(self) -> AsyncIterator[bytes]:
        self.calls += 1
        return self._generate()

    async def _generate(self) -> AsyncIterator[bytes]:
        rng = random.Random(self.seed)
        left = self.size
        while left:
            sent = self.size - left
            if self.fail_after is not None and sent >= self.fail_after:
                raise OSError(errno.EIO, "the staged copy cannot be read")
            if self.stall_after is not None and sent >= self.stall_after:
                await trio.sleep_forever()
            length = min(left, rng.randrange(1, self.chunk))
            yield rng.randbytes(length)
            left -= length


class BulkSends:
    """Records the method of every request a backend's bulk transport sends (it still sends them)."""

    def __init__(self, backend: CteraBackend, monkeypatch: pytest.MonkeyPatch) -> None:
        transport = backend._session.bulk
        assert transport is not None
        self.transport: BulkTransport = transport
        self.methods: list[str] = []
        real = transport.send

        async def send(method: str, *args: Any, **kwargs: Any) -> Any:
            self.methods.append(method)
            return await real(method, *args, **kwargs)

        monkeypatch.setattr(transport, "send", send)
