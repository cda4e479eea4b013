"""Several files of one folder in one ZIP request, against the real reference portal.

Expectations are the bytes plain httpx downloads for each path, so the ZIP
route is checked against the portal's ordinary one.  Faults no healthy
portal shows (a reply that is no ZIP, members of the wrong size, a broken
CRC, ambiguous names) are made by :class:`ZipRewriter`, a real transport to
the portal that rewrites the ZIP replies it passes on.
"""

from __future__ import annotations

import io
import logging
import random
import socket
import ssl
import unicodedata
import urllib.parse
import zipfile
from collections.abc import AsyncIterator, Callable, Sequence

import httpx
import pytest
import trio

from tests.support import portal_http
from tests.support.portal_process import PortalProcess
from tests.unit.backends.conftest import connect, download, expire_sessions, in_thread, upload
from vfs.backends.base import NotFound, Path, ProtocolError, RemoteEntry
from vfs.backends.ctera import CteraBackend
from vfs.backends.ctera.archives import UNPACK_INLINE, member_names, reply_limit
from vfs.backends.ctera.cloud_folders import CloudFolders, FolderUids
from vfs.backends.ctera.resources import Placement
from vfs.backends.retry import RetryPolicy
from wire import ctera_xml

FAST_RETRY = RetryPolicy(max_attempts=4, budget=20.0, first_delay=0.01, max_delay=0.05, rng=random.Random(5))

DOCUMENTS = ("My Files", "Documents")
PHOTOS = ("My Files", "Photos")


async def files_of(backend: CteraBackend, folder: Path) -> list[RemoteEntry]:
    page = await backend.list_page(folder, 0, 1000)
    return [entry for entry in page.entries if not entry.is_dir]


async def fill(portal: PortalProcess, folder: str, files: dict[str, bytes]) -> None:
    """Make ``My Files/<folder>`` holding ``files``, through plain httpx."""

    def make() -> None:
        with portal_http.logged_in(portal) as http:
            assert portal_http.mkdir(http, "My Files", folder) == "Ok"
            for name, content in files.items():
                portal_http.put(http, portal, f"My Files/{folder}/{name}", content)

    await in_thread(make)


async def served(portal: PortalProcess, entries: Sequence[RemoteEntry], user: str = "alice") -> dict[str, bytes]:
    """What plain httpx downloads for each entry, by object_id."""
    return {entry.object_id: await in_thread(download, portal, "/".join(entry.path), user) for entry in entries}


# ============================================================ the real portal


async def test_the_files_of_a_folder_come_back_byte_exact_in_one_request(
    alice: CteraBackend, sample_portal: PortalProcess
) -> None:
    for folder in (DOCUMENTS, PHOTOS):
        entries = await files_of(alice, folder)  # learns the folder's uid
        assert len(entries) >= 4
        before = alice.statistics()
        got = await alice.read_together(entries)
        after = alice.statistics()
        assert got == await served(sample_portal, entries)
        assert after.total_requests - before.total_requests == 1
        assert after.count("archive") - before.count("archive") == 1


async def test_the_request_goes_through_the_bulk_transport_on_a_kept_alive_connection(
    alice: CteraBackend, sample_portal: PortalProcess
) -> None:
    """Off the trio thread like other content; the POST only reads, so it may reuse a connection,
    and is sent again when the portal dropped that connection while it sat idle."""
    bulk = alice._session.bulk
    assert bulk is not None
    entries = await files_of(alice, DOCUMENTS)
    expected = await served(sample_portal, entries)
    assert await alice.read_together(entries) == expected
    (idle, _), = bulk._idle
    assert await alice.read_together(entries) == expected
    assert [connection for connection, _ in bulk._idle] == [idle]  # the same one, read to its end, went back
    assert idle.sock is not None
    socket.socket.shutdown(idle.sock, socket.SHUT_RDWR)  # broken while it sat idle
    before = alice.statistics()
    assert await alice.read_together(entries) == expected
    assert alice.statistics().total_requests - before.total_requests == 1  # resent inside the transport


