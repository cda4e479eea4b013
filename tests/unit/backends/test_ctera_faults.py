"""Faults a healthy portal never shows, injected with ``httpx.MockTransport``.

Behaviour against a real server is tested in the other modules of this
directory; here each test scripts one misbehaviour of the server or the
network (see ``fake_ctera``) and checks the client's answer to it.  Timing
runs on trio's ``MockClock`` (autojump), so backoff costs no real time.
"""

from __future__ import annotations

import logging
import random
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import trio
from trio.testing import MockClock

from tests.unit.backends.fake_ctera import (
    FakePortal,
    error_response,
    resource_info,
    xml,
)
from vfs.backends.base import (
    NotFound,
    PermissionDenied,
    ProtocolError,
    StaleVersion,
    Transient,
)
from vfs.backends.ctera import CteraBackend, open_ctera_backend
from vfs.backends.retry import RetryPolicy
from wire.ctera_xml import Obj, obj

URL = "https://portal.test"
CONTENT = bytes(range(256)) * 64  # 16 KiB, every offset distinguishable


@asynccontextmanager
async def backend_for(portal: FakePortal, **kwargs: Any) -> AsyncIterator[CteraBackend]:
    kwargs.setdefault("retry", RetryPolicy(max_attempts=6, budget=30.0, rng=random.Random(1)))
    async with open_ctera_backend(URL, portal.user, portal.password, transport=portal.transport(), **kwargs) as backend:
        yield backend


@pytest.fixture
def fake() -> FakePortal:
    portal = FakePortal()
    portal.add_file("My Files/data.bin", CONTENT)
    portal.add_file("My Files/notes.txt", b"hello\n")
    return portal


# ------------------------------------------------------------------ retries


async def test_500_then_success_is_retried(fake: FakePortal, autojump_clock: MockClock) -> None:
    async with backend_for(fake) as backend:
        fake.fail_next("execute", 500, 503)
        entry = await backend.stat(("My Files", "data.bin"))
        assert entry.size == len(CONTENT)
        assert backend.statistics().retries == 2
        assert backend.statistics().count("stat") == 3


async def test_503_on_reads_is_retried(fake: FakePortal, autojump_clock: MockClock) -> None:
    async with backend_for(fake) as backend:
        entry = await backend.stat(("My Files", "data.bin"))
        fake.fail_next("GET", 502, 503, 504)
        assert await backend.read(entry, 100, 50) == CONTENT[100:150]
        assert backend.statistics().retries == 3


async def test_retry_after_is_honoured(fake: FakePortal, autojump_clock: MockClock) -> None:
    async with backend_for(fake) as backend:
        entry = await backend.stat(("My Files", "data.bin"))
        fake.fail_next("GET", error_response(503, "busy", {"retry-after": "7"}))
        started = trio.current_time()
        assert await backend.read(entry, 0, 10) == CONTENT[:10]
        assert trio.current_time() - started == pytest.approx(7.0)


async def test_429_with_retry_after_is_retried(fake: FakePortal, autojump_clock: MockClock) -> None:
    async with backend_for(fake) as backend:
        fake.fail_next("execute", error_response(429, "slow down", {"retry-after": "2"}))
        started = trio.current_time()
        await backend.stat(("My Files",))
        assert trio.current_time() - started == pytest.approx(2.0)


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("read timed out"),
        httpx.RemoteProtocolError("peer closed connection without sending complete message body"),
        httpx.ReadError("connection reset by peer"),
        httpx.ConnectError("all attempts to connect failed"),
    ],
    ids=["timeout", "incomplete", "reset", "connect"],
)
async def test_network_failures_become_transient_after_bounded_time(
    fake: FakePortal, autojump_clock: MockClock, failure: Exception
) -> None:
    async with backend_for(fake, retry=RetryPolicy(max_attempts=100, budget=30.0)) as backend:
        fake.fail_next("execute", *[failure] * 1000)
        started = trio.current_time()
        with pytest.raises(Transient):
            await backend.stat(("My Files",))
        assert trio.current_time() - started <= 30.0
        assert 3 < fake.count("execute") <= 100


async def test_a_reset_then_success_is_invisible(fake: FakePortal, autojump_clock: MockClock) -> None:
    async with backend_for(fake) as backend:
        entry = await backend.stat(("My Files", "data.bin"))
        fake.fail_next("GET", httpx.ReadError("connection reset by peer"))
        assert await backend.read(entry, 1000, 24) == CONTENT[1000:1024]


