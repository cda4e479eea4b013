"""A head start for large files: sending a file to the portal while it is still being written.

The problem.  The portal's upload needs the file's size before its first
byte, so the upload queue (:mod:`vfs.uploads`) sends a file only after its
last ``close()`` and a quiet period.  Copying a large file onto the mount then
takes the time to write it *plus* the time to send it, and the network sits
idle while the disk works.  A backend offering
:class:`~vfs.backends.base.StreamingUploads` can take a body whose length is
unknown, so a file that grows large by appending can be sent as it is
written, and the upload ends shortly after the file is closed.

The rule that keeps every promise of the queue: **an early upload is only
ever a head start, never a decision.**  It sends the staged bytes as they
arrive (gathered into :data:`SEND_BATCH` while the file is written, none
held longer than :data:`BATCH_WAIT`) but holds back the end of the body,
without which the portal keeps nothing.  Only when the queue itself uploads the file, after the same quiet
period, the same identity and conflict checks, and with the file still at the
path and in the content the stream sent, does it let the stream finish
(:meth:`EarlyUpload.finish`).  In every other case the stream is cut off and
the queue sends the file its ordinary way:

* the file was written below what was already sent, or truncated there
  (a :class:`~cache.ChangeWatch` on the staged file says so);
* it was renamed (a temp file renamed over the original: the save goes to
  the original's name, not the temp's), deleted, or is to be a conflict copy;
* the portal refused the stream, the session expired, nothing new arrived
  for :data:`IDLE_LIMIT` seconds while the file was open for writing (once
  it is closed the stream waits for the queue, however long its quiet
  period), or anything else went wrong.

Durability does not depend on any of it: the staged copy and its journal
record are what ``close()`` and ``fsync()`` promise, exactly as without it.

Which files: a file whose staged copy is all local (new, or truncated to 0),
once it reaches :data:`EARLY_MIN` bytes by appending, not excluded (lock and
temp files stay local) and not replacing a file that was just deleted or
renamed aside (that save must become a new version of the old file: the
queue brings it back first).  At most :data:`MAX_STREAMS` run at once.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable
from typing import cast

import trio

from cache import BaseFetch, ChangeWatch, ContentChanged, StagedFile, StagingStore
from vfs import saves
from vfs.backends.base import RemoteEntry, StreamingUploads, Unsupported

log = logging.getLogger("vfs.uploads")

#: A file streams once it has this many bytes (smaller ones are sent whole in little time).
EARLY_MIN = 16 << 20
#: Early uploads at once (each holds a connection and a sender of the transport).
MAX_STREAMS = 2
#: Seconds a stream may wait for new bytes before it is given up (a file left open, idle).
IDLE_LIMIT = 30.0
#: Bytes read from the staged copy per step.
READ_CHUNK = 4 << 20
#: Bytes a stream that has caught up waits for, while the file is written, before it reads back
#: again: every read is a locked trip to a worker thread, and a FUSE write brings 128 KiB–1 MiB.
SEND_BATCH = 2 << 20
#: Seconds written bytes wait for the rest of a batch at most: a slow writer's body still moves
#: (a proxy in front of a portal may cut off a request body that stays silent).
BATCH_WAIT = 1.0


class EarlyUploadFailed(Exception):
    """The early upload could not be finished; the queue sends the file its ordinary way."""


class EarlyUpload:
    """One stream of one staged file (see the module docstring)."""

    def __init__(self, record: StagedFile, store: StagingStore, fetch: BaseFetch) -> None:
        self.record_id = record.id
        self.path = record.path
        #: open for writing: a stream with nothing new for IDLE_LIMIT is given up (closed, it
        #: waits for the queue, however long its quiet period)
        self.writing = True
        self._store = store
        self._fetch = fetch
        self._watch: ChangeWatch = store.watch(record.id)
        #: bytes handed to the body so far
        self.sent = 0
        self._more = trio.Event()
        #: the file's end at which a write wakes the stream (0: any write does)
        self._wake_at = 0
        #: the snapshot the queue is uploading, once it asked the stream to finish
        self._final: StagedFile | None = None
        self._scope = trio.CancelScope()
        self._done = trio.Event()
        self._entry: RemoteEntry | None = None
        self._error: BaseException | None = None

    def more(self, end: int) -> None:
        """The file was written up to ``end``.  Wakes the stream only when that gives it what it
        waits for (its first new byte, or the rest of a batch) or breaks what it sent: a FUSE write
        brings 128 KiB–1 MiB, and a wake-up per write would mostly find too little to send."""
        self.writing = True
        if end >= self._wake_at or self._watch.broken:
            self._more.set()

    def closed(self) -> None:
        """The last writer closed the file: the stream sends what it held back for a batch, then
        waits for the queue, without a limit."""
        self.writing = False
        self._more.set()  # to wait again, that way

    @property
    def failed(self) -> bool:
        return self._done.is_set() and self._entry is None

    @property
    def error(self) -> BaseException | None:
        """Why the stream ended without the portal keeping the file (None: it did, or it runs)."""
        return self._error

    async def run(self, backend: StreamingUploads, *, new: bool) -> None:
        try:
            with self._scope:
                try:
                    self._entry = await backend.upload_streamed(self.path, self._content(), new=new)
                except Exception as exc:  # noqa: BLE001 - whatever it was, the queue falls back
                    self._error = exc
        finally:
            self._done.set()

    async def finish(self, record: StagedFile) -> RemoteEntry:
        """Send the rest of ``record`` (the queue's snapshot, at this stream's path), end the
        body, and return what the portal then has.  ContentChanged if the file changed
        meanwhile; EarlyUploadFailed if the stream cannot be finished."""
        self._final = record
        self._more.set()
        try:
            await self._done.wait()
        except BaseException:
            self.abandon()  # the queue's upload was cut short: so is the stream
            raise
        if self._entry is None:
            if isinstance(self._error, ContentChanged):
                raise self._error
            raise EarlyUploadFailed(str(self._error or "cancelled"))
        return self._entry

    def abandon(self) -> None:
        """Cut the stream off: the portal keeps nothing of it."""
        self._scope.cancel()

    async def _content(self) -> AsyncIterator[bytes]:
        """The staged bytes as they are written, in batches while the file is open; ends at the
        finishing snapshot's size."""
        last_sent = trio.current_time()
        while True:
            final = self._final
            if final is not None and self._store.get(self.record_id).generation != final.generation:
                raise ContentChanged("written since the upload was planned")
            end = final.size if final is not None else self._store.get(self.record_id).size
            unsent = end - self.sent
            batching = final is None and self.writing and trio.current_time() - last_sent < BATCH_WAIT
            if unsent >= (SEND_BATCH if batching else 1):
                data = await self._store.read(self.record_id, self.sent, min(READ_CHUNK, unsent),
                                              self._fetch, watch=self._watch)
                if not data or self._watch.broken:
                    raise EarlyUploadFailed("rewritten below what was already sent")
                self.sent += len(data)
                yield data
                last_sent = trio.current_time()
                continue
            if self._watch.broken:
                raise EarlyUploadFailed("rewritten below what was already sent")
            if final is not None:
                if self.sent != final.size:  # more was sent than the file has (cannot be: a shrink breaks the watch)
                    raise EarlyUploadFailed(f"{self.sent} bytes sent of a file of {final.size}")
                return
            self._more = trio.Event()
            self._wake_at = self.sent + (SEND_BATCH if unsent > 0 else 1)
            wait = IDLE_LIMIT if self.writing else math.inf
            if unsent > 0:  # a part of a batch: sent once BATCH_WAIT has passed, if no more comes
                wait = min(wait, max(0.0, last_sent + BATCH_WAIT - trio.current_time()))
            with trio.move_on_after(wait) as idle:
                await self._more.wait()
            if idle.cancelled_caught and unsent <= 0:
                raise EarlyUploadFailed(f"nothing new for {IDLE_LIMIT:.0f} s")