async def test_the_zip_counts_as_downloaded_content(alice: CteraBackend) -> None:
    entries = await files_of(alice, PHOTOS)
    before = alice.statistics()
    got = await alice.read_together(entries)
    after = alice.statistics()
    content = after.content_bytes - before.content_bytes
    # The whole ZIP: every file's bytes plus the archive's headers, within the bound.
    assert sum(len(data) for data in got.values()) < content <= reply_limit(PHOTOS, entries)
    assert after.bytes_received - before.bytes_received == content


async def test_nothing_to_read_costs_no_request(alice: CteraBackend) -> None:
    before = alice.statistics().total_requests
    assert await alice.read_together([]) == {}
    assert alice.statistics().total_requests == before


async def test_entries_that_are_not_files_of_one_folder_are_refused(alice: CteraBackend) -> None:
    documents = await files_of(alice, DOCUMENTS)
    photos = await files_of(alice, PHOTOS)
    folder = await alice.stat(DOCUMENTS)
    before = alice.statistics().total_requests
    with pytest.raises(ValueError, match="one folder"):
        await alice.read_together([documents[0], photos[0]])
    with pytest.raises(ValueError, match="is a folder"):
        await alice.read_together([documents[0], folder])
    assert alice.statistics().total_requests == before


async def test_an_unknown_folder_uid_is_looked_up_first(sample_portal: PortalProcess) -> None:
    async with connect(sample_portal) as listing:
        entries = await files_of(listing, DOCUMENTS)
    async with connect(sample_portal) as fresh:  # has never seen the folder
        got = await fresh.read_together(entries)
        assert got == await served(sample_portal, entries)
        assert fresh.statistics().count("stat") == 1 and fresh.statistics().count("archive") == 1


async def test_a_global_administrator_reads_together_in_admin(
    root: CteraBackend, sample_portal: PortalProcess
) -> None:
    owner = next(entry for entry in (await root.list_page(("Users",), 0, 100)).entries if entry.name == "alice")
    folder = (*owner.path, "My Files", "Documents")
    entries = await files_of(root, folder)
    got = await root.read_together(entries)
    assert got == await served(sample_portal, entries, user="root")
    assert root.statistics().count("archive") == 1


NAMES = [
    "a b.txt",
    "100% sure.txt",
    "#hash #1.txt",
    "q1 & q2+q3.txt",
    "résumé.txt",
    unicodedata.normalize("NFD", "café noir.txt"),  # stored decomposed, compared in NFC
    "日本語のファイル.txt",
    "emoji 🙂.txt",
    "%41%2F.txt",  # looks encoded, is not
]


async def test_names_that_need_encoding_and_an_empty_file(portal: PortalProcess) -> None:
    files = {name: f"{number}: {name}\n".encode() * (number + 1) for number, name in enumerate(NAMES)}
    await fill(portal, "Names", {**files, "empty": b""})
    async with connect(portal) as alice:
        entries = await files_of(alice, ("My Files", "Names"))
        assert len(entries) == len(NAMES) + 1
        got = await alice.read_together(entries)
        assert got == await served(portal, entries)
        empty = next(entry for entry in entries if entry.name == "empty")
        assert got[empty.object_id] == b""
        assert alice.statistics().count("archive") == 1

        # An empty file alone is known without asking.
        before = alice.statistics().total_requests
        assert await alice.read_together([empty]) == {empty.object_id: b""}
        assert alice.statistics().total_requests == before


