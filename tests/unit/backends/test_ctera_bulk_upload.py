"""Uploads of large files through the bulk transport: its failure paths.

The uploading task hands the body to a worker thread chunk by chunk
(bulk_body.py), so what is held here is the seam: a source that fails
mid-body surfaces as its own error (not a network one) and its half-sent
connection is never reused; cancelling an upload stuck in its source
returns at once and gives its slot back; and a peer that answers before it
read the body and hangs up is heard, not taken for a reset.  (Whole uploads,
small ones staying on httpx and a renewed session: test_ctera_write.py.)
"""

from __future__ import annotations

import errno
import socket
import time

import httpx
import pytest
import trio

from tests.support.portal_process import PortalProcess
from tests.support.waiting import until
from tests.unit.backends.conftest import BulkSends, CountingSource, download, in_thread, one_shot_server
from tests.unit.backends.conftest import fresh_alice as alice  # noqa: F401 - on the test's own portal
from vfs.backends.ctera import CteraBackend
from vfs.backends.ctera.bulk import BulkTransport
from vfs.backends.ctera.connection import Timeouts

MIB = 1 << 20


async def no_slot_is_held(transport: BulkTransport) -> None:
    """Wait until every body's worker gave its slot back; none left a connection behind."""
    await until(lambda: not transport._senders.borrowed_tokens, timeout=5)
    assert transport._idle == []  # a connection that carried a body is never kept


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
            await no_slot_is_held(transport)
        finally:
            transport.close()



async def test_a_source_failing_mid_body_is_its_own_error_and_the_connection_is_dropped(
        portal: PortalProcess, alice: CteraBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    sends = BulkSends(alice, monkeypatch)
    size = 4 * MIB
    with pytest.raises(OSError) as excinfo:
        await alice.upload(("My Files", "broken.bin"), CountingSource(size, seed=3, fail_after=2 * MIB), size)
    assert excinfo.value.errno == errno.EIO and sends.methods == ["POST"]
    await no_slot_is_held(sends.transport)
    assert (await alice.list_page(("My Files",), 0, 100)).entries == []  # no partial file
    # The transport is still fine for the next upload.
    whole = CountingSource(size, seed=4)
    entry = await alice.upload(("My Files", "whole.bin"), whole, size)
    assert entry.size == size
    assert await in_thread(download, portal, "My Files/whole.bin") == whole.expected()


async def test_cancelling_an_upload_stuck_in_its_source_returns_at_once(
        portal: PortalProcess, alice: CteraBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    sends = BulkSends(alice, monkeypatch)
    size = 4 * MIB
    started = time.monotonic()
    with trio.move_on_after(1.0) as scope:
        await alice.upload(("My Files", "stuck.bin"), CountingSource(size, seed=7, stall_after=MIB), size)
    assert scope.cancelled_caught and time.monotonic() - started < 3
    assert sends.methods == ["POST"]
    await no_slot_is_held(sends.transport)  # the worker gave its slot back
    size = 2 * MIB
    following = CountingSource(size, seed=8)
    entry = await alice.upload(("My Files", "next.bin"), following, size)
    assert entry.size == size
    assert await in_thread(download, portal, "My Files/next.bin") == following.expected()
