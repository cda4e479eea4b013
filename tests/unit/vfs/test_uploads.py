"""The upload queue (``vfs.uploads``) against the real portal: when, how often, and what when it goes wrong.

Writes are staged and uploaded later, whole; these tests hold the queue to
its promises, counting uploads both as HTTP requests the backend sent
(``statistics().count("upload")``) and as versions the portal stored
(``PortalView.uploads_of``):

* the quiet period coalesces a flurry of writes into one upload, counted
  from the *last* change, and nothing held open for writing is uploaded;
* ``fsync`` skips the wait and returns once the portal has the content;
* a write while the content streams, or after it was sent, never leaves
  the portal with anything but the latest bytes;
* a remote change since the edit began makes a conflict copy, never an
  overwrite; content the portal already holds (an upload confirmed just
  before a crash) is not sent again;
* a refusal (quota) holds the file, tells ``fsync`` ``EDQUOT`` and keeps
  it for later; transient failures are retried after a growing back-off;
* excluded names (lock, swap, temp files) never leave this machine.

Time is trio's ``MockClock`` running at real speed (the backend's task
polling and retries sleep), jumped forward past delays and back-offs: a
file can be shown *not* uploaded before its time without any timing.
Faults are injected by a thin wrapper around the real backend (``Faults``):
every upload it lets through is the real one.
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
import trio.testing

from tests.support.portal_process import PortalProcess
from tests.support.portal_view import PortalView
from tests.unit.vfs.graph import CREATE, NEVER, Mounted, PassThrough, open_writable, refused
from tests.unit.vfs.truth import in_thread, portal_holds, upload
from vfs.backends.base import (
    BackendError,
    QuotaExceeded,
    RemoteEntry,
    Transient,
    UploadSource,
)
from vfs.backends.base import Path as RemotePath
from vfs.backends.ctera import CteraBackend
from vfs.inodes import ROOT_INODE
from vfs.uploads import UPLOAD_CHUNK

MIB = 1 << 20


@pytest.fixture
def clock(mock_clock: trio.testing.MockClock) -> trio.testing.MockClock:
    """Trio's clock at real speed, which a test may jump forward."""
    mock_clock.rate = 1.0
    return mock_clock


async def quiet() -> None:
    """Let every task run until all wait (the queue has reacted to a clock jump)."""
    await trio.testing.wait_all_tasks_blocked()


def uploads_sent(drive: Mounted) -> int:
    return drive.backend.statistics().count("upload")