async def test_4xx_is_an_answer_not_retried(fake: FakePortal, autojump_clock: MockClock) -> None:
    async with backend_for(fake) as backend:
        entry = await backend.stat(("My Files", "data.bin"))
        fake.fail_next("GET", 404)
        with pytest.raises(NotFound):
            await backend.read(entry, 0, 10)
        fake.fail_next("GET", httpx.Response(404, content=b"<html>" + b"x" * (1 << 20)))  # a proxy's big page
        with pytest.raises(NotFound):
            await backend.read(entry, 0, 10)
        fake.fail_next("execute", httpx.Response(404, content=b"<html>" + b"x" * (1 << 20)))
        with pytest.raises(NotFound):
            await backend.stat(("My Files",))
        fake.fail_next("GET", 403)
        with pytest.raises(PermissionDenied):
            await backend.read(entry, 0, 10)  # never worked before: no re-login
        assert backend.statistics().relogins == 0
        assert backend.statistics().retries == 0


# ------------------------------------------------------------------ ranges


async def test_a_server_that_ignores_range_still_works(fake: FakePortal, autojump_clock: MockClock) -> None:
    fake.honour_range = False
    async with backend_for(fake, max_overread=4096) as backend:
        entry = await backend.stat(("My Files", "data.bin"))
        data = await backend.read(entry, 1000, 100)
        # more than asked for (up to the over-read bound), starting at the offset
        assert data == CONTENT[1000 : 1000 + 4096]
        # a later read sends If-Range with the bound ETag; the same ETag back means "ignored", not "stale"
        assert await backend.read(entry, 15000, 5000) == CONTENT[15000:]
        assert backend.statistics().ranges_ignored == 2
        assert backend.statistics().stale_versions == 0
    assert "if-range" in fake.requests[-2].headers  # the second read (the last request is the logout)


async def test_reads_at_or_after_the_end(fake: FakePortal, autojump_clock: MockClock) -> None:
    async with backend_for(fake) as backend:
        entry = await backend.stat(("My Files", "notes.txt"))
        assert await backend.read(entry, 6, 10) == b""
        assert await backend.read(entry, 4, 10) == b"\n"[:0] + b"o\n"
        before = fake.count("GET")
        assert await backend.read(entry, 100, 10) == b""
        assert fake.count("GET") == before  # no request for what cannot exist
        # a server that says 416 for a range it cannot satisfy: empty, not an error
        fake.fail_next("GET", httpx.Response(416, headers={"content-range": "bytes */6"}))
        assert await backend.read(entry, 5, 10) == b""


async def test_stale_version_from_size_and_from_etag(fake: FakePortal, autojump_clock: MockClock) -> None:
    async with backend_for(fake) as backend:
        entry = await backend.stat(("My Files", "data.bin"))
        assert await backend.read(entry, 0, 10) == CONTENT[:10]  # binds the ETag
        fake.replace_file("My Files/data.bin", CONTENT[::-1])  # same size, same time, new ETag
        with pytest.raises(StaleVersion):
            await backend.read(entry, 0, 10)

        fresh = await backend.stat(("My Files", "data.bin"))
        assert fresh.version == entry.version + "#1"  # the listing alone cannot tell them apart
        assert await backend.read(fresh, 0, 10) == CONTENT[::-1][:10]
        fresh = await backend.stat(("My Files", "data.bin"))
        fake.replace_file("My Files/data.bin", CONTENT * 2)  # a bigger version
        with pytest.raises(StaleVersion):
            await backend.read(fresh, 0, 10)
        assert backend.statistics().stale_versions == 2


async def test_stale_version_from_last_modified_without_etag(fake: FakePortal, autojump_clock: MockClock) -> None:
    fake.send_etag = False
    async with backend_for(fake) as backend:
        entry = await backend.stat(("My Files", "data.bin"))
        fake.replace_file("My Files/data.bin", CONTENT[::-1], mtime=entry.mtime + 61)
        with pytest.raises(StaleVersion):
            await backend.read(entry, 0, 10)
        # a whole number of hours off is a time-zone slip of the listing, not a new version
        fake.replace_file("My Files/data.bin", CONTENT, mtime=entry.mtime + 3600)
        assert await backend.read(entry, 0, 10) == CONTENT[:10]


