"""Write-side faults: lost replies, resets mid-upload, slow tasks, every refusal message.

Two kinds of harness:

* :class:`Faults` wraps a real transport to the reference portal and spoils
  chosen exchanges (cuts an upload's body, loses a reply after the portal
  acted, answers "still running").  Whatever is not spoiled is the real
  portal's answer, so the outcome is checked there.
* :class:`WritableFake` (``httpx.MockTransport``) scripts replies no healthy
  portal gives (every upload refusal, failed tasks, tasks that never end) and
  runs on trio's ``MockClock``, so poll cadence and timeouts are exact and free.
"""

from __future__ import annotations

import random
import re
import ssl
import urllib.parse
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import trio
from trio.testing import MockClock

from tests.support import portal_http
from tests.support.portal_process import PortalProcess
from tests.unit.backends.conftest import connect, download, in_thread
from tests.unit.backends.fake_ctera import FakeFile, FakePortal, error_response, resource_info, xml
from vfs.backends.base import (
    Exists,
    InvalidName,
    NotFound,
    PermissionDenied,
    ProtocolError,
    QuotaExceeded,
    ReadOnly,
    Transient,
    UploadSource,
)
from vfs.backends.ctera import CteraBackend, Timeouts, open_ctera_backend
from vfs.backends.retry import RetryPolicy
from wire import ctera_xml
from wire.ctera_xml import Obj, obj

MIB = 1 << 20
FAST_RETRY = RetryPolicy(max_attempts=5, budget=20.0, first_delay=0.01, max_delay=0.05, rng=random.Random(3))


def source_of(data: bytes, chunk: int = 256 << 10) -> tuple[UploadSource, list[int]]:
    """An async-generator source, and a list that counts its starts."""
    starts: list[int] = []

    async def chunks() -> AsyncIterator[bytes]:
        starts.append(1)
        for offset in range(0, len(data), chunk):
            yield data[offset : offset + chunk]

    return chunks, starts


# =========================================================== the real portal


class _Cut(Exception):
    """Ends a forwarded request mid-body (the connection is then dropped)."""


Spoiler = Callable[[httpx.AsyncBaseTransport, httpx.Request], Any]


class Faults(httpx.AsyncBaseTransport):
    """A real HTTPS transport to the portal that spoils the next matching exchanges."""

    def __init__(self, portal: PortalProcess) -> None:
        assert portal.cert is not None
        self.inner = httpx.AsyncHTTPTransport(verify=ssl.create_default_context(cafile=str(portal.cert)))
        self.rules: list[tuple[Callable[[httpx.Request], bool], Spoiler]] = []
        self.spoiled = 0

    def next(self, match: Callable[[httpx.Request], bool], spoiler: Spoiler) -> None:
        self.rules.append((match, spoiler))

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for index, (match, spoiler) in enumerate(self.rules):
            if match(request):
                del self.rules[index]
                self.spoiled += 1
                return await spoiler(self.inner, request)
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def is_upload(request: httpx.Request) -> bool:
    return "/upload/folders/" in request.url.path


def is_call(method: str) -> Callable[[httpx.Request], bool]:
    def match(request: httpx.Request) -> bool:
        return request.url.path.endswith("/api") and f"<val>{method}</val>".encode() in request.content

    return match


def cut_after(limit: int) -> Spoiler:
    """Forward the first ``limit`` body bytes, then drop the connection: a reset mid-upload."""

    async def spoil(inner: httpx.AsyncBaseTransport, request: httpx.Request) -> httpx.Response:
        class Cut(httpx.AsyncByteStream):
            def __init__(self) -> None:
                self.sent = 0
                self.chunks: Any = None

            def __aiter__(self) -> Cut:  # type: ignore[override]
                return self

            async def __anext__(self) -> bytes:
                if self.sent >= limit:
                    raise _Cut()
                if self.chunks is None:
                    self.chunks = request.stream.__aiter__()
                chunk = (await self.chunks.__anext__())[: limit - self.sent]
                self.sent += len(chunk)
                return chunk

        cut = httpx.Request(request.method, request.url, headers=request.headers, stream=Cut(),
                            extensions=request.extensions)
        try:
            response = await inner.handle_async_request(cut)
            await response.aclose()
        except _Cut:
            pass
        raise httpx.ReadError("connection reset by peer")

    return spoil