class Pause:
    """Stop an upload's content stream after ``after`` bytes until ``resume`` is set."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.reached = trio.Event()
        self.resume = trio.Event()


class Faults(PassThrough):
    """The real backend, except for uploads: the next ones fail with ``failures`` (in order), or
    the next one pauses its content stream (``pause``).  Every other call is passed through."""

    def __init__(self, backend: CteraBackend) -> None:
        super().__init__(backend)
        self.failures: list[BackendError] = []
        self.pause: Pause | None = None
        self.attempts = 0

    async def upload(self, path: RemotePath, source: UploadSource, size: int) -> RemoteEntry:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        pause, self.pause = self.pause, None
        if pause is None:
            return await self._real.upload(path, source, size)

        async def paused() -> AsyncIterator[bytes]:
            sent = 0
            async for chunk in source():
                yield chunk
                sent += len(chunk)
                if sent >= pause.after and not pause.reached.is_set():
                    pause.reached.set()
                    await pause.resume.wait()

        return await self._real.upload(path, paused, size)


@asynccontextmanager
async def over_quota(portal: PortalProcess, tmp_path: Path) -> AsyncIterator[tuple[Mounted, Faults]]:
    """A graph that uploads only on fsync, and whose next upload the portal refuses: quota exceeded."""
    async with open_writable(portal, tmp_path, delay=NEVER, wrap=Faults) as drive:
        faults = drive.wrapped(Faults)
        faults.failures = [QuotaExceeded("quota exceeded")]
        yield drive, faults


async def create_refused(drive: Mounted, name: str, content: bytes) -> int:
    """Create ``name`` and write ``content``; its fsync is refused with EDQUOT.  The handle, still open."""
    handle = await drive.open_file(name, CREATE)
    await drive.fs.write(handle, 0, content)
    assert await refused(drive.fs.fsync(handle)) == errno.EDQUOT
    return handle


# ---------------------------------------------------------------- when


async def test_the_delay_counts_from_the_last_change_and_coalesces_into_one_upload(
    portal: PortalProcess, tmp_path: Path, clock: trio.testing.MockClock, view: PortalView
) -> None:
    async with open_writable(portal, tmp_path, delay=60) as drive:
        for number in range(5):
            await drive.write_file("doc.txt", f"version {number}".encode())
            clock.jump(40)  # every change restarts the 60 s quiet period
            await quiet()
            assert uploads_sent(drive) == 0 and not drive.uploads.status()["in_flight"]
        await drive.rename("doc.txt", "notes.txt")
        await drive.write_file("notes.txt", b"final", os.O_WRONLY | os.O_APPEND)
        clock.jump(61)
        await portal_holds(view, "notes.txt", b"version 4final")
        await drive.settled()
        assert uploads_sent(drive) == 1
        assert view.uploads_of("notes.txt") == 1
        assert view.names() == {"notes.txt"}


async def test_a_file_open_for_writing_waits_for_its_release(
    portal: PortalProcess, tmp_path: Path, clock: trio.testing.MockClock, view: PortalView
) -> None:
    async with open_writable(portal, tmp_path, delay=1) as drive:
        handle = await drive.open_file("log.txt", CREATE)
        await drive.fs.write(handle, 0, b"first part, ")
        await drive.fs.flush(handle)  # close() of a duplicate descriptor: durable, still open
        clock.jump(600)
        await quiet()
        assert uploads_sent(drive) == 0 and not drive.uploads.status()["in_flight"]
        await drive.fs.write(handle, 12, b"second part")
        await drive.fs.flush(handle)
        await drive.fs.release(handle)
        clock.jump(2)
        await portal_holds(view, "log.txt", b"first part, second part")
        await drive.settled()
        assert uploads_sent(drive) == 1


async def test_fsync_uploads_at_once_and_returns_once_the_portal_has_it(
    portal: PortalProcess, tmp_path: Path, view: PortalView
) -> None:
    await in_thread(upload, portal, "db.bin", b"page 0")
    async with open_writable(portal, tmp_path, delay=NEVER) as drive:
        quiet_handle = await drive.open_file("db.bin", os.O_RDWR)
        await drive.fs.fsync(quiet_handle)  # nothing written: nothing to send
        await drive.close(quiet_handle)
        assert uploads_sent(drive) == 0
        handle = await drive.open_file("db.bin", os.O_RDWR)
        await drive.fs.write(handle, 6, b", page 1")
        await drive.fs.fsync(handle)
        assert view.read("db.bin") == b"page 0, page 1"
        await drive.fs.write(handle, 14, b", page 2")
        await drive.fs.fsync(handle)
        assert view.read("db.bin") == b"page 0, page 1, page 2"
        await drive.close(handle)
        assert uploads_sent(drive) == 2
        assert view.uploads_of("db.bin") == 3


async def test_a_file_fsynced_while_open_leaves_nothing_pending_after_close(
    portal: PortalProcess, tmp_path: Path, view: PortalView
) -> None:
    """sqlite and git fsync files they keep open; after the close nothing is left to upload,
    so an unmount's drain returns and no second version is sent."""
    await in_thread(upload, portal, "db.bin", b"page 0")
    async with open_writable(portal, tmp_path, delay=NEVER) as drive:
        handle = await drive.open_file("db.bin", os.O_RDWR)
        await drive.fs.write(handle, 6, b", page 1")
        await drive.fs.fsync(handle)
        await drive.close(handle)
        await drive.settled(timeout=5)
        assert drive.uploads.pending() == 0
        assert drive.store is not None and drive.store.records() == []
    async with open_writable(portal, tmp_path) as remounted:
        await remounted.settled(timeout=5)
        assert uploads_sent(remounted) == 0
    assert view.uploads_of("db.bin") == 2


async def test_no_more_uploads_run_at_once_than_workers(
    portal: PortalProcess, tmp_path: Path, clock: trio.testing.MockClock, view: PortalView
) -> None:
    async with open_writable(portal, tmp_path, delay=0.1, workers=1, wrap=Faults) as drive:
        faults = drive.wrapped(Faults)
        pause = faults.pause = Pause(after=1)
        await drive.write_file("first.txt", b"first")
        with trio.fail_after(30):
            await pause.reached.wait()
        await drive.write_file("second.txt", b"second")
        await drive.write_file("third.txt", b"third")
        clock.jump(1)  # the others are due now; the one worker is busy
        await quiet()
        assert [item["path"] for item in drive.uploads.status()["in_flight"]] == ["My Files/first.txt"]
        assert faults.attempts == 1
        pause.resume.set()
        await drive.settled()
        assert view.names() == {"first.txt", "second.txt", "third.txt"}
        assert faults.attempts == 3


# ---------------------------------------------------------------- consistency