async def test_a_file_deleted_after_listing_fails_the_whole_request(portal: PortalProcess) -> None:
    """The portal answers 404 for the whole selection: NotFound, promptly; the caller reads one by one."""
    await fill(portal, "Box", {name: name.encode() * 10 for name in ("keep-1.txt", "gone.txt", "keep-2.txt")})
    async with connect(portal) as alice, connect(portal) as other:
        entries = await files_of(alice, ("My Files", "Box"))
        await other.delete(("My Files", "Box", "gone.txt"))
        with trio.fail_after(30):
            with pytest.raises(NotFound):
                await alice.read_together(entries)
        stats = alice.statistics()
        # The remembered uid was checked once (it is still right), the ZIP not asked again.
        assert stats.count("archive") == 1 and stats.count("stat") == 1 and stats.retries == 0
        kept = [entry for entry in entries if entry.name != "gone.txt"]
        assert await alice.read_together(kept) == await served(portal, kept)


async def test_a_file_changed_to_another_size_is_left_out(portal: PortalProcess) -> None:
    await fill(portal, "Box", {"same.txt": b"same", "grows.txt": b"short"})
    async with connect(portal) as alice:
        entries = await files_of(alice, ("My Files", "Box"))
        await in_thread(upload, portal, "My Files/Box/grows.txt", b"a good deal longer now")
        got = await alice.read_together(entries)
        same = next(entry for entry in entries if entry.name == "same.txt")
        assert got == {same.object_id: b"same"}


async def test_an_expired_session_is_renewed(portal: PortalProcess) -> None:
    await fill(portal, "Box", {"a.txt": b"a" * 100, "b.txt": b"b" * 200})
    async with connect(portal) as alice:
        entries = await files_of(alice, ("My Files", "Box"))
        await in_thread(expire_sessions, portal)
        assert await alice.read_together(entries) == await served(portal, entries)
        assert alice.statistics().relogins == 1


async def test_a_zip_of_megabytes_is_unpacked_off_the_event_loop(portal: PortalProcess) -> None:
    rng = random.Random(9)
    await fill(portal, "Big", {f"{index}.bin": rng.randbytes(700_000 + index) for index in range(3)})
    async with connect(portal) as alice:
        entries = await files_of(alice, ("My Files", "Big"))
        assert sum(entry.size for entry in entries) > UNPACK_INLINE
        assert await alice.read_together(entries) == await served(portal, entries)


# ==================================================== rewritten ZIP replies

Rewrite = Callable[[bytes], httpx.Response]


class ZipRewriter(httpx.AsyncBaseTransport):
    """A real HTTPS transport to the portal that records ZIP requests and rewrites their replies."""

    def __init__(self, portal: PortalProcess) -> None:
        assert portal.cert is not None
        self.inner = httpx.AsyncHTTPTransport(verify=ssl.create_default_context(cafile=str(portal.cert)))
        self.rewrites: list[Rewrite] = []
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if "/folders/folders/" not in request.url.path:
            return await self.inner.handle_async_request(request)
        await request.aread()
        self.requests.append(request)
        response = await self.inner.handle_async_request(request)
        if not self.rewrites:
            return response
        body = await response.aread()
        await response.aclose()
        assert response.status_code == 200, body
        return self.rewrites.pop(0)(body)

    async def aclose(self) -> None:
        await self.inner.aclose()


@pytest.fixture
async def rewriter(sample_portal: PortalProcess) -> AsyncIterator[tuple[CteraBackend, ZipRewriter]]:
    transport = ZipRewriter(sample_portal)
    async with connect(sample_portal, transport=transport, retry=FAST_RETRY) as backend:
        yield backend, transport


def zip_reply(body: bytes) -> httpx.Response:
    return httpx.Response(200, headers={"content-type": "application/zip"}, content=body)


def flip_first_byte(archive: bytes, content: bytes) -> bytes:
    """``archive`` with one byte of a stored member's ``content`` changed (its CRC no longer matches)."""
    assert archive.count(content) == 1
    return archive.replace(content, bytes([content[0] ^ 0x55]) + content[1:])