async def lose_reply(inner: httpx.AsyncBaseTransport, request: httpx.Request) -> httpx.Response:
    """The portal gets and does the whole request; its reply never arrives."""
    response = await inner.handle_async_request(request)
    await response.aread()
    await response.aclose()
    raise httpx.ReadError("connection reset by peer")


async def still_running(inner: httpx.AsyncBaseTransport, request: httpx.Request) -> httpx.Response:
    return xml(obj("FileManagerBgTask", id=1, startTime="2025-01-01T00:00:00", status="running",
                   errorType=None, progstring="", cursor=None))


@pytest.fixture
def faults(portal: PortalProcess) -> Faults:
    return Faults(portal)


@pytest.fixture
async def alice(portal: PortalProcess, faults: Faults) -> AsyncIterator[CteraBackend]:
    async with connect(portal, transport=faults, retry=FAST_RETRY) as backend:
        yield backend


async def names_in(portal: PortalProcess, folder: str) -> list[str]:
    def names() -> list[str]:
        with portal_http.logged_in(portal) as http:
            return sorted(portal_http.list_names(http, folder))

    return await in_thread(names)


async def test_a_reset_mid_upload_restarts_it_from_the_source(
    portal: PortalProcess, faults: Faults, alice: CteraBackend
) -> None:
    data = random.Random(1).randbytes(4 * MIB)
    source, starts = source_of(data)
    faults.next(is_upload, cut_after(1 * MIB))
    entry = await alice.upload(("My Files", "reset.bin"), source, len(data))
    assert faults.spoiled == 1 and len(starts) == 2
    assert entry.size == len(data) and alice.statistics().retries == 1
    assert await in_thread(download, portal, "My Files/reset.bin") == data
    assert await names_in(portal, "My Files") == ["reset.bin"]


async def test_a_lost_upload_reply_is_sent_again_and_the_file_exists_once(
    portal: PortalProcess, faults: Faults, alice: CteraBackend
) -> None:
    data = b"exactly these bytes\n" * 1000
    source, starts = source_of(data)
    faults.next(is_upload, lose_reply)
    entry = await alice.upload(("My Files", "once.txt"), source, len(data))
    assert len(starts) == 2 and entry.size == len(data)
    assert await in_thread(download, portal, "My Files/once.txt") == data
    assert await names_in(portal, "My Files") == ["once.txt"]


async def test_a_lost_mkdir_reply_still_makes_the_folder(
    portal: PortalProcess, faults: Faults, alice: CteraBackend
) -> None:
    faults.next(is_call("makeCollection"), lose_reply)
    entry = await alice.make_folder(("My Files", "Made once"))
    assert entry.is_dir and faults.spoiled == 1
    assert await names_in(portal, "My Files") == ["Made once"]
    with pytest.raises(Exists):
        await alice.make_folder(("My Files", "Made once"))  # not ambiguous: really taken


async def test_a_lost_move_submission_reply_is_still_a_move(
    portal: PortalProcess, faults: Faults, alice: CteraBackend
) -> None:
    source, _ = source_of(b"m")
    object_id = (await alice.upload(("My Files", "a.txt"), source, 1)).object_id
    faults.next(is_call("moveResources"), lose_reply)
    await alice.move(("My Files", "a.txt"), ("My Files", "b.txt"))
    assert (await alice.stat(("My Files", "b.txt"))).object_id == object_id
    assert alice.statistics().tasks == 1  # the lost reference is never polled; the second task failed
    assert await names_in(portal, "My Files") == ["b.txt"]


async def test_a_lost_delete_or_restore_reply_is_still_done(
    portal: PortalProcess, faults: Faults, alice: CteraBackend
) -> None:
    source, _ = source_of(b"d")
    await alice.upload(("My Files", "d.txt"), source, 1)
    faults.next(is_call("deleteResources"), lose_reply)
    await alice.delete(("My Files", "d.txt"))
    assert await names_in(portal, "My Files") == []
    faults.next(is_call("restoreResources"), lose_reply)
    await alice.undelete(("My Files", "d.txt"))
    assert await names_in(portal, "My Files") == ["d.txt"]