async def test_a_write_while_the_content_streams_restarts_the_upload(
    portal: PortalProcess, tmp_path: Path, view: PortalView
) -> None:
    first, second = os.urandom(2 * UPLOAD_CHUNK + 1000), b"NEW!"  # streamed in three pieces
    async with open_writable(portal, tmp_path, delay=0.1, wrap=Faults) as drive:
        faults = drive.wrapped(Faults)
        pause = faults.pause = Pause(after=1)
        await drive.write_file("big.bin", first, chunk=MIB)
        with trio.fail_after(30):
            await pause.reached.wait()  # the first piece is on its way
        await drive.write_file("big.bin", second, os.O_WRONLY)  # overwrites the first four bytes
        pause.resume.set()
        expected = second + first[len(second):]
        await portal_holds(view, "big.bin", expected)
        await drive.settled()
        assert view.uploads_of("big.bin") == 1  # the interrupted upload stored nothing
        assert await drive.read_file("big.bin") == expected


async def test_a_write_after_the_content_was_sent_becomes_the_next_version(
    portal: PortalProcess, tmp_path: Path, view: PortalView
) -> None:
    async with open_writable(portal, tmp_path, delay=0.1, wrap=Faults) as drive:
        faults = drive.wrapped(Faults)
        pause = faults.pause = Pause(after=5)
        await drive.write_file("doc.txt", b"first")
        with trio.fail_after(30):
            await pause.reached.wait()  # all sent, the portal has not answered yet
        await drive.write_file("doc.txt", b"second", os.O_WRONLY | os.O_TRUNC)
        pause.resume.set()
        await portal_holds(view, "doc.txt", b"second")
        await drive.settled()
        assert view.uploads_of("doc.txt") == 2  # "first", then "second" on top of it
        assert view.names() == {"doc.txt"}


async def test_a_remote_change_since_the_edit_began_makes_a_conflict_copy(
    portal: PortalProcess, tmp_path: Path, clock: trio.testing.MockClock, view: PortalView
) -> None:
    await in_thread(upload, portal, "report.docx", b"original")
    file_id = view.file_id("report.docx")
    async with open_writable(portal, tmp_path, delay=60) as drive:
        await drive.write_file("report.docx", b"local edit", os.O_WRONLY | os.O_TRUNC)
        await in_thread(upload, portal, "report.docx", b"remote edit")  # another device, meanwhile
        clock.jump(61)
        names = await in_thread(view.wait_for, lambda: len(view.names()) == 2 and view.names())
        await drive.settled()
        (copy,) = names - {"report.docx"}
        assert re.fullmatch(r"report \(conflict \d{4}-\d\d-\d\d \d{6}\)\.docx", copy), copy
        assert view.read(copy) == b"local edit"
        assert view.read("report.docx") == b"remote edit"  # untouched by the upload
        assert view.file_id("report.docx") == file_id and view.uploads_of("report.docx") == 2
        conflicts = drive.fs.status()["conflicts"]  # what `portalfs status` lists
        assert [(c["path"], c["conflict_path"]) for c in conflicts] == [("report.docx", copy)]
        assert set(await drive.names(ROOT_INODE)) >= {"report.docx", copy}
        assert await drive.read_file(copy) == b"local edit"
        assert await drive.read_file("report.docx") == b"remote edit"


async def test_content_the_portal_already_has_is_not_uploaded_again(
    portal: PortalProcess, tmp_path: Path, view: PortalView
) -> None:
    """A ``kill -9`` after the portal confirmed an upload but before the record was discarded."""
    await in_thread(upload, portal, "doc.txt", b"version 1")
    async with open_writable(portal, tmp_path, delay=NEVER) as before_the_crash:
        await before_the_crash.write_file("doc.txt", b"the second version", os.O_WRONLY | os.O_TRUNC)
    await in_thread(upload, portal, "doc.txt", b"the second version")  # the upload the crash interrupted
    async with open_writable(portal, tmp_path) as after_the_crash:
        await after_the_crash.settled()
        assert after_the_crash.store is not None and after_the_crash.store.records() == []
        assert uploads_sent(after_the_crash) == 0
        assert not after_the_crash.fs.status()["conflicts"]
    assert view.names() == {"doc.txt"}
    assert view.uploads_of("doc.txt") == 2


async def test_a_pending_upload_is_resumed_by_the_next_graph(
    portal: PortalProcess, tmp_path: Path, view: PortalView
) -> None:
    async with open_writable(portal, tmp_path, delay=NEVER) as before:
        await before.write_file("doc.txt", b"acknowledged at close")
    assert view.names() == set()
    async with open_writable(portal, tmp_path, delay=NEVER) as after:
        await portal_holds(view, "doc.txt", b"acknowledged at close")  # at once, whatever the delay
        await after.settled()


