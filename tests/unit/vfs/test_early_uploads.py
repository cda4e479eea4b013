"""Early uploads (``vfs.early_uploads``): a large file goes up while it is written, and only ever as a head start.

Against the real portal, through the filesystem without the kernel, with
``early_upload`` lowered to 1 MiB.  What is held:

* a file written from its start is being sent before it is closed, and
  reaches the portal through that one streamed ``PUT``, with no upload after;
* every case the upload queue decides otherwise cuts the stream off and the
  portal keeps nothing of it: a write below what was sent (the file then goes
  up the ordinary way, once), a temp file renamed over the original (one new
  version of the original, no temp file on the portal), a file deleted before
  its upload, and a remote change meanwhile (a conflict copy; the remote
  version is not overwritten by the stream);
* a portal that takes no ``PUT`` costs one refused attempt, never another.

The moment a stream is under way is read from ``portalfs status``'s own
source (``uploads.status()``), which lists it with the bytes sent so far.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from tests.support.portal_process import PortalProcess
from tests.support.portal_view import PortalView
from tests.support.portalfs_cli import content
from tests.support.waiting import until
from tests.unit.vfs.graph import CREATE, Mounted, PassThrough, open_writable
from tests.unit.vfs.truth import in_thread, portal_holds, upload
from vfs import early_uploads
from vfs.backends.base import Path as RemotePath
from vfs.backends.base import RemoteEntry, Unsupported
from vfs.backends.ctera import CteraBackend

MIB = 1 << 20
CHUNK = 128 << 10


def streamed(drive: Mounted) -> int:
    """Bytes the early upload of the one file being written has sent so far (0: none runs)."""
    early = [item for item in drive.uploads.status()["in_flight"] if item.get("early")]  # type: ignore[union-attr]
    return int(early[0]["sent"]) if early else 0


def puts_and_uploads(drive: Mounted) -> tuple[int, int]:
    """Streamed PUTs and ordinary uploads the mount has sent."""
    statistics = drive.backend.statistics()
    return statistics.count("put"), statistics.count("upload")


async def write_streaming(drive: Mounted, path: str, data: bytes, *, flags: int = CREATE) -> int:
    """Open ``path``, write ``data`` from its start and wait until more than half of it was
    streamed to the portal, the file still open; its handle."""
    handle = await drive.open_file(path, flags)
    for offset in range(0, len(data), CHUNK):
        await drive.fs.write(handle, offset, data[offset:offset + CHUNK])
    await until(lambda: streamed(drive) > len(data) // 2)
    return handle


@pytest.fixture
async def drive(portal: PortalProcess, tmp_path: Path) -> AsyncIterator[Mounted]:
    async with open_writable(portal, tmp_path, delay=0.2, early_upload=MIB) as mounted:
        yield mounted


async def test_a_large_file_goes_up_while_it_is_written(drive: Mounted, view: PortalView) -> None:
    data = content(1, 6 * MIB + 123)
    handle = await write_streaming(drive, "big.bin", data)
    assert not await in_thread(view.exists, "big.bin")  # sent, but not ended: not the portal's yet
    await drive.close(handle)
    await drive.settled()
    await portal_holds(view, "big.bin", data)
    assert puts_and_uploads(drive) == (1, 0)
    assert await in_thread(view.uploads_of, "big.bin") == 1


async def test_a_file_rewritten_below_what_was_sent_goes_up_the_ordinary_way(drive: Mounted, view: PortalView) -> None:
    data = bytearray(content(2, 4 * MIB))
    handle = await write_streaming(drive, "edited.bin", bytes(data))
    data[10:20] = b"0123456789"
    await drive.fs.write(handle, 10, b"0123456789")
    await until(lambda: streamed(drive) == 0)  # cut off at its next step
    tail = content(3, 2 * MIB)  # appending again does not start it over
    for offset in range(0, len(tail), CHUNK):
        await drive.fs.write(handle, len(data) + offset, tail[offset:offset + CHUNK])
    data += tail
    await drive.close(handle)
    await drive.settled()
    await portal_holds(view, "edited.bin", bytes(data))
    assert puts_and_uploads(drive) == (1, 1)
    assert await in_thread(view.uploads_of, "edited.bin") == 1  # the cut-off stream left no version
    assert not drive.uploads.early._given_up  # forgotten once the file went up


async def test_a_temp_file_saved_over_the_original_makes_one_version_of_it(
        portal: PortalProcess, drive: Mounted, view: PortalView) -> None:
    await in_thread(upload, portal, "report.bin", b"the first version")
    file_id = await in_thread(view.file_id, "report.bin")
    assert await drive.exists("report.bin")
    data = content(3, 3 * MIB)
    handle = await write_streaming(drive, "sedX1b2c3", data)  # sed -i: a temp name nothing excludes
    await drive.close(handle)
    await drive.rename("sedX1b2c3", "report.bin")
    await drive.settled()
    await portal_holds(view, "report.bin", data)
    assert await in_thread(view.names) == {"report.bin"}
    assert await in_thread(view.file_id, "report.bin") == file_id
    assert await in_thread(view.uploads_of, "report.bin") == 2


async def test_a_file_deleted_before_its_upload_leaves_nothing(drive: Mounted, view: PortalView) -> None:
    handle = await write_streaming(drive, "scratch.bin", content(4, 3 * MIB))
    await drive.close(handle)
    await drive.unlink("scratch.bin")
    assert drive.uploads.early.streaming() == 0  # cut off at once, not left to time out
    await drive.settled()
    assert await in_thread(view.names) == set()
    assert await in_thread(view.deleted_names) == set()


async def test_a_remote_change_meanwhile_makes_a_conflict_copy_and_the_stream_overwrites_nothing(
        portal: PortalProcess, drive: Mounted, view: PortalView) -> None:
    await in_thread(upload, portal, "shared.bin", b"before")
    assert await drive.exists("shared.bin")
    data = content(5, 3 * MIB)
    handle = await write_streaming(drive, "shared.bin", data, flags=os.O_WRONLY | os.O_TRUNC)
    await in_thread(upload, portal, "shared.bin", b"their edit")
    await drive.close(handle)
    await drive.settled()
    names = await in_thread(view.names)
    conflicts = [name for name in names if name.startswith("shared (conflict ")]
    assert len(conflicts) == 1 and names == {"shared.bin", conflicts[0]}
    assert await in_thread(view.read, "shared.bin") == b"their edit"
    assert await in_thread(view.read, conflicts[0]) == data
    assert await in_thread(view.uploads_of, "shared.bin") == 2  # before, their edit


class NoPut(PassThrough):
    """The real backend, on a portal that refuses every WebDAV PUT."""

    def __init__(self, backend: CteraBackend) -> None:
        super().__init__(backend)
        self.refused = 0

    async def upload_streamed(self, path: RemotePath, content: AsyncIterator[bytes], *, new: bool) -> RemoteEntry:
        self.refused += 1
        raise Unsupported("the portal does not take a WebDAV PUT (HTTP 405)")


async def test_a_portal_without_put_is_asked_once(portal: PortalProcess, tmp_path: Path, view: PortalView) -> None:
    async with open_writable(portal, tmp_path, delay=0.2, early_upload=MIB, wrap=NoPut) as drive:
        first, second = content(6, 3 * MIB), content(7, 2 * MIB)
        await drive.write_file("one.bin", first)
        await drive.write_file("two.bin", second)
        await drive.settled()
        await portal_holds(view, "one.bin", first)
        await portal_holds(view, "two.bin", second)
        assert drive.wrapped(NoPut).refused == 1
        assert drive.backend.statistics().count("upload") == 2


async def test_a_closed_file_waits_for_its_quiet_period_without_an_idle_limit(
        portal: PortalProcess, tmp_path: Path, view: PortalView, monkeypatch: pytest.MonkeyPatch) -> None:
    """The idle limit is for files left open; a closed one's stream waits for the queue."""
    monkeypatch.setattr(early_uploads, "IDLE_LIMIT", 1.0)
    async with open_writable(portal, tmp_path, delay=3.0, early_upload=MIB) as drive:
        data = content(8, 3 * MIB)
        await drive.close(await write_streaming(drive, "waits.bin", data))
        await trio.sleep(2.0)  # closed, past the idle limit, still in the quiet period
        assert drive.uploads.early.streaming() == 1
        await drive.settled()
        await portal_holds(view, "waits.bin", data)
        assert puts_and_uploads(drive) == (1, 0)