# ------------------------------------------------------------------ hostile input


async def test_hostile_listing_entries_are_skipped_and_logged(
    fake: FakePortal, autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    folder = ("My Files",)
    ctx = fake.context

    def hostile(name: str, href: str) -> Obj:
        return resource_info(ctx, (), is_folder=False, size=1, file_id=9, name=name, href=href)

    fake.extra_items[folder] = [
        hostile("..", f"{ctx}/webdav/My%20Files/.."),
        hostile(".", f"{ctx}/webdav/My%20Files/."),
        hostile("", f"{ctx}/webdav/My%20Files/"),
        hostile("a/b", f"{ctx}/webdav/My%20Files/a%2Fb"),
        # XML 1.0 cannot carry NUL in text (not even as &#0;); it can arrive percent-encoded in an href
        hostile("nulname", f"{ctx}/webdav/My%20Files/nul%00name"),
        hostile("x" * 300, f"{ctx}/webdav/My%20Files/" + "x" * 300),
        hostile("é" * 128, f"{ctx}/webdav/My%20Files/" + "%C3%A9" * 128),  # 256 UTF-8 bytes
        hostile("passwd", "/ServicesPortal/webdav/Other/passwd"),  # outside the folder
        hostile("passwd", "/admin/webdav/My%20Files/passwd"),  # another context
        hostile("deep", f"{ctx}/webdav/My%20Files/sub/deep"),  # not a direct child
        hostile("..", f"{ctx}/webdav/My%20Files/%2E%2E"),
        hostile("alias", f"{ctx}/webdav/My%20Files/other-name"),  # name and href disagree
        hostile("notes.txt", f"{ctx}/webdav/My%20Files/notes.txt"),  # a second notes.txt
        hostile("fine ü.txt", f"{ctx}/webdav/My%20Files/fine%20%C3%BC.txt"),
    ]
    caplog.set_level(logging.WARNING, logger="vfs.backends.ctera")
    async with backend_for(fake) as backend:
        page = await backend.list_page(folder, 0, 100)
        names = [entry.name for entry in page.entries]
        assert names == ["data.bin", "notes.txt", "fine ü.txt"]
        assert page.next_start == 16
        assert not page.has_more
        assert backend.statistics().rejected_entries == 13
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "ignoring" in r.getMessage()]
    assert len(warnings) == 13


async def test_skipped_entries_still_advance_paging(fake: FakePortal, autojump_clock: MockClock) -> None:
    ctx = fake.context
    fake.extra_items[("My Files",)] = [
        resource_info(ctx, (), is_folder=False, name="..", href=f"{ctx}/webdav/My%20Files/..") for _ in range(3)
    ]
    async with backend_for(fake) as backend:
        first = await backend.list_page(("My Files",), 0, 3)
        assert [e.name for e in first.entries] == ["data.bin", "notes.txt"]
        assert first.has_more and first.next_start == 3
        second = await backend.list_page(("My Files",), first.next_start, 3)
        assert second.entries == [] and second.next_start == 5 and not second.has_more


async def test_malformed_xml_is_a_protocol_error(fake: FakePortal, autojump_clock: MockClock) -> None:
    async with backend_for(fake) as backend:
        for body in (b"<obj><att id='root'>", b"<html><body>Gateway</body></html>", b"\x00\xff garbage"):
            fake.fail_next("execute", httpx.Response(200, content=body))
            with pytest.raises(ProtocolError):
                await backend.stat(("My Files",))
        fake.fail_next("execute", xml(["not", "an", "object"]))
        with pytest.raises(ProtocolError):
            await backend.list_page(("My Files",), 0, 10)
        # entities are refused, not expanded
        bomb = b'<!DOCTYPE x [<!ENTITY a "aaaa">]><val>&a;</val>'
        fake.fail_next("execute", httpx.Response(200, content=bomb))
        with pytest.raises(ProtocolError):
            await backend.stat(("My Files",))
        assert backend.statistics().retries == 0  # an answer, however bad, is not retried