async def test_a_lost_copy_reply_cannot_be_told_from_a_taken_name(
    portal: PortalProcess, faults: Faults, alice: CteraBackend
) -> None:
    source, _ = source_of(b"c")
    await alice.upload(("My Files", "c.txt"), source, 1)
    faults.next(is_call("copyResources"), lose_reply)
    with pytest.raises(Transient, match="may be the copy"):
        await alice.copy(("My Files", "c.txt"), ("My Files", "c2.txt"))
    assert await names_in(portal, "My Files") == ["c.txt", "c2.txt"]
    # With replace, sending again is harmless: the second copy replaces the first.
    faults.next(is_call("copyResources"), lose_reply)
    await alice.copy(("My Files", "c.txt"), ("My Files", "c3.txt"), replace=True)
    assert await names_in(portal, "My Files") == ["c.txt", "c2.txt", "c3.txt"]


async def test_a_task_still_running_is_polled_until_it_ends(
    portal: PortalProcess, faults: Faults, alice: CteraBackend
) -> None:
    source, _ = source_of(b"r")
    await alice.upload(("My Files", "r.txt"), source, 1)
    for _ in range(3):
        faults.next(is_call("getTaskStatus"), still_running)
    await alice.move(("My Files", "r.txt"), ("My Files", "renamed.txt"))
    assert faults.spoiled == 3 and alice.statistics().task_polls == 4
    assert await names_in(portal, "My Files") == ["renamed.txt"]


# ============================================================ a scripted fake


UID = 77


@dataclass
class FakeTask:
    result: dict[str, ctera_xml.Value]
    polls: int = 0


@dataclass
class WritableFake(FakePortal):
    """The read-side fake plus uploads, tasks and a recycle bin, all scripted."""

    #: (rc, msg) of the next uploads; (0, "OK") when empty.
    upload_replies: deque[tuple[int, str]] = field(default_factory=deque)
    #: How each next task ends (fields of FileManagerBgTask); completed when empty.
    task_results: deque[dict[str, ctera_xml.Value]] = field(default_factory=deque)
    #: How many polls of each task answer "running" first.
    running_polls: int = 0
    reference_format: str = "servers/MainDB/bgTasks/{id}"
    submissions: list[tuple[str, Obj]] = field(default_factory=list)
    submitted_at: list[float] = field(default_factory=list)
    poll_times: list[float] = field(default_factory=list)
    tasks: dict[int, FakeTask] = field(default_factory=dict)
    #: ResourceInfo objects of deleted children of My Files.
    deleted: list[Obj] = field(default_factory=list)

    def handle(self, request: httpx.Request) -> httpx.Response:
        if "/upload/folders/" in request.url.path and not self._faults.get("POST") and self._authenticated(request):
            self.requests.append(request)
            rc, msg = self.upload_replies.popleft() if self.upload_replies else (0, "OK")
            if rc == 0:
                fields = form_fields(request)
                self.files[self.path_of(urllib.parse.urlsplit(fields["fullpath"].decode()).path)] = FakeFile(
                    fields["file"], 500 + len(self.requests)
                )
            return xml(obj(None, rc=rc, msg=msg))
        return super().handle(request)

    def info(self, path: tuple[str, ...]) -> Obj | None:
        info = super().info(path)
        if info is not None and path:
            info.fields["cloudFolderInfo"] = obj("CloudFolderInfo", uid=UID, name="My Files", groupUid=1,
                                                 passphraseProtected=False, ownerUid=1, ownerFriendlyName="alice")
            info.fields["scope"] = "Personal" if len(path) == 1 else "InsideCloudFolder"
        return info

    def _execute(self, request: httpx.Request) -> httpx.Response:
        envelope = ctera_xml.as_obj(ctera_xml.decode(request.content))
        assert envelope is not None
        name = ctera_xml.as_str(envelope.get("name")) or ""
        param = envelope.get("param")
        if name.endswith("Resources") and name != "fetchResources":
            assert isinstance(param, Obj)
            self.submissions.append((name, param))
            self.submitted_at.append(trio.current_time())
            task_id = len(self.tasks) + 1
            result = self.task_results.popleft() if self.task_results else {"status": "completed"}
            self.tasks[task_id] = FakeTask(result)
            return xml(self.reference_format.format(id=task_id))
        if name == "getTaskStatus":
            self.poll_times.append(trio.current_time())
            task = self.tasks[int((ctera_xml.as_str(param) or "").rsplit("/", 1)[1])]
            task.polls += 1
            fields: dict[str, ctera_xml.Value] = {"status": "running", "errorType": None, "progstring": "",
                                                  "cursor": None}
            if task.polls > self.running_polls:
                fields.update(task.result)
            return xml(obj("FileManagerBgTask", id=1, startTime="2025-01-01T00:00:00", **fields))
        if name == "fetchResources" and isinstance(param, Obj) and ctera_xml.as_bool(param.get("includeDeleted")):
            return xml(self._bin_page(param))
        return super()._execute(request)

    def _bin_page(self, param: Obj) -> Obj:
        start = ctera_xml.as_int(param.get("start")) or 0
        limit = ctera_xml.as_int(param.get("limit")) or 100
        live = [self.info(("My Files", name)) for name in sorted({p[1] for p in self.files if len(p) == 2})]
        items: list[ctera_xml.Value] = [*live, *self.deleted]
        return obj("FetchResourcesResp", root=self.info(("My Files",)), items=items[start : start + limit],
                   hasMore=start + limit < len(items), errorType=None)

    def uploads(self) -> list[httpx.Request]:
        return [request for request in self.requests if "/upload/folders/" in request.url.path]


