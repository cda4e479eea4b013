"""Uploads whose length is unknown when they start: a chunked WebDAV PUT (streamed_uploads.py).

Against the reference portal: the content arrives whole, onto an existing
file as a new version of that same file; ``new`` refuses a name that is
taken; and a body that fails, or is cancelled, before its end leaves nothing
on the portal, which is what makes the early upload of a file still being
written safe to cut off.  Against a peer that takes no PUT: Unsupported,
remembered without asking again.
"""

from __future__ import annotations

import errno
import socket
import ssl

import httpx
import pytest
import trio

from tests.support.portal_process import PortalProcess, wait_for_no_tmp_files
from tests.unit.backends.conftest import (
    BulkSends,
    CountingSource,
    connect,
    download,
    expire_sessions,
    in_thread,
    one_shot_server,
)
from tests.unit.backends.conftest import fresh_alice as alice  # noqa: F401 - on the test's own portal
from vfs.backends.base import IsADirectory, StaleVersion, Transient, Unsupported
from vfs.backends.ctera import CteraBackend

MIB = 1 << 20



async def test_a_streamed_upload_arrives_whole_as_a_new_file(
        portal: PortalProcess, alice: CteraBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    sends = BulkSends(alice, monkeypatch)
    source = CountingSource(6 * MIB + 5, seed=11)
    entry = await alice.upload_streamed(("My Files", "stream.bin"), source(), new=True)
    assert entry.size == 6 * MIB + 5 and entry.path == ("My Files", "stream.bin")
    assert sends.methods == ["PUT"]
    assert alice.statistics().requests["put"] == 1
    assert await in_thread(download, portal, "My Files/stream.bin") == source.expected()


async def test_a_streamed_upload_onto_a_file_is_a_new_version_of_it(portal: PortalProcess, alice: CteraBackend) -> None:
    first = CountingSource(MIB, seed=1)
    before = await alice.upload(("My Files", "doc.bin"), first, first.size)
    second = CountingSource(3 * MIB, seed=2)
    after = await alice.upload_streamed(("My Files", "doc.bin"), second(), new=False)
    assert after.object_id == before.object_id and after.version != before.version
    assert await in_thread(download, portal, "My Files/doc.bin") == second.expected()


async def test_new_refuses_a_name_that_is_taken(portal: PortalProcess, alice: CteraBackend) -> None:
    first = CountingSource(1000, seed=1)
    await alice.upload(("My Files", "taken.bin"), first, first.size)
    with pytest.raises(StaleVersion):
        await alice.upload_streamed(("My Files", "taken.bin"), CountingSource(2 * MIB, seed=2)(), new=True)
    assert await in_thread(download, portal, "My Files/taken.bin") == first.expected()


async def test_a_body_that_fails_before_its_end_leaves_nothing(portal: PortalProcess, alice: CteraBackend) -> None:
    failing = CountingSource(8 * MIB, seed=3, fail_after=3 * MIB)
    with pytest.raises(OSError) as excinfo:
        await alice.upload_streamed(("My Files", "cut.bin"), failing(), new=True)
    assert excinfo.value.errno == errno.EIO
    with trio.move_on_after(1.0) as scope:  # and one stuck in its source, then cancelled
        await alice.upload_streamed(("My Files", "stuck.bin"), CountingSource(8 * MIB, stall_after=MIB)(), new=True)
    assert scope.cancelled_caught
    await in_thread(wait_for_no_tmp_files, portal)  # the portal has noticed the hang-ups
    assert (await alice.list_page(("My Files",), 0, 100)).entries == []


async def test_a_session_that_expired_fails_the_put_as_transient_and_leaves_nothing(
        portal: PortalProcess, alice: CteraBackend) -> None:
    """The body cannot be sent twice: when the portal turns the PUT away for an expired session, the
    session logs in again and the second request for the body fails the upload as Transient (its
    caller falls back to the ordinary upload), with nothing left on the portal and the new session
    working."""
    await in_thread(expire_sessions, portal)
    with pytest.raises(Transient, match="session expired"):
        await alice.upload_streamed(("My Files", "late.bin"), CountingSource(2 * MIB, seed=4)(), new=True)
    assert alice.statistics().relogins == 1
    await in_thread(wait_for_no_tmp_files, portal)
    assert (await alice.list_page(("My Files",), 0, 100)).entries == []
    source = CountingSource(MIB, seed=5)
    await alice.upload_streamed(("My Files", "next.bin"), source(), new=True)
    assert await in_thread(download, portal, "My Files/next.bin") == source.expected()


async def test_a_portal_without_put_is_unsupported_and_not_asked_again(portal: PortalProcess) -> None:
    requests: list[bytes] = []

    def refuse(conn: socket.socket) -> None:
        requests.append(conn.recv(65536))
        conn.sendall(b"HTTP/1.1 405 Method Not Allowed\r\nAllow: GET\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")

    async with connect(portal) as backend:
        transport = backend._session.bulk
        assert transport is not None
        with one_shot_server(refuse) as port:
            # The PUT goes to a peer that only knows GET; everything else stays with the portal.
            transport._port = port
            transport._scheme = "http"
            with pytest.raises(Unsupported):
                await backend.upload_streamed(("My Files", "a.bin"), CountingSource(2 * MIB)(), new=True)
            with pytest.raises(Unsupported), trio.fail_after(5):  # not sent: the peer would not answer
                await backend.upload_streamed(("My Files", "b.bin"), CountingSource(2 * MIB)(), new=True)
        assert len(requests) == 1 and requests[0].startswith(b"PUT /ServicesPortal/webdav/My%20Files/a.bin ")


async def test_a_folder_in_the_way_fails_that_upload_alone(portal: PortalProcess, alice: CteraBackend) -> None:
    """The portal answers a PUT onto a folder with 405, as it would a PUT it does not take at all.
    A folder at the path tells the two apart: that upload fails as IsADirectory, whether or not
    a PUT was taken before, and the next ones still stream."""
    await alice.make_folder(("My Files", "folder"))
    with pytest.raises(IsADirectory):
        await alice.upload_streamed(("My Files", "folder"), CountingSource(2 * MIB, seed=6)(), new=False)
    source = CountingSource(MIB, seed=7)
    await alice.upload_streamed(("My Files", "first.bin"), source(), new=True)
    with pytest.raises(IsADirectory):
        await alice.upload_streamed(("My Files", "folder"), CountingSource(MIB, seed=8)(), new=False)
    await alice.upload_streamed(("My Files", "later.bin"), CountingSource(MIB, seed=9)(), new=True)
    assert await in_thread(download, portal, "My Files/first.bin") == source.expected()
    assert (await alice.stat(("My Files", "folder"))).is_dir
    assert alice.statistics().count("put") == 4


async def test_no_streamed_upload_without_the_bulk_transport(portal: PortalProcess) -> None:
    """A proxy (or an injected transport) leaves only httpx, which this upload does not use."""
    plain = httpx.AsyncHTTPTransport(verify=ssl.create_default_context(cafile=str(portal.cert)))
    async with connect(portal, transport=plain) as backend:
        assert backend._session.bulk is None
        with pytest.raises(Unsupported):
            await backend.upload_streamed(("My Files", "c.bin"), CountingSource(MIB)(), new=True)