async def test_the_request_is_the_sdks(
    rewriter: tuple[CteraBackend, ZipRewriter], sample_portal: PortalProcess
) -> None:
    alice, transport = rewriter
    entries = await files_of(alice, DOCUMENTS)
    await alice.read_together(entries)
    [request] = transport.requests

    def describe() -> ctera_xml.Obj | None:
        with portal_http.logged_in(sample_portal) as http:
            return portal_http.stat(http, "My Files/Documents")

    info = await in_thread(describe)
    assert info is not None
    folder_info = ctera_xml.as_obj(info.get("cloudFolderInfo"))
    assert folder_info is not None
    assert request.method == "POST"
    assert request.url.path == f"/ServicesPortal/folders/folders/{ctera_xml.as_str(folder_info.get('uid'))}"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    form = urllib.parse.parse_qs(request.content.decode("ascii"), strict_parsing=True)
    assert list(form) == ["inputXML"]
    selection = ctera_xml.as_obj(ctera_xml.decode(form["inputXML"][0]))
    assert selection is not None and selection.class_name is None
    assert list(selection.fields) == ["paths", "snapshot", "password", "portalName", "showDeleted"]
    assert [ctera_xml.as_str(value) for value in ctera_xml.as_list(selection.get("paths"))] == [
        portal_http.href("/".join(entry.path)) for entry in entries
    ]
    assert "q1%20%26%20q2%20r%C3%A9sum%C3%A9%20%231.txt" in form["inputXML"][0]
    assert selection.get("snapshot") is None and selection.get("password") is None
    assert selection.get("portalName") is None
    assert ctera_xml.as_bool(selection.get("showDeleted")) is False


async def test_a_reply_that_is_no_zip_is_a_protocol_error(rewriter: tuple[CteraBackend, ZipRewriter]) -> None:
    alice, transport = rewriter
    entries = await files_of(alice, DOCUMENTS)
    transport.rewrites.append(lambda body: zip_reply(b"<html><body>Portal maintenance</body></html>"))
    stats_before = alice.statistics().count("stat")
    # Unpacking fails after the request: no lookup, and the ZIP is not asked again.
    with pytest.raises(ProtocolError, match="not a ZIP"):
        await alice.read_together(entries)
    assert len(transport.requests) == 1 and alice.statistics().count("stat") == stats_before


async def test_a_reply_longer_than_the_files_allow_is_a_protocol_error(
    rewriter: tuple[CteraBackend, ZipRewriter]
) -> None:
    alice, transport = rewriter
    entries = await files_of(alice, DOCUMENTS)
    limit = reply_limit(DOCUMENTS, entries)
    transport.rewrites.append(lambda body: zip_reply(body + b"\0" * limit))
    with pytest.raises(ProtocolError, match="larger than"):
        await alice.read_together(entries)
    assert alice.statistics().content_bytes == 0  # nothing was returned as content


async def test_damaged_or_ambiguous_members_are_left_out(
    rewriter: tuple[CteraBackend, ZipRewriter], sample_portal: PortalProcess, caplog: pytest.LogCaptureFixture
) -> None:
    alice, transport = rewriter
    entries = {entry.name: entry for entry in await files_of(alice, PHOTOS)}
    expected = await served(sample_portal, list(entries.values()))

    def rewrite(body: bytes) -> httpx.Response:
        original = zipfile.ZipFile(io.BytesIO(body))
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr("Photos/", b"")  # a folder member: ignored
            for member in original.infolist():
                data = original.read(member)
                name = member.filename
                if name == "IMG_1000.png":
                    data += b"!"  # another size than listed
                elif name == "IMG_1002.png":
                    archive.writestr(f"elsewhere/{name}", data)  # a second member of that name
                elif name == "IMG_1003.png":
                    name = f"Photos/{name}"  # the folder's name in front, and deflated
                    archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
                    continue
                archive.writestr(name, data)
            archive.writestr("not asked for.txt", b"stray")
        damaged = flip_first_byte(out.getvalue(), original.read("IMG_1001.png"))  # CRC mismatch
        return zip_reply(damaged)

    transport.rewrites.append(rewrite)
    with caplog.at_level(logging.INFO, logger="vfs.backends.ctera.archives"):
        got = await alice.read_together(list(entries.values()))
    reasons = {record.getMessage().split(": ", 1)[1] for record in caplog.records}
    assert any(reason.startswith("'IMG_1000.png' holds") for reason in reasons)
    assert any(reason.startswith("'IMG_1001.png' cannot be unpacked (Bad CRC-32") for reason in reasons)
    assert any(reason.startswith("'IMG_1002.png' matches more than one member") for reason in reasons)
    left_out = {"IMG_1000.png", "IMG_1001.png", "IMG_1002.png"}
    kept = [entry for name, entry in entries.items() if name not in left_out]
    assert got == {entry.object_id: expected[entry.object_id] for entry in kept}
    assert entries["IMG_1003.png"].object_id in got


