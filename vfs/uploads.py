"""The upload queue: staged files go to the portal in the background, once, whole.

The portal takes a file only whole (one POST per version), so a written file
is staged locally (``cache.staging``) and uploaded from there.  This module
decides *when* and *how*:

* **When.** A staged file becomes due ``delay`` seconds after its last
  change and only once no handle has it open for writing, so the flurry of
  a save (temp file, rename, lock file, delete) settles locally and reaches
  the portal as one version.  ``fsync`` skips the wait (:meth:`upload_now`).
  Files whose name matches the exclude list are never due.
* **Whole and consistent.** The content is streamed from the staging store;
  a write during the upload makes the stream fail (``ContentChanged``) and
  the file is simply due again.  A write that lands after the stream ended
  keeps the record, now based on the version just uploaded.
* **No silent overwrite.** Before sending, the portal's current version of
  the target is compared with the version the edit started from.  If it
  differs — and is not our own content, e.g. an upload confirmed just
  before a ``kill -9`` — the edit goes to a conflict copy next to it
  (:mod:`vfs.conflicts`) and the remote file is left alone.
* **Identity.** A new file that took the name of a file just deleted or
  moved aside (Excel, Word, vim) carries that file as its *donor*
  (:mod:`vfs.saves`); before its first upload the donor is brought back to
  the name (``undelete``/``move``) so the upload becomes a new version of the
  same portal file, its history and shares intact.
* **Failures.** Transient failures (the retry policy gave up) leave the file
  pending with a growing back-off, retried until the portal returns.  A
  refusal (quota, permission, invalid name) puts it on hold with the reason:
  kept in the journal, shown by ``portalfs status``, reported to a waiting
  ``fsync`` as its errno.  So is a failure of the staging area reading or
  noting the upload (a full disk); if it cannot even note that, the file
  stays pending and is tried again after a back-off.  One file's trouble
  never ends the queue.

Concurrency: one trio task per upload, at most ``workers`` at once, never two
for one record.  ``_busy`` maps a record to its upload's cancel scope;
``_due`` to the trio time it becomes due.  All bookkeeping happens on the trio
thread between awaits.
"""

from __future__ import annotations

import collections
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Protocol

import trio

from cache import BaseFetch, ContentChanged, StagedFile, StagingStore
from vfs import saves
from vfs.backends.base import (
    BackendError,
    NotFound,
    Path,
    RemoteEntry,
    Transient,
    WritableBackend,
)
from vfs.conflicts import conflict_name
from vfs.early_uploads import EARLY_MIN, EarlyUpload, EarlyUploadFailed, EarlyUploads
from vfs.errors import VfsError, errno_for
from vfs.exclusions import Exclusions
from vfs.listings import list_all

log = logging.getLogger("vfs.uploads")

MAX_BACKOFF = 300.0


def _backoff(failures: int) -> float:
    """Seconds before the next attempt after ``failures`` failed ones (doubling, up to MAX_BACKOFF)."""
    return min(MAX_BACKOFF, 2.0 ** min(failures, 9))

#: how long a rename or delete waits for an upload of its file in flight before cutting it short
SETTLE_PATIENCE = 10.0

#: staging meta: the base version this record's committed content was uploaded as
UPLOADED = "uploaded"
COMPARE_CHUNK = 1 << 20
#: bytes read from the staging area per step of an upload: fewer, larger sends cost less CPU
UPLOAD_CHUNK = 4 << 20


class UploadListener(Protocol):
    """What the filesystem learns from the queue (called on the trio thread)."""

    def uploaded(self, record: StagedFile, entry: RemoteEntry, *, finished: bool) -> None:
        """``record``'s content is now ``entry`` on the portal; ``finished``: the record is gone."""

    def may_reclaim(self, donor: saves.Donor) -> bool:
        """May the donor be taken back for a save (False while it is in use here)?"""

    async def keep_backup(self, donor: saves.Donor) -> None:
        """Before a donor renamed aside is taken back: keep a local copy under the backup name."""

    def reclaimed(self, donor: saves.Donor, record: StagedFile) -> None:
        """The donor was brought back from ``donor.path`` to ``record.path``: the record is its new version."""

    def conflicted(self, record: StagedFile, entry: RemoteEntry) -> None:
        """``record`` was uploaded as the conflict copy ``entry``; its own path is untouched."""

    def forgotten(self, record: StagedFile) -> None:
        """``record`` is gone without news of the portal's copy (ask the portal again)."""