# ---------------------------------------------------------------- failures


async def test_a_refused_upload_is_held_and_fsync_reports_edquot(
    portal: PortalProcess, tmp_path: Path, view: PortalView
) -> None:
    """Held, not lost; a later fsync still reports the refusal (the portal does not have the file)."""
    async with over_quota(portal, tmp_path) as (drive, faults):
        await drive.close(await create_refused(drive, "big.bin", b"too much"))
        assert drive.store is not None
        (record,) = drive.store.records()
        assert record.state == "held" and "quota" in (record.last_error or "").lower()
        (pending,) = drive.fs.status()["uploads"]["pending"]
        assert pending["state"] == "held" and pending["path"] == "big.bin"
        assert drive.fs.status()["errors"]
        assert view.names() == set()
        assert await drive.read_file("big.bin") == b"too much"  # kept here, readable
        assert faults.attempts == 1
        handle = await drive.open_file("big.bin", os.O_RDWR)  # fsync again, nothing changed
        assert await refused(drive.fs.fsync(handle)) == errno.EDQUOT
        await drive.close(handle)
        assert view.names() == set()
    async with open_writable(portal, tmp_path) as remounted:  # the next mount tries again
        await portal_holds(view, "big.bin", b"too much")
        await remounted.settled()


async def test_a_new_change_of_a_held_file_tries_again(portal: PortalProcess, tmp_path: Path, view: PortalView) -> None:
    async with over_quota(portal, tmp_path) as (drive, _):
        handle = await create_refused(drive, "doc.txt", b"first")
        await drive.fs.write(handle, 5, b", then more")
        await drive.fs.fsync(handle)  # room again on the portal
        await drive.close(handle)
        assert view.read("doc.txt") == b"first, then more"


async def test_transient_failures_are_retried_after_a_growing_back_off(
    portal: PortalProcess, tmp_path: Path, clock: trio.testing.MockClock, view: PortalView
) -> None:
    async with open_writable(portal, tmp_path, delay=1, wrap=Faults) as drive:
        faults = drive.wrapped(Faults)
        faults.failures = [Transient("connection reset")] * 3
        await drive.write_file("doc.txt", b"eventually")
        assert drive.store is not None
        clock.jump(1)
        for attempt in (1, 2, 3):
            with trio.fail_after(30):
                while not (faults.attempts == attempt and drive.store.records()[0].attempts == attempt
                           and drive.store.records()[0].state == "pending"):
                    await trio.sleep(0.01)
            clock.jump(2.0 ** attempt - 0.5)  # just before the back-off ends: no new attempt
            await quiet()
            assert faults.attempts == attempt
            assert "connection reset" in (drive.store.records()[0].last_error or "")
            clock.jump(0.5)
        await portal_holds(view, "doc.txt", b"eventually")
        await drive.settled()
        assert faults.attempts == 4
        assert len(drive.fs.status()["errors"]) == 3


# ---------------------------------------------------------------- exclusions

LOCAL_NAMES = [".~lock.a.odt#", "~$a.docx", ".a.txt.swp", "a.txt~", ".goutputstream-ABC123", "x.tmp"]


async def test_excluded_names_never_leave_this_machine(
    portal: PortalProcess, tmp_path: Path, clock: trio.testing.MockClock, view: PortalView
) -> None:
    async with open_writable(portal, tmp_path, delay=1) as drive:
        for name in LOCAL_NAMES:
            handle = await drive.open_file(name, CREATE)
            await drive.fs.write(handle, 0, name.encode())
            await drive.fs.fsync(handle)  # durable here; returns without the portal
            await drive.close(handle)
        clock.jump(600)
        await drive.settled()
        assert uploads_sent(drive) == 0 and view.names() == set()
        assert drive.uploads.pending() == 0
        assert {item["state"] for item in drive.fs.status()["uploads"]["pending"]} == {"local"}
        assert set(await drive.names(ROOT_INODE)) >= set(LOCAL_NAMES)
        await drive.rename("x.tmp", "x.txt")  # an ordinary name now: an ordinary upload
        clock.jump(2)
        await portal_holds(view, "x.txt", b"x.tmp")
        await drive.settled()
        assert view.names() == {"x.txt"}


async def test_the_exclude_list_is_configurable(portal: PortalProcess, tmp_path: Path, view: PortalView) -> None:
    async with open_writable(portal, tmp_path, delay=0.1, excludes=("*.bak",)) as drive:
        await drive.write_file("x.tmp", b"uploaded now")
        await drive.write_file("x.bak", b"kept here")
        await portal_holds(view, "x.tmp", b"uploaded now")
        await drive.settled()
        assert view.names() == {"x.tmp"}
