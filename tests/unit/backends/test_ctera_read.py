"""Content against the real reference portal: ranged reads, stale versions, snapshot bytes.

Every expectation is the byte string plain httpx downloads for the same path,
so the tests check the client against the server, not against themselves.
"""

from __future__ import annotations

import dataclasses
import random
import ssl

import httpx
import pytest
import trio

from tests.support.portal_process import PortalProcess
from tests.unit.backends.conftest import connect, download, in_thread, upload
from vfs.backends.base import IsADirectory, NotFound, StaleVersion
from vfs.backends.ctera import CteraBackend

LARGE = "My Files/Large files/large-1.bin"  # 8 MiB
REPORT = "My Files/Documents/Report.txt"


def as_path(text: str) -> tuple[str, ...]:
    return tuple(text.split("/"))


async def test_reads_at_many_offsets_match_a_plain_download(alice: CteraBackend, sample_portal: PortalProcess) -> None:
    expected = await in_thread(download, sample_portal, LARGE)
    entry = await alice.stat(as_path(LARGE))
    assert entry.size == len(expected) == 8 << 20
    rng = random.Random(11)
    block = 1 << 16
    cases = [(0, 1), (0, block), (1, block), (block - 1, 2), (entry.size - 1, 1), (entry.size - 10, 100)]
    cases += [(rng.randrange(entry.size), rng.choice([1, 512, 4096, block, 1 << 20])) for _ in range(40)]
    before = alice.statistics()
    received = 0
    for offset, length in cases:
        data = await alice.read(entry, offset, length)
        assert data == expected[offset : offset + length], (offset, length)
        received += len(data)
    after = alice.statistics()
    assert after.content_bytes - before.content_bytes == received  # ranges, never whole files
    assert after.count("read") - before.count("read") == len(cases)
    assert after.ranges_ignored == 0 and after.stale_versions == 0


async def test_parallel_range_reads(alice: CteraBackend, sample_portal: PortalProcess) -> None:
    expected = await in_thread(download, sample_portal, LARGE)
    entry = await alice.stat(as_path(LARGE))
    block = 1 << 20
    blocks: dict[int, bytes] = {}

    async def fetch(index: int) -> None:
        blocks[index] = await alice.read(entry, index * block, block)

    async with trio.open_nursery() as nursery:
        for index in range(8):
            nursery.start_soon(fetch, index)
    assert b"".join(blocks[i] for i in range(8)) == expected


async def test_reads_at_the_end(alice: CteraBackend) -> None:
    entry = await alice.stat(as_path(REPORT))
    assert await alice.read(entry, entry.size, 10) == b""
    assert await alice.read(entry, entry.size + 1000, 10) == b""
    assert len(await alice.read(entry, entry.size - 3, 10)) == 3
    assert await alice.read(entry, 0, 0) == b""


async def test_names_that_need_encoding_are_readable(alice: CteraBackend, sample_portal: PortalProcess) -> None:
    path = "My Files/Documents/q1 & q2 résumé #1.txt"
    entry = await alice.stat(as_path(path))
    assert await alice.read(entry, 0, entry.size) == await in_thread(download, sample_portal, path)


async def test_reading_a_folder_or_a_vanished_file(alice: CteraBackend) -> None:
    folder = await alice.stat(("My Files", "Documents"))
    with pytest.raises(IsADirectory):
        await alice.read(folder, 0, 10)
    report = await alice.stat(as_path(REPORT))
    ghost = dataclasses.replace(
        report, path=("My Files", "Documents", "Ghost.txt"), object_id="ctera:999999", version="999999:10:x"
    )
    with pytest.raises(NotFound):
        await alice.read(ghost, 0, 10)


async def test_snapshot_bytes_are_readable(alice: CteraBackend, sample_portal: PortalProcess) -> None:
    live = await alice.stat(as_path(REPORT))
    live_bytes = await alice.read(live, 0, live.size)
    assert live_bytes == await in_thread(download, sample_portal, REPORT)
    refs = await alice.list_snapshots(as_path(REPORT))
    versions = []
    for ref in refs[:-1]:
        old = await alice.stat(ref.path)
        data = await alice.read(old, 0, old.size)
        assert data == await in_thread(download, sample_portal, "/".join(ref.path))
        versions.append(data)
    assert versions[0].startswith(b"Quarterly report, first draft")
    assert versions[1].startswith(b"Quarterly report, second draft")
    assert live_bytes.startswith(b"Quarterly report, final")


async def test_a_new_version_makes_reads_stale(portal: PortalProcess) -> None:
    path = "My Files/doc.txt"
    first = b"version one " * 1000
    await in_thread(upload, portal, path, first)
    async with connect(portal) as backend:
        entry = await backend.stat(as_path(path))
        assert await backend.read(entry, 0, 100) == first[:100]  # binds the ETag

        # same size, uploaded within the same second: only the ETag can tell
        second = b"VERSION TWO " * 1000
        await in_thread(upload, portal, path, second)
        with pytest.raises(StaleVersion):
            await backend.read(entry, 100, 100)

        # the re-stat yields a new version even though size and second are unchanged,
        # so a cache keyed by version cannot mix blocks of the two
        fresh = await backend.stat(as_path(path))
        assert fresh.object_id == entry.object_id and fresh.version != entry.version
        assert await backend.read(fresh, 100, 100) == second[100:200]
        assert [e.version for e in (await backend.list_page(("My Files",), 0, 10)).entries] == [fresh.version]

        # a different size is caught even on the first read of a version (no ETag bound yet)
        await in_thread(upload, portal, path, b"three")
        unbound = dataclasses.replace(fresh, version=fresh.version + "+never-read")
        with pytest.raises(StaleVersion):
            await backend.read(unbound, 0, 10)
        assert backend.statistics().stale_versions == 2


async def test_a_later_modification_time_makes_the_first_read_stale(portal: PortalProcess) -> None:
    path = "My Files/clock.txt"
    await in_thread(upload, portal, path, b"a" * 100)
    async with connect(portal) as backend:
        entry = await backend.stat(as_path(path))
        await trio.sleep(3.1)  # Last-Modified has one-second resolution; tolerance is 2 s
        await in_thread(upload, portal, path, b"b" * 100)
        with pytest.raises(StaleVersion):
            await backend.read(entry, 0, 10)


async def test_a_range_ignoring_proxy_in_front_of_the_real_portal(sample_portal: PortalProcess) -> None:
    """A real portal behind a wrapper that strips ``Range``: the client still reads correctly."""
    assert sample_portal.cert is not None

    class StripRange(httpx.AsyncBaseTransport):
        def __init__(self) -> None:
            self.inner = httpx.AsyncHTTPTransport(verify=ssl.create_default_context(cafile=str(sample_portal.cert)))

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            if request.method == "GET":
                del request.headers["range"]
                if "if-range" in request.headers:
                    del request.headers["if-range"]
            return await self.inner.handle_async_request(request)

        async def aclose(self) -> None:
            await self.inner.aclose()

    expected = await in_thread(download, sample_portal, LARGE)
    async with connect(sample_portal, transport=StripRange(), max_overread=1 << 20) as backend:
        entry = await backend.stat(as_path(LARGE))
        data = await backend.read(entry, 3_000_000, 1000)
        assert data == expected[3_000_000 : 3_000_000 + (1 << 20)]
        tail = await backend.read(entry, entry.size - 10, 1000)
        assert tail == expected[-10:]
        stats = backend.statistics()
        assert stats.ranges_ignored == 2 and stats.stale_versions == 0