@pytest.fixture
def fake() -> WritableFake:
    portal = WritableFake()
    portal.add_file("My Files/existing.txt", b"existing")
    return portal


def backend_for(fake: WritableFake, **kwargs: Any) -> Any:
    kwargs.setdefault("retry", RetryPolicy(max_attempts=4, budget=30.0, rng=random.Random(1)))
    return open_ctera_backend("https://portal.test", fake.user, fake.password, transport=fake.transport(), **kwargs)


def form_fields(request: httpx.Request) -> dict[str, bytes]:
    """The parts of an upload form by name, in order."""
    boundary = re.search(r"boundary=(\S+)", request.headers["content-type"]).group(1)  # type: ignore[union-attr]
    parts = request.content.split(f"--{boundary}".encode())
    assert parts[0] == b"" and parts[-1] == b"--\r\n", f"the form must start and end with a boundary: {parts[-1]!r}"
    fields = {}
    for part in parts[1:-1]:
        head, _, value = part.partition(b"\r\n\r\n")
        fields[re.search(rb'name="([^"]+)"', head).group(1).decode()] = value[:-2]  # type: ignore[union-attr]
    return fields


def deleted_info(item: str, file_id: int, **overrides: Any) -> Obj:
    info = resource_info("/ServicesPortal", ("My Files", item), is_folder=False, size=1, file_id=file_id, **overrides)
    info.fields["isDeleted"] = True
    return info


# -------------------------------------------------------------- the upload form


async def test_the_upload_form_is_the_sdks_with_an_exact_length(fake: WritableFake) -> None:
    data = b"0123456789" * 1000
    source, _ = source_of(data, chunk=777)
    async with backend_for(fake) as backend:
        await backend.upload(("My Files", "a b#%.txt"), source, len(data))
    [request] = fake.uploads()
    assert request.url.path == f"/ServicesPortal/upload/folders/{UID}"
    assert "transfer-encoding" not in request.headers
    assert int(request.headers["content-length"]) == len(request.content)
    fields = form_fields(request)
    assert list(fields) == ["name", "Filename", "fullpath", "fileSize", "file"]
    assert fields["name"] == fields["Filename"] == "a b#%.txt".encode()
    assert fields["fullpath"] == b"https://portal.test:443/ServicesPortal/webdav/My%20Files/a%20b%23%25.txt"
    assert fields["fileSize"] == b"10000"
    assert fields["file"] == data


