"""The upload queue when the local side fails it, and the paged listing it shares with the folder cache.

The staging area can fail any bookkeeping step of an upload (a full disk, a
journal that cannot be written): the upload is kept for later and the queue
goes on serving every other file.  Failures are injected by a thin wrapper
around the real staging store (``FailingStore``); everything else is the
real graph on the per-test portal.  ``settle_under`` waits for the uploads in
flight below a path, and for no others.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio
import trio.testing

from cache import StagingStore
from tests.support.portal_process import PortalProcess
from tests.support.portal_view import PortalView
from tests.unit.vfs.graph import PassThrough, open_writable, refused
from tests.unit.vfs.truth import portal_holds
from vfs.backends.base import Page, RemoteEntry, UploadSource
from vfs.backends.base import Path as RemotePath
from vfs.backends.ctera import CteraBackend
from vfs.listings import PAGE_SIZE, list_all


def _entry(name: str) -> RemoteEntry:
    return RemoteEntry(path=("folder", name), is_dir=False, size=0, mtime=0.0, object_id=name, version="1")


class _Pages:
    """A portal whose listing of ``folder`` is ``pages``, whatever ``start`` is asked for."""

    def __init__(self, pages: Sequence[Page]) -> None:
        self.pages = list(pages)
        self.asked: list[tuple[int, int]] = []

    async def list_page(self, path: RemotePath, start: int, limit: int) -> Page:
        self.asked.append((start, limit))
        return self.pages[min(len(self.asked), len(self.pages)) - 1]


async def test_list_all_follows_the_pages_and_stops_at_a_portal_that_does_not_advance() -> None:
    advancing = _Pages([Page([_entry("a"), _entry("b")], has_more=True, next_start=5), Page([_entry("c")], False)])
    assert [e.name for e in await list_all(advancing, ("folder",))] == ["a", "b", "c"]  # type: ignore[arg-type]
    assert advancing.asked == [(0, PAGE_SIZE), (5, PAGE_SIZE)]
    stuck = _Pages([Page([_entry("a")], has_more=True), Page([], has_more=True)])  # "more", but nothing comes
    with trio.fail_after(5):
        assert [e.name for e in await list_all(stuck, ("folder",))] == ["a"]  # type: ignore[arg-type]


class FailingStore(PassThrough):
    """The real staging store, except that ``update``/``discard`` of the files named in ``failing``
    raise ``OSError(ENOSPC)`` (a full disk under the journal) while ``failing`` holds them;
    only ``discard`` of those in ``fail_discard``."""

    def __init__(self, store: StagingStore) -> None:
        super().__init__(store)
        self.failing: set[str] = set()
        self.fail_discard: set[str] = set()
        self.failures = 0

    def _check(self, id: int, failing: set[str]) -> None:
        if self._real.get(id).path[-1] in failing:
            self.failures += 1
            raise OSError(errno.ENOSPC, "No space left on device")

    async def update(self, id: int, **fields: Any) -> Any:
        self._check(id, self.failing)
        return await self._real.update(id, **fields)

    async def discard(self, id: int, **options: Any) -> None:
        self._check(id, self.failing | self.fail_discard)
        await self._real.discard(id, **options)


async def test_a_staging_failure_keeps_the_file_for_later_and_the_queue_serves_the_others(
    portal: PortalProcess, tmp_path: Path, mock_clock: trio.testing.MockClock, view: PortalView
) -> None:
    mock_clock.rate = 1.0
    async with open_writable(portal, tmp_path, delay=60, workers=1) as drive:
        faulty = FailingStore(drive.uploads._store)
        drive.uploads._store = faulty  # type: ignore[assignment]
        faulty.failing = {"stuck.txt"}
        await drive.write_file("stuck.txt", b"kept for later")
        handle = await drive.open_file("stuck.txt", os.O_RDWR)
        with trio.fail_after(30):
            assert await refused(drive.fs.fsync(handle)) == errno.ENOSPC  # the local disk's errno
        await drive.close(handle)
        assert faulty.failures >= 1 and view.names() == set()
        assert drive.uploads.pending() == 1  # kept, neither lost nor held for a person
        # The queue is alive: another file goes up, through its one worker.
        await drive.write_file("other.txt", b"uploaded meanwhile")
        handle = await drive.open_file("other.txt", os.O_RDWR)
        with trio.fail_after(30):
            await drive.fs.fsync(handle)
        await drive.close(handle)
        assert view.read("other.txt") == b"uploaded meanwhile"
        # Room again: the kept file goes up in due time, without anyone asking.
        faulty.failing.clear()
        mock_clock.jump(600)
        await portal_holds(view, "stuck.txt", b"kept for later")
        await drive.settled()
        assert view.names() == {"stuck.txt", "other.txt"}
        assert drive.store is not None and drive.store.records() == []


async def test_a_failure_to_note_the_upload_done_keeps_the_file_and_sends_it_no_second_time(
    portal: PortalProcess, tmp_path: Path, mock_clock: trio.testing.MockClock, view: PortalView
) -> None:
    """The portal took the file, then the journal could not drop the record: the next attempt
    finds the content on the portal and only finishes the bookkeeping."""
    mock_clock.rate = 1.0
    async with open_writable(portal, tmp_path, delay=60, workers=1) as drive:
        faulty = FailingStore(drive.uploads._store)
        drive.uploads._store = faulty  # type: ignore[assignment]
        await drive.write_file("doc.txt", b"sent once")
        faulty.fail_discard = {"doc.txt"}
        assert drive.store is not None
        (record,) = drive.store.records()
        with trio.fail_after(30):  # as an fsync would, without a handle open for writing
            assert await refused(drive.uploads.upload_now(record)) == errno.ENOSPC
        assert view.read("doc.txt") == b"sent once" and drive.uploads.pending() == 1
        faulty.fail_discard.clear()
        mock_clock.jump(600)
        await drive.settled()
        assert drive.store is not None and drive.store.records() == []
        assert view.uploads_of("doc.txt") == 1 and drive.backend.statistics().count("upload") == 1


class HeldUploads(PassThrough):
    """The real backend, except that uploads wait for ``resume`` (``reached`` says one does)."""

    def __init__(self, backend: CteraBackend) -> None:
        super().__init__(backend)
        self.reached = trio.Event()
        self.resume = trio.Event()

    async def upload(self, path: RemotePath, source: UploadSource, size: int) -> RemoteEntry:
        self.reached.set()
        await self.resume.wait()
        return await self._real.upload(path, source, size)


async def test_settle_under_waits_only_for_uploads_at_or_below_the_path(
    portal: PortalProcess, tmp_path: Path, view: PortalView
) -> None:
    async with open_writable(portal, tmp_path, delay=0.1, wrap=HeldUploads) as drive:
        held = drive.wrapped(HeldUploads)
        await drive.mkdir("dir")
        await drive.write_file("dir/a.txt", b"a")
        with trio.fail_after(30):
            await held.reached.wait()
        root = drive.root_path
        with trio.fail_after(5):  # elsewhere, or a name that merely starts alike: nothing to wait for
            await drive.uploads.settle_under((*root, "other"))
            await drive.uploads.settle_under((*root, "di"))
            await drive.uploads.settle_under((*root, "dir", "a.txt", "x"))
        assert drive.uploads.status()["in_flight"]

        async def resume_soon() -> None:
            await trio.sleep(0.2)
            held.resume.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(resume_soon)
            with trio.fail_after(30):
                await drive.uploads.settle_under((*root, "dir"))
            assert held.resume.is_set() and not drive.uploads.status()["in_flight"]
        await portal_holds(view, "dir/a.txt", b"a")
        await drive.settled()
