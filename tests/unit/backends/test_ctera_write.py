"""Uploads and mkdir against the real reference portal, checked through a second route.

What the backend reports is compared with what the portal serves to a plain
httpx client (WebDAV ``GET``, ``fetchResources``), so a backend that merely
believes its own answers cannot pass.
"""

from __future__ import annotations

import hashlib
import tracemalloc
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support import portal_http
from tests.support.portal_process import PortalProcess, running_portal
from tests.unit.backends.conftest import BulkSends, CountingSource, connect, download, expire_sessions, in_thread
from tests.unit.backends.conftest import fresh_alice as alice  # noqa: F401 - on the test's own portal
from vfs.backends.base import (
    Exists,
    InvalidName,
    IsADirectory,
    NotADirectory,
    NotFound,
    QuotaExceeded,
    ReadOnly,
    UploadSource,
)
from vfs.backends.ctera import CteraBackend
from vfs.backends.ctera.uploads import BULK_UPLOAD_MIN
from wire import ctera_xml

MIB = 1 << 20


def source_of(data: bytes, chunk: int = 64 << 10) -> UploadSource:
    """An upload source yielding ``data`` in ``chunk``-sized pieces (an async generator)."""

    async def chunks() -> AsyncIterator[bytes]:
        for offset in range(0, len(data), chunk):
            yield data[offset : offset + chunk]

    return chunks



async def served(portal: PortalProcess, path: str, user: str = "alice") -> bytes:
    return await in_thread(download, portal, path, user)


async def listed(portal: PortalProcess, folder: str) -> list[str]:
    def names() -> list[str]:
        with portal_http.logged_in(portal) as http:
            return portal_http.list_names(http, folder)

    return await in_thread(names)


# ------------------------------------------------------------------- uploads


async def test_upload_creates_a_file_and_a_new_version_keeps_its_identity(
    portal: PortalProcess, alice: CteraBackend
) -> None:
    first = await alice.upload(("My Files", "notes.txt"), source_of(b"first draft\n"), 12)
    assert first.path == ("My Files", "notes.txt") and not first.is_dir and first.size == 12
    assert await alice.stat(("My Files", "notes.txt")) == first
    assert await served(portal, "My Files/notes.txt") == b"first draft\n"

    second = await alice.upload(("My Files", "notes.txt"), source_of(b"the second, longer draft\n"), 25)
    assert second.object_id == first.object_id
    assert second.version != first.version and second.size == 25
    assert await served(portal, "My Files/notes.txt") == b"the second, longer draft\n"
    assert await alice.read(second, 0, 100) == b"the second, longer draft\n"
    assert await listed(portal, "My Files") == ["notes.txt"]


async def test_an_upload_replacing_a_read_file_is_never_served_from_the_old_binding(
    portal: PortalProcess, alice: CteraBackend
) -> None:
    """Same size within the same second: only the ETag tells the versions apart."""
    old = await alice.upload(("My Files", "same.bin"), source_of(b"A" * 100), 100)
    assert await alice.read(old, 0, 100) == b"A" * 100
    new = await alice.upload(("My Files", "same.bin"), source_of(b"B" * 100), 100)
    assert new.version != old.version  # even when size and second are the same
    assert await alice.read(new, 0, 100) == b"B" * 100


@pytest.mark.parametrize("name", ["日本.txt", "Ωmega", "emoji 🙂.txt"])
async def test_names_beyond_latin_1_upload(portal: PortalProcess, alice: CteraBackend, name: str) -> None:
    """Our form names the file part after the file (raw UTF-8), unlike the SDK's ``filename="file"``."""
    entry = await alice.upload(("My Files", name), source_of(name.encode()), len(name.encode()))
    assert entry.name == name
    assert await served(portal, f"My Files/{name}") == name.encode()


async def test_an_empty_file_uploads(portal: PortalProcess, alice: CteraBackend) -> None:
    async def nothing() -> AsyncIterator[bytes]:
        return
        yield b""  # an async generator that yields nothing

    entry = await alice.upload(("My Files", "empty"), nothing, 0)
    assert entry.size == 0 and not entry.is_dir
    assert await served(portal, "My Files/empty") == b""


