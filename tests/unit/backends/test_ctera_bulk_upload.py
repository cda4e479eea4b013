"""Uploads of large files through the bulk transport, against the real portal.

The body is pulled chunk by chunk from the trio side by a worker thread, so
what is held here is the seam: the portal gets exactly the source's bytes;
small files stay on httpx; a source that fails mid-body surfaces as its own
error (not a network one) and its half-sent connection is never reused; a
session that expired is renewed and the body sent again; and cancelling an
upload stuck in its source returns at once.
"""

from __future__ import annotations

import errno
import hashlib
import random
import socket
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import trio

from tests.support.portal_process import PortalProcess
from tests.unit.backends.conftest import connect, download, expire_sessions, in_thread, one_shot_server
from vfs.backends.ctera import CteraBackend
from vfs.backends.ctera.bulk import BulkTransport
from vfs.backends.ctera.connection import Timeouts
from vfs.backends.ctera.uploads import BULK_UPLOAD_MIN

MIB = 1 << 20


class BulkSends:
    """Records the method of every request the backend's bulk transport sends (it still sends them)."""

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


def pieces(size: int, seed: int, *, fail_after: int | None = None,
           stall_after: int | None = None) -> Callable[[], AsyncIterator[bytes]]:
    """A source of ``size`` bytes in 256 KiB pieces that can fail or stall after some bytes."""

    def source() -> AsyncIterator[bytes]:
        async def generate() -> AsyncIterator[bytes]:
            sent = 0
            while sent < size:
                if fail_after is not None and sent >= fail_after:
                    raise OSError(errno.EIO, "the staged copy cannot be read")
                if stall_after is not None and sent >= stall_after:
                    await trio.sleep_forever()
                piece = min(256 << 10, size - sent)
                yield content(size, seed)[sent:sent + piece]
                sent += piece

        return generate()

    return source


_contents: dict[tuple[int, int], bytes] = {}


def content(size: int, seed: int) -> bytes:
    if (size, seed) not in _contents:
        _contents[(size, seed)] = random.Random(seed).randbytes(size)
    return _contents[(size, seed)]


async def until_no_slot_is_held(transport: BulkTransport) -> None:
    with trio.fail_after(5):
        while transport._senders.borrowed_tokens:
            await trio.sleep(0.01)
    assert transport._idle == []  # and the connection that carried the body was not kept


class Zeros(httpx.AsyncByteStream):
    """``size`` zero bytes in 1 MiB chunks."""

    def __init__(self, size: int) -> None:
        self.left = size

    def __aiter__(self) -> Zeros:  # type: ignore[override]
        return self

    async def __anext__(self) -> bytes:
        if not self.left:
            raise StopAsyncIteration
        count = min(self.left, MIB)
        self.left -= count
        return bytes(count)


async def test_a_reply_sent_before_the_body_was_read_is_heard_not_the_reset() -> None:
    """A portal that refuses an upload after its headers (a 413, a 302) and hangs
    up: the sender meets a reset mid-body, but the reply is there to be read."""
    def refuse(conn: socket.socket) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large")
        time.sleep(0.2)  # then close with the body unread: a reset for the sender

    with one_shot_server(refuse) as port:
        transport = BulkTransport("http", "127.0.0.1", port, context=None, timeouts=Timeouts(connect=2.0, read=5.0))
        try:
            size = 256 * MIB
            response = await transport.send("POST", "/upload", {"content-length": str(size)},
                                            body=lambda: Zeros(size))
            assert response.status_code == 413
            assert await response.read_some(100) == b"too large"
            await response.aclose()
            await until_no_slot_is_held(transport)
        finally:
            transport.close()


@pytest.fixture
async def alice(portal: PortalProcess) -> AsyncIterator[CteraBackend]:
    async with connect(portal) as backend:
        yield backend


async def test_large_files_go_through_the_bulk_transport_and_arrive_whole(
        portal: PortalProcess, alice: CteraBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    sends = BulkSends(alice, monkeypatch)
    size = 5 * MIB + 12345
    entry = await alice.upload(("My Files", "big.bin"), pieces(size, 1), size)
    assert entry.size == size and sends.methods == ["POST"]
    assert alice.statistics().upload_bytes == size
    served = await in_thread(download, portal, "My Files/big.bin")
    assert hashlib.sha256(served).digest() == hashlib.sha256(content(size, 1)).digest()
    assert len(sends.transport._idle) == 1  # the connection was clean afterwards

    small = BULK_UPLOAD_MIN - 1
    await alice.upload(("My Files", "small.bin"), pieces(small, 2), small)
    assert sends.methods == ["POST"]  # the small one went through httpx
    assert await in_thread(download, portal, "My Files/small.bin") == content(small, 2)


async def test_a_source_failing_mid_body_is_its_own_error_and_the_connection_is_dropped(
        portal: PortalProcess, alice: CteraBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    sends = BulkSends(alice, monkeypatch)
    size = 4 * MIB
    with pytest.raises(OSError) as excinfo:
        await alice.upload(("My Files", "broken.bin"), pieces(size, 3, fail_after=2 * MIB), size)
    assert excinfo.value.errno == errno.EIO and sends.methods == ["POST"]
    await until_no_slot_is_held(sends.transport)
    assert (await alice.list_page(("My Files",), 0, 100)).entries == []  # no partial file
    # The transport is still fine for the next upload.
    entry = await alice.upload(("My Files", "whole.bin"), pieces(size, 4), size)
    assert entry.size == size
    assert await in_thread(download, portal, "My Files/whole.bin") == content(size, 4)


async def test_an_expired_session_is_renewed_and_the_body_sent_again(
        portal: PortalProcess, alice: CteraBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    await alice.upload(("My Files", "warm-up"), pieces(1, 5), 1)  # the folder's uid is known now
    await in_thread(expire_sessions, portal)
    sends = BulkSends(alice, monkeypatch)
    size = 3 * MIB
    entry = await alice.upload(("My Files", "after-expiry.bin"), pieces(size, 6), size)
    assert entry.size == size and alice.statistics().relogins == 1
    assert sends.methods == ["POST", "POST"]
    assert await in_thread(download, portal, "My Files/after-expiry.bin") == content(size, 6)


async def test_cancelling_an_upload_stuck_in_its_source_returns_at_once(
        portal: PortalProcess, alice: CteraBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    sends = BulkSends(alice, monkeypatch)
    size = 4 * MIB
    started = time.monotonic()
    with trio.move_on_after(1.0) as scope:
        await alice.upload(("My Files", "stuck.bin"), pieces(size, 7, stall_after=MIB), size)
    assert scope.cancelled_caught and time.monotonic() - started < 3
    assert sends.methods == ["POST"]
    await until_no_slot_is_held(sends.transport)  # the worker gave its slot back
    size = 2 * MIB
    entry = await alice.upload(("My Files", "next.bin"), pieces(size, 8), size)
    assert entry.size == size
    assert await in_thread(download, portal, "My Files/next.bin") == content(size, 8)