@pytest.mark.parametrize(
    ("msg", "error"),
    [
        ("User is out of quota", QuotaExceeded),
        ("Folder is out of quota", QuotaExceeded),
        ("Portal is out of quota", QuotaExceeded),
        ("Rejected by Cloud Drive policy rule", PermissionDenied),
        ("Illegal access to NTACL folder", PermissionDenied),
        ("InvalidName", InvalidName),
        ("ReservedName: 'CON' is a device name", InvalidName),
        ("Resource does not exist", NotFound),
        ("the destination folder is read-only", ReadOnly),
        ("Something nobody expected", ProtocolError),
    ],
)
async def test_refused_uploads_are_mapped_by_message(
    fake: WritableFake, autojump_clock: MockClock, msg: str, error: type[Exception]
) -> None:
    fake.upload_replies.append((1, msg))
    source, _ = source_of(b"x")
    async with backend_for(fake) as backend:
        with pytest.raises(error) as caught:
            await backend.upload(("My Files", "a.txt"), source, 1)
        assert msg in str(caught.value)
        assert len(fake.uploads()) == 1


async def test_no_storage_location_is_retried(fake: WritableFake, autojump_clock: MockClock) -> None:
    fake.upload_replies.append((1, "No available storage location"))
    source, starts = source_of(b"x")
    async with backend_for(fake) as backend:
        await backend.upload(("My Files", "a.txt"), source, 1)
        assert len(starts) == 2 and backend.statistics().retries == 1
    fake.upload_replies.extend([(1, "No available storage location for folder 77")] * 10)
    async with backend_for(fake) as backend:
        with pytest.raises(Transient):
            await backend.upload(("My Files", "a.txt"), source, 1)
        assert backend.statistics().count("upload") == 4  # max_attempts


@pytest.mark.parametrize(("extra", "announced"), [(b"", 2), (b"!", 1)], ids=["short", "long"])
async def test_a_source_of_the_wrong_length_is_refused_and_closed(
    fake: WritableFake, extra: bytes, announced: int
) -> None:
    closed: list[bool] = []

    async def source() -> AsyncIterator[bytes]:
        try:
            yield b"x"
            yield extra
            yield b""
        finally:
            closed.append(True)

    async with backend_for(fake) as backend:
        with pytest.raises(ValueError):
            await backend.upload(("My Files", "a.txt"), source, announced)
    assert closed == [True]


# ---------------------------------------------------------------------- tasks


async def test_polls_start_at_once_and_back_off_to_half_a_second(
    fake: WritableFake, autojump_clock: MockClock
) -> None:
    fake.running_polls = 8
    async with backend_for(fake) as backend:
        await backend.move(("My Files", "existing.txt"), ("My Files", "moved.txt"))
        assert backend.statistics().task_polls == 9
    times = [fake.submitted_at[0], *fake.poll_times]
    gaps = [round(later - earlier, 6) for earlier, later in zip(times, times[1:])]
    assert gaps == [0.0, 0.02, 0.04, 0.08, 0.16, 0.32, 0.5, 0.5, 0.5]


async def test_a_task_that_never_ends_fails_after_the_task_timeout(
    fake: WritableFake, autojump_clock: MockClock
) -> None:
    fake.running_polls = 10**9
    async with backend_for(fake, timeouts=Timeouts(task=5.0)) as backend:
        started = trio.current_time()
        with pytest.raises(Transient, match="still 'running'"):
            await backend.delete(("My Files", "existing.txt"))
        assert trio.current_time() - started == pytest.approx(5.0)
        assert backend.statistics().task_polls < 20


@pytest.mark.parametrize(
    ("result", "error"),
    [
        ({"status": "failed", "errorType": "Conflict"}, Exists),
        ({"status": "failed", "progstring": "Resource, My Files/existing.txt , doesn't exist."}, NotFound),
        ({"status": "failed", "progstring": "DestinationNotExists"}, NotFound),
        ({"status": "failed", "errorType": "PermissionDenied", "progstring": "PermissionDenied"}, PermissionDenied),
        ({"status": "failed", "errorType": "InvalidName"}, InvalidName),
        ({"status": "failed", "progstring": "disk on fire"}, ProtocolError),
        ({"status": "completed with warnings", "progstring": "some skipped"}, ProtocolError),
        ({"status": "stopped"}, ProtocolError),
    ],
)
async def test_failed_tasks_are_mapped(
    fake: WritableFake, autojump_clock: MockClock, result: dict[str, ctera_xml.Value], error: type[Exception]
) -> None:
    fake.task_results.append(result)
    async with backend_for(fake) as backend:
        with pytest.raises(error):
            await backend.move(("My Files", "existing.txt"), ("My Files", "b.txt"))