async def test_a_multi_mib_upload_is_streamed_with_its_exact_length(
    portal: PortalProcess, alice: CteraBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    sends = BulkSends(alice, monkeypatch)
    source = CountingSource(5 * MIB + 12345)
    before = alice.statistics()
    entry = await alice.upload(("My Files", "big.bin"), source, source.size)
    after = alice.statistics()
    assert entry.size == source.size and source.calls == 1
    assert after.upload_bytes - before.upload_bytes == source.size
    assert after.count("upload") - before.count("upload") == 1
    content = await served(portal, "My Files/big.bin")
    assert hashlib.sha256(content).digest() == hashlib.sha256(source.expected()).digest()
    assert sends.methods == ["POST"]  # a large file goes through the bulk transport
    assert len(sends.transport._idle) == 1  # and leaves its connection clean
    small = CountingSource(BULK_UPLOAD_MIN - 1, seed=2)
    await alice.upload(("My Files", "small.bin"), small, small.size)
    assert sends.methods == ["POST"]  # a small one goes through httpx
    assert await served(portal, "My Files/small.bin") == small.expected()


@pytest.mark.slow
async def test_a_64_mib_upload_never_holds_the_file_in_memory(portal: PortalProcess, alice: CteraBackend) -> None:
    source = CountingSource(64 * MIB, chunk=MIB)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        entry = await alice.upload(("My Files", "huge.bin"), source, source.size)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert entry.size == source.size
    assert peak < 16 * MIB, f"peak traced memory {peak / MIB:.1f} MiB while uploading 64 MiB"


async def test_where_an_upload_cannot_go(portal: PortalProcess, alice: CteraBackend) -> None:
    with pytest.raises(NotFound):
        await alice.upload(("My Files", "no such folder", "a.txt"), source_of(b"x"), 1)
    with pytest.raises(ReadOnly):
        await alice.upload(("stray.txt",), source_of(b"x"), 1)
    await alice.upload(("My Files", "file"), source_of(b"x"), 1)
    with pytest.raises(NotADirectory):
        await alice.upload(("My Files", "file", "inside"), source_of(b"x"), 1)
    await alice.make_folder(("My Files", "folder"))
    with pytest.raises(IsADirectory):
        await alice.upload(("My Files", "folder"), source_of(b"x"), 1)
    assert sorted(await listed(portal, "My Files")) == ["file", "folder"]
    assert await listed(portal, "") == ["My Files"]


async def test_the_root_is_refused_before_any_content_is_sent(portal: PortalProcess, alice: CteraBackend) -> None:
    before = alice.statistics()
    with pytest.raises(ReadOnly):
        await alice.upload(("stray.txt",), source_of(b"x" * 1000), 1000)
    after = alice.statistics()
    assert after.count("upload") == before.count("upload") and after.upload_bytes == before.upload_bytes


@pytest.mark.parametrize("name", ["a:b", "CON", "trailing.", "NUL.txt", "what?"])
async def test_names_the_portal_refuses_are_invalid(portal: PortalProcess, alice: CteraBackend, name: str) -> None:
    with pytest.raises(InvalidName):
        await alice.upload(("My Files", name), source_of(b"data"), 4)
    with pytest.raises(InvalidName):
        await alice.make_folder(("My Files", name))
    assert await listed(portal, "My Files") == []


async def test_names_no_local_file_can_have_are_refused_without_a_request(alice: CteraBackend) -> None:
    before = alice.statistics().total_requests
    for name in ("a/b", "..", "", "x" * 256):
        with pytest.raises(InvalidName):
            await alice.upload(("My Files", name), source_of(b"data"), 4)
        with pytest.raises(InvalidName):
            await alice.make_folder(("My Files", name))
    assert alice.statistics().total_requests == before


async def test_an_upload_beyond_the_quota_is_quota_exceeded(tmp_path: Path) -> None:
    with running_portal(tmp_path / "data", "--quota", "1M") as portal:
        async with connect(portal) as alice:
            with pytest.raises(QuotaExceeded):
                await alice.upload(("My Files", "too-big.bin"), CountingSource(2 * MIB), 2 * MIB)
            assert await listed(portal, "My Files") == []
            small = await alice.upload(("My Files", "fits.bin"), source_of(b"f" * 1000), 1000)
            assert small.size == 1000


async def test_session_expiry_before_an_upload_is_transparent(
    portal: PortalProcess, alice: CteraBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The uid is cached, so the upload itself meets the expired session: the portal
    drains the body, answers 302, and the body goes again from a fresh ``source()``."""
    await alice.upload(("My Files", "warm-up"), source_of(b"w"), 1)
    await in_thread(expire_sessions, portal)
    sends = BulkSends(alice, monkeypatch)
    source = CountingSource(3 * MIB)
    before = alice.statistics()
    entry = await alice.upload(("My Files", "after-expiry.bin"), source, source.size)
    after = alice.statistics()
    assert entry.size == source.size
    assert after.relogins - before.relogins == 1
    assert source.calls == 2 and after.upload_bytes - before.upload_bytes == 2 * source.size
    assert sends.methods == ["POST", "POST"]  # both sends went through the bulk transport
    assert await served(portal, "My Files/after-expiry.bin") == source.expected()


async def test_session_expiry_before_an_upload_too_large_to_drain_is_transparent(
    portal: PortalProcess, alice: CteraBackend
) -> None:
    """Beyond what the portal drains before its 302, the send may just fail: the
    next attempt looks the folder up first, which renews the session."""
    await alice.upload(("My Files", "warm-up"), source_of(b"w"), 1)
    await in_thread(expire_sessions, portal)
    source = CountingSource(20 * MIB, chunk=MIB)
    entry = await alice.upload(("My Files", "large-after-expiry.bin"), source, source.size)
    assert entry.size == source.size
    assert alice.statistics().relogins == 1
    content = await served(portal, "My Files/large-after-expiry.bin")
    assert hashlib.sha256(content).digest() == hashlib.sha256(source.expected()).digest()


async def test_an_administrator_uploads_into_a_users_folder(portal: PortalProcess) -> None:
    async with connect(portal, "root") as root:
        entry = await root.upload(("Users", "alice", "My Files", "from-admin.txt"), source_of(b"hello alice"), 11)
        assert entry.path == ("Users", "alice", "My Files", "from-admin.txt") and entry.size == 11
        with pytest.raises(ReadOnly):
            await root.upload(("Users", "alice", "stray.txt"), source_of(b"x"), 1)
        folder = await root.make_folder(("Users", "alice", "My Files", "Admin made"))
        assert folder.is_dir
    assert await served(portal, "My Files/from-admin.txt") == b"hello alice"
    assert sorted(await listed(portal, "My Files")) == ["Admin made", "from-admin.txt"]


# --------------------------------------------------------------------- mkdir


async def test_make_folder(portal: PortalProcess, alice: CteraBackend) -> None:
    made = await alice.make_folder(("My Files", "Projects"))
    assert made.is_dir and made.path == ("My Files", "Projects") and made.writable
    assert await alice.stat(("My Files", "Projects")) == made
    nested = await alice.make_folder(("My Files", "Projects", "2025 plans & notes"))
    assert nested.is_dir
    with pytest.raises(Exists):
        await alice.make_folder(("My Files", "Projects"))
    with pytest.raises(Exists):
        await alice.make_folder(("My Files", "PROJECTS"))  # the portal compares names case-insensitively
    with pytest.raises(NotFound):
        await alice.make_folder(("My Files", "nowhere", "child"))
    with pytest.raises(ReadOnly):
        await alice.make_folder(("Top level",))
    assert await listed(portal, "My Files") == ["Projects"]
    assert await listed(portal, "My Files/Projects") == ["2025 plans & notes"]


async def test_uploads_into_a_known_folder_need_no_lookup(portal: PortalProcess, alice: CteraBackend) -> None:
    """The cloud folder uid is learnt from mkdir, stat and listings: one stat per upload (the re-stat)."""
    await alice.make_folder(("My Files", "Inbox"))
    before = alice.statistics().count("stat")
    for number in range(3):
        await alice.upload(("My Files", "Inbox", f"{number}.txt"), source_of(b"n"), 1)
    assert alice.statistics().count("stat") - before == 3
    await alice.list_page(("My Files",), 0, 100)
    before = alice.statistics().count("stat")
    await alice.upload(("My Files", "top.txt"), source_of(b"t"), 1)
    assert alice.statistics().count("stat") - before == 1
    assert sorted(await listed(portal, "My Files/Inbox")) == ["0.txt", "1.txt", "2.txt"]


async def test_a_remembered_folder_that_moved_away_is_looked_up_again(
    portal: PortalProcess, alice: CteraBackend
) -> None:
    await alice.make_folder(("My Files", "Old"))
    await alice.upload(("My Files", "Old", "a.txt"), source_of(b"a"), 1)

    # Moved behind this backend's back (another client): the remembered uid names a folder that is gone.
    def move_elsewhere() -> None:
        with portal_http.logged_in(portal) as http:
            status = portal_http.run_task(
                http,
                "moveResources",
                portal_http.resource_pairs((portal_http.href("My Files/Old"), portal_http.href("My Files/New"))),
            )
            assert ctera_xml.as_str(status.get("status")) == "completed"

    await in_thread(move_elsewhere)
    with pytest.raises(NotFound):
        await alice.upload(("My Files", "Old", "b.txt"), source_of(b"b"), 1)
    entry = await alice.upload(("My Files", "New", "b.txt"), source_of(b"b"), 1)
    assert entry.size == 1
    assert sorted(await listed(portal, "My Files/New")) == ["a.txt", "b.txt"]