async def test_a_stream_reads_what_is_written_back_in_batches_not_per_write(
        drive: Mounted, view: PortalView, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each read of the staged copy is a locked trip to a worker thread; a stream that has caught
    up waits for SEND_BATCH new bytes before it reads again, rather than reading back every write
    (here 128 KiB, each given time to be read on its own), until the file is closed."""
    monkeypatch.setattr(early_uploads, "BATCH_WAIT", 60.0)  # a pause under load sends no part batch
    store = drive.uploads.early._store
    reads: list[int] = []
    real_read = store.read

    async def counted_read(record_id: int, offset: int, length: int, *args: object, **kwargs: object) -> bytes:
        data = await real_read(record_id, offset, length, *args, **kwargs)  # type: ignore[arg-type]
        reads.append(len(data))
        return data

    data = content(9, 9 * MIB + 5)
    handle = await drive.open_file("paced.bin", CREATE)
    for offset in range(0, len(data), CHUNK):
        await drive.fs.write(handle, offset, data[offset:offset + CHUNK])
        if offset == MIB:  # the stream has started: count its reads from here
            monkeypatch.setattr(store, "read", counted_read)
        await trio.sleep(0.005)
    await until(lambda: streamed(drive) >= len(data) - early_uploads.SEND_BATCH)
    while_open = list(reads)
    await drive.close(handle)
    await drive.settled()
    await portal_holds(view, "paced.bin", data)
    assert drive.backend.statistics().count("put") == 1
    assert len(while_open) >= 2 and min(while_open) >= early_uploads.SEND_BATCH, while_open


async def test_a_part_batch_is_sent_after_batch_wait(
        drive: Mounted, view: PortalView, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow writer's bytes do not wait for a whole batch: the body would stay silent for as long
    as the writer takes to write SEND_BATCH, and a proxy may cut a silent request body off."""
    monkeypatch.setattr(early_uploads, "BATCH_WAIT", 0.3)
    data = content(10, 3 * MIB + CHUNK)
    handle = await write_streaming(drive, "slow.bin", data[:3 * MIB])
    await until(lambda: streamed(drive) == 3 * MIB, timeout=5)  # the rest of the first batches
    await drive.fs.write(handle, 3 * MIB, data[3 * MIB:])  # far less than a batch
    await until(lambda: streamed(drive) == len(data), timeout=5)
    await drive.close(handle)
    await drive.settled()
    await portal_holds(view, "slow.bin", data)
    assert drive.backend.statistics().count("put") == 1