@dataclass
class _InFlight:
    record: StagedFile
    scope: trio.CancelScope
    done: trio.Event = field(default_factory=trio.Event)
    sent: int = 0
    #: the record's upload begun while it was written, while it may still be finished
    early: EarlyUpload | None = None

    @property
    def progress(self) -> int:
        return self.early.sent if self.early is not None else self.sent


@dataclass
class _Waiter:
    done: trio.Event = field(default_factory=trio.Event)
    error: VfsError | None = None


class UploadQueue:
    def __init__(self, backend: WritableBackend, store: StagingStore, listener: UploadListener, *,
                 fetch_base: Callable[[StagedFile], BaseFetch], exclusions: Exclusions,
                 delay: float = 2.0, workers: int = 4, early_upload: int = EARLY_MIN) -> None:
        self._backend = backend
        self._store = store
        self._listener = listener
        self._fetch_base = fetch_base
        self.exclusions = exclusions
        self.delay = delay
        self._limit = trio.Semaphore(workers)
        self._due: dict[int, float] = {}
        self._busy: dict[int, _InFlight] = {}
        self._writers: collections.Counter[int] = collections.Counter()
        self._waiters: dict[int, list[_Waiter]] = collections.defaultdict(list)
        #: records uploaded while open for writing, and what the portal said (saves a stat)
        self._clean: dict[int, RemoteEntry] = {}
        #: records whose upload the staging area failed, and how often in a row (their back-off)
        self._troubles: collections.Counter[int] = collections.Counter()
        self._wake = trio.Event()
        self._nursery: trio.Nursery | None = None
        self.uploaded_count = 0
        self.uploaded_bytes = 0
        self.conflicts: collections.deque[dict[str, object]] = collections.deque(maxlen=100)
        self.errors: collections.deque[dict[str, object]] = collections.deque(maxlen=20)
        #: large files sent while they are still written (a head start; this queue decides)
        self.early = EarlyUploads(backend, store, fetch_base=fetch_base, local_only=self.local_only,
                                  minimum=early_upload)

    # ------------------------------------------------------------ scheduling

    def local_only(self, record: StagedFile) -> bool:
        return self.exclusions.matches(record.path[-1]) if record.path else True

    def schedule(self, record: StagedFile, *, delay: float | None = None) -> None:
        """Make ``record`` due after ``delay`` (default: the queue's delay) from now."""
        if not self._may_be_due(record):
            self._due.pop(record.id, None)
            return
        if delay is None and (self._already_uploaded(record) or self._waiters.get(record.id)):
            delay = 0  # nothing to send but bookkeeping, or an fsync is waiting
        self._due[record.id] = trio.current_time() + (self.delay if delay is None else delay)
        self._wake.set()

    def _may_be_due(self, record: StagedFile) -> bool:
        """Pending, or marked ``uploading`` with no upload in flight (the staging area failed the
        step that ends an upload: the mark is stale), and not excluded."""
        waiting = record.state == "pending" or (record.state == "uploading" and record.id not in self._busy)
        return waiting and not self.local_only(record)

    @staticmethod
    def _already_uploaded(record: StagedFile) -> bool:
        """Is the committed content the base version itself (uploaded by an fsync while open)?"""
        return UPLOADED in record.meta and record.meta[UPLOADED] == record.base_version

    def hold(self, record_id: int) -> None:
        """A handle has the file open for writing: do not upload it on a timer."""
        self._writers[record_id] += 1

    def unhold(self, record_id: int) -> None:
        self._writers[record_id] -= 1
        if self._writers[record_id] <= 0:
            del self._writers[record_id]
            self.early.closed(record_id)
            self._wake.set()

    async def upload_now(self, record: StagedFile) -> None:
        """Upload ``record`` now (it must be committed) and wait until the portal has it."""
        try:
            record = self._store.get(record.id)  # the caller's copy may predate a refusal
        except KeyError:
            return  # uploaded and dropped meanwhile
        if record.state == "held":
            raise _refusal(record)
        if self.local_only(record):
            return
        waiter = _Waiter()
        self._waiters[record.id].append(waiter)
        # An upload in flight is let finish (cutting a request short leaves the portal's state
        # unknown); if it sent older content, _finish queues the file again and we wait for that.
        self._due[record.id] = trio.current_time()
        self._wake.set()
        await waiter.done.wait()
        if waiter.error is not None:
            raise waiter.error

    async def settle(self, record_id: int) -> None:
        """Let an upload of the record in flight end, so the caller sees what the portal has.

        A rename or a delete must not cut an upload short: whether the portal stored it
        would be unknown (a cancelled POST may have landed), and a file renamed over it, or
        the name deleted, would then meet a stray copy or a false conflict.  Only an upload
        still running after ``SETTLE_PATIENCE`` seconds (a large file) is cancelled.
        """
        running = self._busy.get(record_id)
        if running is None:
            return
        with trio.move_on_after(SETTLE_PATIENCE):
            await running.done.wait()
        if not running.done.is_set():
            running.scope.cancel()
            await running.done.wait()

    async def settle_under(self, path: Path) -> None:
        """:meth:`settle` every upload in flight of a file at or below ``path``, whether by the
        path it is uploaded to or by the one it has now (renamed meanwhile).  Costs a look at
        the uploads in flight (at most ``workers``), not at every staged file."""
        def below(file_path: Path) -> bool:
            return file_path[:len(path)] == path

        ids = []
        for record_id, flight in self._busy.items():
            try:
                now_at = self._store.get(record_id).path
            except KeyError:
                now_at = flight.record.path
            if below(flight.record.path) or below(now_at):
                ids.append(record_id)
        async with trio.open_nursery() as nursery:
            for record_id in ids:
                nursery.start_soon(self.settle, record_id)

    def written(self, record: StagedFile, end: int) -> None:
        """``record`` was just written up to ``end`` (its early upload may start or go on)."""
        self.early.written(record, end)

    async def cancel(self, record_id: int) -> None:
        """Forget the record's upload (it was deleted or replaced locally); one in flight ends first."""
        self.early.abandon(record_id)
        self._due.pop(record_id, None)
        await self.settle(record_id)
        self._due.pop(record_id, None)
        self._clean.pop(record_id, None)  # after the settle: the upload's _finish may have added it
        self._troubles.pop(record_id, None)
        self._wake_waiters(record_id, None)

    def _waiting(self) -> list[StagedFile]:
        """Records that will be uploaded without anyone asking (the drain waits for these)."""
        return [record for record in self._store.records()
                if record.state in ("pending", "uploading") and not self.local_only(record)]

    def pending(self) -> int:
        return len(self._waiting())

    # --------------------------------------------------------------- service

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The queue's service loop: start due uploads as workers allow."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            await nursery.start(self.early.run)
            for record in self._store.records():  # recovered from the journal: due at once
                if record.state == "held" and "held_errno" in record.meta:
                    # Refused by the portal last time; conditions may have changed (quota…).  Records
                    # held by the journal's recovery (possibly mixed content) stay held for a person.
                    try:
                        record = await self._store.update(record.id, state="pending")
                    except OSError as exc:  # stays held; the next mount tries again
                        log.error("%s stays on hold: %s", "/".join(record.path), exc)
                        continue
                self.schedule(record, delay=0)
            task_status.started()
            while True:
                self._wake = trio.Event()
                now = trio.current_time()
                next_due = math.inf
                ready = []
                for record_id, due in self._due.items():
                    if record_id in self._busy:
                        continue
                    if self._writers.get(record_id) and not self._waiters.get(record_id):
                        continue  # open for writing: unhold() wakes us
                    if due <= now:
                        ready.append(record_id)
                    else:
                        next_due = min(next_due, due)
                for record_id in ready:
                    await self._limit.acquire()
                    if record_id not in self._due or record_id in self._busy:  # changed while we waited
                        self._limit.release()
                        continue
                    del self._due[record_id]
                    self._start(nursery, record_id)
                if not ready:
                    with trio.move_on_at(next_due):
                        await self._wake.wait()

    def _start(self, nursery: trio.Nursery, record_id: int) -> None:
        try:
            record = self._store.get(record_id)
        except KeyError:
            self._limit.release()
            self._wake_waiters(record_id, None)
            return
        flight = _InFlight(record, trio.CancelScope())
        self._busy[record_id] = flight
        nursery.start_soon(self._run_one, flight)

    async def _run_one(self, flight: _InFlight) -> None:
        record_id = flight.record.id
        # Whatever this upload decides, the stream is the queue's from here on, to finish or cut off.
        flight.early = self.early.take(record_id)
        try:
            with flight.scope:
                try:
                    await self._upload(flight)
                except Exception as exc:  # noqa: BLE001 - one file's trouble must never end the queue
                    self._retry_later(flight.record, exc)
                else:
                    self._troubles.pop(record_id, None)
        finally:
            if flight.early is not None:  # not finished: a conflict, nothing to send, a failure
                flight.early.abandon()
            del self._busy[record_id]
            flight.done.set()
            self._limit.release()
            self._wake.set()

    async def drain(self, *, report: Callable[[int, int], None] | None = None, every: float = 5.0) -> None:
        """Return once nothing is pending; ``report(count, bytes)`` now and then meanwhile."""
        for record in self._waiting():
            if record.state == "pending":
                self._due[record.id] = min(self._due.get(record.id, math.inf), trio.current_time())
        self._wake.set()
        while True:
            waiting = self._waiting()
            if not waiting:
                return
            if report is not None:
                report(len(waiting), sum(r.size for r in waiting))
            with trio.move_on_after(every):
                while self.pending():
                    await trio.sleep(0.05)

    # --------------------------------------------------------------- one file

    async def _upload(self, flight: _InFlight) -> None:
        record = flight.record
        # "uploading" here is a stale mark: this is the only upload of the record in flight
        if record.state not in ("pending", "uploading") or self.local_only(record):
            self._wake_waiters(record.id, _refusal(record) if record.state == "held" else None)
            return
        if self._already_uploaded(record):
            try:
                entry = self._clean.get(record.id) or await self._backend.stat(record.path)
            except BackendError:
                entry = None
            with trio.CancelScope(shield=True):
                await self._drop_uploaded(record, entry)
            return
        try:
            record = await self._store.update(record.id, state="uploading")
            record, known = await self._adopt_donor(record)
            target, conflict, remote = await self._target(record, known)
            if target is None:  # the portal already has exactly this content: ``remote``
                assert remote is not None
                entry = remote
            else:
                entry = await self._send(flight, record, target)
        except ContentChanged:
            await self._back_to_pending(record, None)
            return
        except KeyError:  # discarded meanwhile (deleted locally)
            self._wake_waiters(record.id, None)
            return
        except Transient as exc:
            await self._back_to_pending(record, exc)
            return
        except BackendError as exc:
            # Refused, or the version the edit was based on is gone from the portal (the
            # unchanged parts can no longer be read): keep it for a person to decide.
            await self._hold(record, exc)
            return
        except OSError as exc:  # the staging area's (a full disk): held with its errno
            await self._hold(record, exc)
            return
        except Exception as exc:  # a bug must cost this upload, never the mount
            log.exception("upload of %s failed unexpectedly", "/".join(record.path))
            await self._hold(record, exc)
            return
        except BaseException:
            with trio.CancelScope(shield=True):
                try:
                    await self._back_to_pending(self._store.get(record.id), None, reschedule=False)
                except KeyError:
                    pass
                except OSError as exc:  # the stale "uploading" mark is tolerated
                    log.error("upload of %s: cannot mark it pending again: %s", "/".join(record.path), exc)
            raise
        if conflict:
            when = time.time()
            log.warning("%s changed on the portal since it was opened here; the local version was saved as %s",
                        "/".join(record.path), "/".join(entry.path))
            self.conflicts.append({"path": "/".join(record.path), "conflict_path": "/".join(entry.path), "when": when})
            self._listener.conflicted(record, entry)
        await self._finish(record, entry, conflict=conflict)

    async def _send(self, flight: _InFlight, record: StagedFile, target: Path) -> RemoteEntry:
        """Upload ``record`` to ``target``: by finishing its early upload when it has one that
        went there (not renamed since, not a conflict copy), else, or if that fails, the ordinary way."""
        early = flight.early
        if early is not None and early.path == target:
            try:
                entry = await early.finish(record)
            except EarlyUploadFailed as exc:
                log.info("%s: the upload begun while it was written failed (%s); sending it whole",
                         "/".join(record.path), exc)
            else:
                flight.early = None
                return entry
        if early is not None:
            early.abandon()  # before the upload, which may need its connection slot
            flight.early = None
        return await self._backend.upload(target, self._source(flight, record), record.size)

    def _source(self, flight: _InFlight, record: StagedFile) -> Callable[[], AsyncIterator[bytes]]:
        fetch = self._fetch_base(record)

        async def stream() -> AsyncIterator[bytes]:
            flight.sent = 0
            if self._store.get(record.id).generation != record.generation:
                raise ContentChanged("written since the upload was planned")  # its size is stale
            async for chunk in self._store.content(record.id, fetch, chunk=UPLOAD_CHUNK):
                flight.sent += len(chunk)
                yield chunk

        return stream

    async def _finish(self, record: StagedFile, entry: RemoteEntry, *, conflict: bool) -> None:
        with trio.CancelScope(shield=True):
            self.uploaded_count += 1
            self.uploaded_bytes += record.size
            try:
                now = self._store.get(record.id)
            except KeyError:
                self._wake_waiters(record.id, None)
                return
            if conflict:
                # The local content is safe in the conflict copy; the record is done with.
                await self._store.discard(record.id)
                self._listener.uploaded(now, entry, finished=True)
                self._wake_waiters(record.id, None)
                return
            unchanged = now.generation == record.generation
            if unchanged and not self._writers.get(record.id):
                await self._drop_uploaded(now, entry)
                return
            # Still open for writing after an fsync (sqlite, git), or written again while the
            # upload ran: keep the staged copy, now based on the version just uploaded, so the
            # next write needs no download.  If unchanged, ``UPLOADED`` says so (durably, for a
            # crash before the close): at its close it is dropped without another upload; the
            # next commit clears the mark.
            now = await self._store.update(record.id, state="pending", object_id=entry.object_id,
                                           base_version=entry.version, base_size=entry.size, attempts=0,
                                           last_error=None,
                                           meta={**now.meta, UPLOADED: entry.version} if unchanged else None)
            self._listener.uploaded(now, entry, finished=False)
            if unchanged:
                self._clean[record.id] = entry
                self._wake_waiters(record.id, None)
            else:
                self.schedule(now)

    async def _drop_uploaded(self, record: StagedFile, entry: RemoteEntry | None) -> None:
        """The portal has exactly this content (``entry``, if we know it): the staged copy is done with."""
        self._clean.pop(record.id, None)
        if entry is not None:
            self._listener.uploaded(record, entry, finished=True)
        else:
            self._listener.forgotten(record)
        await self._store.discard(record.id, durable=False)  # if this is lost, the content check adopts it
        self._wake_waiters(record.id, None)

    async def _back_to_pending(self, record: StagedFile, error: Exception | None, *, reschedule: bool = True) -> None:
        with trio.CancelScope(shield=True):
            attempts = record.attempts + 1 if error is not None else record.attempts
            try:
                record = await self._store.update(record.id, state="pending", attempts=attempts,
                                                  last_error=str(error) if error else None)
            except KeyError:
                self._wake_waiters(record.id, None)
                return
        if error is not None:
            backoff = _backoff(attempts)
            log.warning("upload of %s failed (%s); retrying in %.0f s", "/".join(record.path), error, backoff)
            self._note_error(f"upload of {'/'.join(record.path)}: {error}")
            if reschedule:
                self.schedule(record, delay=backoff)
        elif reschedule:
            self.schedule(record)

    async def _hold(self, record: StagedFile, error: Exception) -> None:
        """Keep the file for a person to decide, with the errno ``error`` stands for; if the
        staging area cannot note that either, it stays pending and is tried again later."""
        what = f"upload of {'/'.join(record.path)}"
        code = errno_for(error)
        message = f"{type(error).__name__}: {error}"
        how = "refused" if isinstance(error, BackendError) else "failed"
        log.error("%s %s: %s; kept locally (portalfs status)", what, how, error)
        self._note_error(f"{what} {how}: {error}")
        unnoted = None
        with trio.CancelScope(shield=True):
            try:
                await self._store.update(record.id, state="held", last_error=message,
                                         meta={**record.meta, "held_errno": str(code)})
            except KeyError:
                pass
            except OSError as exc:
                unnoted = exc
        self._wake_waiters(record.id, VfsError(code, message))
        if unnoted is not None:
            self._retry_later(record, unnoted)

    def _retry_later(self, record: StagedFile, error: Exception) -> None:
        """The staging area failed a step of ``record``'s upload (or a bug did): the record is as
        the store last noted it (pending, or a stale ``uploading``); try it again after a back-off."""
        what = f"upload of {'/'.join(record.path)}"
        self._wake_waiters(record.id, VfsError(errno_for(error), f"{what}: {error}"))
        try:
            now = self._store.get(record.id)
        except KeyError:
            log.error("%s: %s", what, error, exc_info=None if isinstance(error, OSError) else error)
            return
        self._troubles[record.id] += 1
        backoff = _backoff(now.attempts + self._troubles[record.id])
        log.error("%s: %s; retrying in %.0f s", what, error, backoff,
                  exc_info=None if isinstance(error, OSError) else error)  # a bug: its traceback
        self._note_error(f"{what}: {error}")
        if now.state in ("pending", "uploading") and not self.local_only(now):  # "uploading": stale
            self._due[record.id] = trio.current_time() + backoff
            self._wake.set()

    def _note_error(self, message: str) -> None:
        self.errors.append({"when": time.time(), "message": message})

    def _wake_waiters(self, record_id: int, error: VfsError | None) -> None:
        for waiter in self._waiters.pop(record_id, []):
            waiter.error = error
            waiter.done.set()

    # ---------------------------------------------------------- target checks

    async def _adopt_donor(self, record: StagedFile) -> tuple[StagedFile, RemoteEntry | None]:
        """Bring back the file this new one replaces, so the upload is a new version of it; and
        the portal's entry at the record's path, if that was learned on the way."""
        donor = saves.donor_of(record)
        if donor is None or record.object_id is not None:
            return record, None
        aside = not donor.deleted and donor.path != record.path  # renamed aside, not deleted
        if (aside and not self.exclusions.matches(donor.path[-1])) or not self._listener.may_reclaim(donor):
            # Renamed to an ordinary name (kept deliberately, not a backup of this save), or
            # in use here (edited or open under its other name): it keeps its identity.
            return await self._store.update(record.id, meta=saves.without_donor(record.meta)), None
        try:
            if aside:
                await self._listener.keep_backup(donor)
            entry = await saves.bring_back(self._backend, donor, record.path)
        except (BackendError, VfsError) as exc:
            log.info("%s: cannot bring back %s (%s); uploading it as a new file",
                     "/".join(record.path), "/".join(donor.path), exc)
            return await self._store.update(record.id, meta=saves.without_donor(record.meta)), None
        record = await self._store.update(record.id, object_id=entry.object_id, base_version=entry.version,
                                          base_size=entry.size, meta=saves.without_donor(record.meta))
        self._listener.reclaimed(donor, record)
        return record, entry

    async def _target(self, record: StagedFile,
                      known: RemoteEntry | None = None) -> tuple[Path | None, bool, RemoteEntry | None]:
        """Where to upload, and what the portal has at the record's path (None: nothing):
        (the record's path, False, …), (a conflict copy, True, …), or (None, False, entry) when
        the portal already holds this very content there.  ``known``: that entry, just learned."""
        try:
            remote = known if known is not None else await self._backend.stat(record.path)
        except NotFound:
            if record.object_id is not None:
                log.warning("%s was deleted on the portal meanwhile; uploading the local version as a new file",
                            "/".join(record.path))
            return record.path, False, None
        if not remote.is_dir and remote.object_id == record.object_id and remote.version == record.base_version:
            return record.path, False, remote
        if not remote.is_dir and await self._holds_our_content(remote, record):
            return None, False, remote
        names = await self._names_near(record.path)
        return (*record.path[:-1], conflict_name(record.path[-1], time.time(), names)), True, remote

    async def _holds_our_content(self, remote: RemoteEntry, record: StagedFile) -> bool:
        """Is ``remote`` byte for byte the staged content (our upload, confirmed before a crash)?"""
        if remote.size != record.size:
            return False
        offset = 0
        fetch = self._fetch_base(record)
        try:
            async for chunk in self._store.content(record.id, fetch, chunk=COMPARE_CHUNK):
                theirs = await self._backend.read(remote, offset, len(chunk))
                if theirs[:len(chunk)] != chunk:
                    return False
                offset += len(chunk)
        except BackendError:
            return False
        return True

    async def _names_near(self, path: Path) -> set[str]:
        return {entry.name for entry in await list_all(self._backend, path[:-1])}

    # ------------------------------------------------------------------ status

    def status(self) -> dict[str, object]:
        now = time.time()
        pending = []
        for record in self._store.records():
            state = "local" if self.local_only(record) else record.state
            pending.append({"path": "/".join(record.path), "size": record.size, "age": max(0.0, now - record.dirty_since),
                            "state": state, "attempts": record.attempts, "last_error": record.last_error})
        in_flight = [{"path": "/".join(f.record.path), "size": f.record.size, "sent": f.progress}
                     for f in self._busy.values()] + self.early.status()
        return {"pending": pending, "in_flight": in_flight, "uploaded": self.uploaded_count,
                "bytes_uploaded": self.uploaded_bytes}


def _refusal(record: StagedFile) -> VfsError:
    """What an fsync of a held record reports: the errno it was held with."""
    try:
        code = int(record.meta["held_errno"])
    except (KeyError, ValueError):  # held by the journal's recovery (possibly mixed content)
        code = errno_for(None)
    return VfsError(code, record.last_error or "upload on hold")