async def test_a_transient_failure_is_retried(
    rewriter: tuple[CteraBackend, ZipRewriter], sample_portal: PortalProcess
) -> None:
    alice, transport = rewriter
    entries = await files_of(alice, DOCUMENTS)
    transport.rewrites.append(lambda body: httpx.Response(503, content=b"busy"))
    assert await alice.read_together(entries) == await served(sample_portal, entries)
    assert alice.statistics().retries == 1 and len(transport.requests) == 2


# ============================================================= pieces alone


def test_a_name_without_the_utf8_flag_is_also_read_as_utf8() -> None:
    member = zipfile.ZipInfo("Documents/" + "résumé.txt".encode("utf-8").decode("cp437"))
    member.flag_bits = 0
    assert "résumé.txt" in member_names(member)
    flagged = zipfile.ZipInfo(unicodedata.normalize("NFD", "Documents/résumé.txt"))
    flagged.flag_bits = 0x800
    assert member_names(flagged) == {"résumé.txt"}


async def test_a_remembered_uid_is_replaced_only_when_the_portal_names_another() -> None:
    """CloudFolders' decision alone, with the portal's answers injected: a folder that
    moved into another cloud folder is rare and slow to arrange on a real portal (the
    real-portal case of a folder gone: test_ctera_write.py, remembered folder moved away)."""
    folder = ("My Files", "Moved")
    below = (*folder, "Sub")
    described = RemoteEntry(path=folder, is_dir=True, size=0, mtime=0.0, object_id="ctera:1", version="v")
    current = {"uid": "new"}
    sent: list[str] = []

    async def describe(path: Path) -> tuple[RemoteEntry, Placement]:
        return described, Placement(scope="InsideCloudFolder", permission="ReadWrite", cloud_folder_uid=current["uid"])

    async def request(uid: str) -> str:
        sent.append(uid)
        if uid != current["uid"]:
            raise NotFound("no such cloud folder")
        return f"sent to {uid}"

    uids = FolderUids()
    folders = CloudFolders(uids, describe)
    uids.learn(folder, "old")
    uids.learn(below, "old")
    assert await folders.send(folder, request, refusal=lambda e, p: None, what="test") == "sent to new"
    assert sent == ["old", "new"] and uids.get(folder) == "new"
    assert uids.get(below) is None  # learnt under the old cloud folder: wrong now too

    # The portal still names the same uid: the refusal was not about it, and stands.
    current["uid"] = "other"
    uids.learn(folder, "other")
    uids.learn(below, "other")
    sent.clear()

    async def refused(uid: str) -> str:
        sent.append(uid)
        raise NotFound("the file is gone")

    with pytest.raises(NotFound, match="the file is gone"):
        await folders.send(folder, refused, refusal=lambda e, p: None, what="test")
    assert sent == ["other"] and uids.get(below) == "other"  # what is known below it still holds