class EarlyUploads:
    """The early uploads of one mount; every call on the trio thread."""

    def __init__(self, backend: object, store: StagingStore, *, fetch_base: Callable[[StagedFile], BaseFetch],
                 local_only: Callable[[StagedFile], bool], minimum: int = EARLY_MIN) -> None:
        #: None: no early uploads (the backend has none, the portal refused them, or ``minimum`` is 0)
        # Asked of the method, not with isinstance: a runtime protocol check ignores methods a wrapper
        # forwards through __getattr__ (Python 3.12+), and a wrapped backend would lose its streaming.
        streams = callable(getattr(backend, "upload_streamed", None))
        self._backend = cast(StreamingUploads, backend) if streams and minimum > 0 else None
        self._store = store
        self._fetch_base = fetch_base
        self._local_only = local_only
        self._minimum = minimum
        self._running: dict[int, EarlyUpload] = {}
        #: records whose stream failed: not streamed again until the queue has uploaded them (a
        #: writer that goes back to patch a header would otherwise start over and over)
        self._given_up: set[int] = set()
        self._nursery: trio.Nursery | None = None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Host the streams until cancelled (then every stream still open is cut off)."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    def written(self, record: StagedFile, end: int) -> None:
        """``record`` was written up to ``end``: feed its stream, or start one if it qualifies."""
        running = self._running.get(record.id)
        if running is not None:
            running.more(end)
            return
        if (self._backend is None or self._nursery is None or len(self._running) >= MAX_STREAMS
                or record.id in self._given_up or end != record.size or record.size < self._minimum
                or record.from_base or not record.path or self._local_only(record)
                or saves.donor_of(record) is not None):
            return
        early = EarlyUpload(record, self._store, self._fetch_base(record))
        self._running[record.id] = early
        self._nursery.start_soon(self._stream, early, record.object_id is None)

    async def _stream(self, early: EarlyUpload, new: bool) -> None:
        assert self._backend is not None
        log.debug("%s: sending it while it is written", "/".join(early.path))
        await early.run(self._backend, new=new)
        if isinstance(early.error, Unsupported):
            log.info("%s; large files are sent after they are closed", early.error)
            self._backend = None
        elif early.error is not None:
            log.debug("%s: early upload given up: %s", "/".join(early.path), early.error)
        if self._running.get(early.record_id) is early and early.failed:
            del self._running[early.record_id]
            self._given_up.add(early.record_id)

    def closed(self, record_id: int) -> None:
        """No handle has the file open for writing any more: its stream waits for the queue."""
        running = self._running.get(record_id)
        if running is not None:
            running.closed()

    def streaming(self) -> int:
        """How many streams run."""
        return len(self._running)

    def take(self, record_id: int) -> EarlyUpload | None:
        """The stream of ``record_id`` for the queue's upload of it (it is the queue's from now on)."""
        self._given_up.discard(record_id)
        return self._running.pop(record_id, None)

    def abandon(self, record_id: int) -> None:
        """The file was deleted or replaced: cut its stream off."""
        self._given_up.discard(record_id)
        early = self._running.pop(record_id, None)
        if early is not None:
            early.abandon()

    def status(self) -> list[dict[str, object]]:
        """The streams, as ``portalfs status`` lists uploads in flight (``early``: still being written)."""
        streams: list[dict[str, object]] = []
        for early in self._running.values():
            try:
                size = self._store.get(early.record_id).size
            except KeyError:
                continue
            streams.append({"path": "/".join(early.path), "size": size, "sent": early.sent, "early": True})
        return streams