async def test_hostile_snapshot_references_are_skipped(fake: FakePortal, autojump_clock: MockClock) -> None:
    def snapshot(url: str, path: str, stamp: str, current: bool = False) -> Obj:
        return obj("SnapshotResp", url=url, path=path, startTimestamp=stamp, calculatedTimestamp=stamp, current=current)

    fake.snapshots = [
        snapshot("/ServicesPortal/webdav/My Files", "/notes.txt", "2025-03-14T09:30:00.250+01:00", current=True),
        snapshot(
            "/ServicesPortal/webdav/My%20Files/.snapshots/2025-03-10T00%3A00%3A00", "/notes.txt", "2025-03-10T00:00:07"
        ),
        snapshot("/ServicesPortal/webdav/My%20Files/.snapshots/x", "/../../etc/passwd", "2025-03-11T00:00:00"),
        snapshot("/elsewhere/webdav/My%20Files", "/notes.txt", "2025-03-12T00:00:00"),
        snapshot("/ServicesPortal/webdav/My%20Files/", "/no-time.txt", ""),
    ]
    async with backend_for(fake) as backend:
        refs = await backend.list_snapshots(("My Files", "notes.txt"))
    assert [(ref.path, ref.current) for ref in refs] == [
        (("My Files", ".snapshots", "2025-03-10T00:00:00", "notes.txt"), False),
        (("My Files", "notes.txt"), True),
    ]
    assert refs[1].taken_at == pytest.approx(1741941000.25)  # 08:30:00.25 UTC


# ------------------------------------------------------------------ sessions


async def test_expiry_signals_cause_one_relogin(fake: FakePortal, autojump_clock: MockClock) -> None:
    async with backend_for(fake) as backend:
        await backend.stat(("My Files",))
        fake.expire_sessions()  # the fake answers 302 to the login page
        await backend.stat(("My Files",))
        fake.fail_next("execute", 401)
        await backend.stat(("My Files",))
        fake.fail_next("execute", 403)  # 403 on a request that worked before: suspect the session
        await backend.stat(("My Files",))
        assert backend.statistics().relogins == 3
        assert fake.count("login") == 4


async def test_expiry_is_renewed_once_for_many_concurrent_tasks(fake: FakePortal, autojump_clock: MockClock) -> None:
    async with backend_for(fake) as backend:
        entry = await backend.stat(("My Files", "data.bin"))
        fake.expire_sessions()
        results: dict[int, bytes] = {}

        async def read(n: int) -> None:
            results[n] = await backend.read(entry, n * 100, 100)

        async with trio.open_nursery() as nursery:
            for n in range(20):
                nursery.start_soon(read, n)
        assert all(results[n] == CONTENT[n * 100 : n * 100 + 100] for n in range(20))
        assert backend.statistics().relogins == 1
        assert fake.count("login") == 2


async def test_persistent_refusal_after_relogin_is_permission_denied(
    fake: FakePortal, autojump_clock: MockClock
) -> None:
    async with backend_for(fake) as backend:
        await backend.stat(("My Files",))
        fake.fail_next("execute", 401, 401)
        with pytest.raises(PermissionDenied):
            await backend.stat(("My Files",))
        fake.fail_next("execute", httpx.Response(302, headers={"location": "/ServicesPortal/login.html"}))
        fake.fail_next("execute", httpx.Response(302, headers={"location": "/ServicesPortal/login.html"}))
        with pytest.raises(PermissionDenied):
            await backend.stat(("My Files",))
        assert backend.statistics().relogins == 2


async def test_a_redirect_elsewhere_is_not_expiry(fake: FakePortal, autojump_clock: MockClock) -> None:
    async with backend_for(fake) as backend:
        fake.fail_next("execute", httpx.Response(302, headers={"location": "/maintenance.html"}))
        with pytest.raises(ProtocolError):
            await backend.stat(("My Files",))
        assert backend.statistics().relogins == 0


async def test_the_password_is_never_logged(
    fake: FakePortal, autojump_clock: MockClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.password = "s3cret-Pa55word"
    async with backend_for(fake) as backend:
        fake.expire_sessions()
        await backend.stat(("My Files",))
        assert "s3cret" not in repr(backend)
    with pytest.raises(Exception) as caught:
        async with open_ctera_backend(URL, "alice", "wrong-s3cret-guess", transport=fake.transport()):
            pass
    assert "s3cret" not in str(caught.value)
    assert "s3cret" not in caplog.text