async def test_a_conflict_with_replace_resubmits_the_cursor_with_override(
    fake: WritableFake, autojump_clock: MockClock
) -> None:
    cursor = obj(
        "ResourceActionCursor",
        upperLevelUrl="/ServicesPortal/webdav/My%20Files",
        srcResource=obj("ResourceInfo", href="/ServicesPortal/webdav/My%20Files/existing.txt"),
        destResource=obj("ResourceInfo", href="/ServicesPortal/webdav/My%20Files/b.txt"),
        newSuggestedName="b (2025).txt",
        fileMoveConflictResolutaion=None,
        skipHandler=None,
    )
    fake.task_results.append({"status": "failed", "errorType": "Conflict", "progstring": "Conflict", "cursor": cursor})
    async with backend_for(fake) as backend:
        await backend.copy(("My Files", "existing.txt"), ("My Files", "b.txt"), replace=True)
    (first_method, first), (second_method, second) = fake.submissions
    assert first_method == second_method == "copyResources"
    assert ctera_xml.encode(first.get("urls")) == ctera_xml.encode(second.get("urls"))
    assert first.get("startFrom") is None
    start_from = second.get("startFrom")
    assert isinstance(start_from, Obj) and start_from.class_name == "ResourceActionCursor"
    expected = dict(cursor.fields)
    expected["fileMoveConflictResolutaion"] = [
        obj("FileMoveConflictResolutaion", errorType="Conflict", handler="Override")
    ]
    assert ctera_xml.encode(start_from) == ctera_xml.encode(Obj("ResourceActionCursor", expected))


async def test_a_conflict_without_a_cursor_cannot_be_overridden(
    fake: WritableFake, autojump_clock: MockClock
) -> None:
    fake.task_results.append({"status": "failed", "errorType": "Conflict"})
    async with backend_for(fake) as backend:
        with pytest.raises(ProtocolError, match="cursor"):
            await backend.move(("My Files", "existing.txt"), ("My Files", "b.txt"), replace=True)


@pytest.mark.parametrize(
    ("reference", "works"),
    [
        ("/servers/MainDB/bgTasks/{id}", True),
        ("https://portal.test/admin/api/servers/MainDB/bgTasks/{id}", True),
        ("servers/MainDB/bgTasks/0{id}", False),
        ("tasks/{id}", False),
        ("", False),
    ],
)
async def test_task_references(fake: WritableFake, autojump_clock: MockClock, reference: str, works: bool) -> None:
    fake.reference_format = reference
    async with backend_for(fake) as backend:
        if works:
            await backend.delete(("My Files", "existing.txt"))
        else:
            with pytest.raises(ProtocolError, match="task reference"):
                await backend.delete(("My Files", "existing.txt"))


async def test_a_failing_submission_is_not_a_task(fake: WritableFake, autojump_clock: MockClock) -> None:
    fake.fail_next("execute", error_response(400, "unknown method"))
    async with backend_for(fake) as backend:
        with pytest.raises(InvalidName):  # 400 is the portal refusing the request as malformed
            await backend.delete(("My Files", "existing.txt"))
        assert backend.statistics().tasks == 0 and backend.statistics().task_polls == 0


# --------------------------------------------------------------- recycle bin


async def test_the_recycle_bin_is_paged_and_hostile_entries_are_skipped(
    fake: WritableFake, autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    fake.deleted = [deleted_info(f"f{number:04}", 1000 + number) for number in range(1200)]
    fake.deleted.append(deleted_info("evil", 9, name="..", href="/ServicesPortal/webdav/My%20Files/.."))
    fake.deleted.append(deleted_info("outside", 10, href="/ServicesPortal/webdav/Other/outside"))
    async with backend_for(fake) as backend:
        entries = await backend.list_deleted(("My Files",))
        assert backend.statistics().count("list_deleted") == 2
    assert len(entries) == 1200 and all(entry.deleted for entry in entries)
    assert {entry.name for entry in entries} == {f"f{number:04}" for number in range(1200)}
    assert "existing.txt" not in {entry.name for entry in entries}
    assert "not inside the listed folder" in caplog.text
