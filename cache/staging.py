"""Durable staging of files being written, for whole-file upload later.

The problem: the portal takes a file only whole, yet ``close()`` and
``fsync()`` must not wait for the network, and an acknowledged ``close()``
must survive ``kill -9`` and power loss until the upload is done. So every
file being written is staged here: bytes in a local data file, a record in a
journal. The filesystem above decides everything else (when to upload, what
a conflict is, what a name is); this module only keeps bytes and records.

A staged file is a *lazy* copy of its remote base version. Nothing is
fetched until needed: a read of untouched regions goes to the base through
the caller's ``fetch_base`` and is not stored (read-only access never grows
local disk use); a write that covers part of a block first fills that block
from the base — only that block; blocks a write covers whole are never
fetched, nor is anything past the base's end or below a truncation
(``staginglayout`` has the arithmetic). ``content()`` streams the whole file
for upload, fetching the still-missing blocks on the way without storing
them, so disk use never exceeds one staged copy.

Durability contract:

* ``commit`` fsyncs the data file (and, once, its directory), then writes the
  record — size, mtime, the present-blocks bitmap, state — in one SQLite
  transaction with ``synchronous=FULL``. When it returns, that snapshot
  survives ``kill -9`` and power loss.
* A small file written wholly here (at most ``inline_max`` bytes) is
  committed *inline*: its content goes into the journal transaction and the
  data file is not fsynced — one fsync per ``close()`` instead of three.
  Recovery rebuilds the data file from the journal.
* Writes in between go to the page cache. A crash before the next commit
  brings back exactly the committed snapshot: blocks made present after the
  commit and bytes appended past it are dropped, a shrink after it is undone
  (the data file keeps the committed length until the next commit).
* Except for one case: committed blocks are overwritten *in place* (copy-on-
  write would cost up to twice the disk for a file rewritten in full). So
  before the first write after a commit that would overwrite a committed
  block, the record is durably flagged ``rewriting`` (one journal
  transaction per commit cycle, not per write); a crash while flagged brings
  the record back ``held``, with ``last_error`` saying its content may mix
  the committed version with later writes — never silently ``pending``.
* Records never committed are dropped at the next open; records left
  ``open`` or ``uploading`` become ``pending``; records whose data file is
  missing or short become ``held`` with ``last_error`` (``stagingjournal``).

Concurrency (one trio thread; disk and SQLite I/O in worker threads):

* Each record has a lock for its content (``stagedfile`` says what it
  guards). Reads fetch base bytes *without* it and then check the record's
  ``generation``: if the file changed meanwhile they plan again under the
  lock. So a slow base fetch does not hold up other readers of the file.
* ``_journal_lock`` serialises use of the one SQLite connection and keeps
  bookkeeping changes (``update``) in the same order on disk and in memory.
  Lock order: a record's lock, then the journal lock.
* Disk and journal changes run shielded from cancellation: a cancelled call
  never leaves the disk and the in-memory record disagreeing. Base fetches
  (network) stay cancellable; they come before any disk change.
* ``_usage`` and ``_reserved`` (the byte budget) change only on the trio
  thread, in synchronous stretches.

Exceptions (``fetch_base``'s own pass through unchanged)::

    Exception
    ├── KeyError                    no such record (or it was discarded)
    ├── ValueError                  negative offset/size, unknown state
    ├── OSError(ENOSPC)             ``max_bytes`` reached or the disk is full;
    │                               nothing committed is lost
    ├── OSError(EIO)                committed data found missing or short
    ├── ContentChanged              the file changed while ``content()`` streamed it
    ├── flights.IncompleteFetch     ``fetch_base`` returned less than asked
    ├── CacheDirectoryError   directory foreign, in use, or journal unusable
    └── trio.ClosedResourceError    the store was closed
"""

from __future__ import annotations

import errno
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from types import EllipsisType
from typing import TypeVar

import trio

from . import stagingdata
from .blockmap import BlockMap
from .flights import IncompleteFetch
from .private_dir import open_off_loop
from .stagedfile import (
    BaseFetch,
    ChangeWatch,
    ContentChanged,
    Record,
    StagedFile,
    check_state,
    record_from_row,
)
from .stagingjournal import Journal, JournalRow, Recovered, open_journal
from .staginglayout import Layout, Segment, Source

__all__ = ["BaseFetch", "ChangeWatch", "ContentChanged", "StagedFile", "StagingStore", "open_staging_store"]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: Files up to this size, all written locally, are committed into the journal
#: itself: one fsync per ``close()`` instead of three (module docstring).
INLINE_MAX = 64 << 10


async def _fetch(fetch_base: BaseFetch, start: int, end: int) -> bytes:
    data = await fetch_base(start, end - start)
    if len(data) < end - start:
        raise IncompleteFetch(f"base version returned {len(data)} bytes at offset {start}, "
                              f"expected {end - start}")
    return bytes(data[:end - start])


def _path_tuple(path: Iterable[str]) -> tuple[str, ...]:
    # A bare string would silently become a tuple of characters.
    if isinstance(path, (str, bytes)):
        raise TypeError(f"path must be a sequence of names, not {type(path).__name__}")
    return tuple(path)


def _meta_dict(meta: dict[str, str]) -> dict[str, str]:
    # Keys and values are stored as text, whatever a caller passed.
    return {str(k): str(v) for k, v in meta.items()}


def _full(message: str) -> OSError:
    return OSError(errno.ENOSPC, message)


class StagingStore:
    """Staged files in one directory; made by ``open_staging_store``."""

    def __init__(self, journal: Journal, recovered: Iterable[Recovered], *, block_size: int,
                 max_bytes: int | None, clock: Callable[[], float],
                 inline_max: int = INLINE_MAX) -> None:
        self._root = journal.root
        self._journal = journal
        self._journal_lock = trio.Lock()
        self._block_size = block_size
        self._max_bytes = max_bytes
        self._clock = clock
        self._inline_max = inline_max
        self._records: dict[int, Record] = {}
        self._usage = 0
        self._reserved = 0  # charge promised to writes whose disk I/O is under way
        self._closed = False
        for item in recovered:
            record = record_from_row(item)
            self._records[record.id] = record
            self._usage += record.layout.charge()

    # -- queries --------------------------------------------------------------

    def records(self) -> list[StagedFile]:
        """Every record, oldest first."""
        self._check_open()
        return [record.snapshot() for record in self._records.values()]

    def get(self, id: int) -> StagedFile:
        return self._record(id).snapshot()

    def usage(self) -> int:
        """Bytes of staged data on disk (whole blocks, the last one of a file to its end)."""
        return self._usage

    # -- content --------------------------------------------------------------

    async def create(self, path: Iterable[str], *, object_id: str | None = None,
                     base_version: str | None = None, base_size: int = 0,
                     truncate: bool = False, mtime: float | None = None) -> StagedFile:
        """A new record in state ``open`` whose content is the base (or empty).

        With ``truncate=True`` the content starts empty and never reads the
        base; ``base_version`` and ``base_size`` are still kept as given (the
        caller may want them to detect a remote change). Not durable until the
        first ``commit``.
        """
        self._check_open()
        if base_size < 0:
            raise ValueError(f"base_size must not be negative, got {base_size}")
        path = _path_tuple(path)
        now = self._clock()
        size = 0 if truncate else base_size
        row = JournalRow(id=0, path=tuple(path), object_id=object_id,
                         base_version=base_version, base_size=base_size,
                         block_size=self._block_size, size=size,
                         mtime=now if mtime is None else mtime, dirty_since=now,
                         base_limit=size, blocks=b"", committed=False, rewriting=False,
                         state="open", attempts=0, last_error=None, meta={})
        with trio.CancelScope(shield=True):  # never a row without a record
            record_id = await self._journal_call(self._journal.insert, row)
        record = Record(record_id, row.path, object_id, base_version, base_size, "open", 0,
                        None, {}, row.mtime, now, Layout(self._block_size, size, size),
                        committed=False, dir_synced=False, committed_present=BlockMap())
        self._records[record_id] = record
        return record.snapshot()

    async def read(self, id: int, offset: int, length: int, fetch_base: BaseFetch, *,
                   watch: ChangeWatch | None = None) -> bytes:
        """Up to ``length`` bytes of the content at ``offset`` (fewer at the end); ``watch``
        (from :meth:`watch`) then covers them."""
        if offset < 0 or length < 0:
            raise ValueError(f"negative offset or length: {offset}, {length}")
        data, _ = await self._read(self._record(id), offset, length, fetch_base, watch)
        return data

    def watch(self, id: int) -> ChangeWatch:
        """A watch of ``id``'s content from now on; it lives as long as the caller keeps it."""
        watch = ChangeWatch()
        self._record(id).watches.add(watch)
        return watch

    async def _read(self, record: Record, offset: int, length: int,
                    fetch_base: BaseFetch, watch: ChangeWatch | None = None) -> tuple[bytes, int]:
        """The bytes and the generation they belong to."""
        generation = record.generation
        plan = record.layout.plan_read(offset, length)
        fetched = await self._fetch_segments(plan, fetch_base)
        if generation == record.generation and all(s.source is not Source.FILE for s in plan):
            data = self._assemble(plan, fetched, [])
        else:
            async with record.lock:
                self._check_alive(record)
                if generation != record.generation:
                    # Changed while we fetched: plan again; under the lock it cannot change again.
                    generation = record.generation
                    plan = record.layout.plan_read(offset, length)
                    fetched = await self._fetch_segments(plan, fetch_base)
                data = await self._assemble_with_file(record, plan, fetched)
        if watch is not None:  # still the content of ``generation``: no await since
            watch.covered = max(watch.covered, offset + len(data))
        return data, generation

    @staticmethod
    async def _fetch_segments(plan: list[Segment], fetch_base: BaseFetch) -> list[bytes]:
        return [await _fetch(fetch_base, s.start, s.end) for s in plan
                if s.source is Source.BASE]

    async def _assemble_with_file(self, record: Record, plan: list[Segment],
                                  fetched: list[bytes]) -> bytes:
        """The bytes of ``plan``, its file ranges read from the data file (in a worker
        thread); the caller holds the record's lock."""
        ranges = [(s.start, s.end) for s in plan if s.source is Source.FILE]
        from_file = []
        if ranges:
            from_file = await trio.to_thread.run_sync(
                stagingdata.read_ranges, self._data_path(record), ranges)
        return self._assemble(plan, fetched, from_file)

    @staticmethod
    def _assemble(plan: list[Segment], fetched: list[bytes], from_file: Sequence[bytes | bytearray]) -> bytes:
        base, files = iter(fetched), iter(from_file)
        parts = [next(base) if s.source is Source.BASE
                 else next(files) if s.source is Source.FILE
                 else bytes(s.end - s.start) for s in plan]
        return b"".join(parts)

    async def write(self, id: int, offset: int, data: bytes | bytearray | memoryview,
                    fetch_base: BaseFetch) -> int:
        """Write ``data`` at ``offset`` (past the end: the gap reads as zeros)."""
        if offset < 0:
            raise ValueError(f"negative offset: {offset}")
        record = self._record(id)
        if not data:
            return 0
        async with record.lock:
            self._check_alive(record)
            layout = record.layout
            plan = layout.plan_write(offset, len(data))
            before = layout.charge()
            reserved = self._reserve(layout.charge_after_write(plan) - before)
            try:
                # Cancellable: nothing has touched the disk yet.
                fetched = [await _fetch(fetch_base, start, end) for start, end in plan.fetches]
                pieces = plan.pieces(data, fetched)
                with trio.CancelScope(shield=True):
                    if layout.overwrites(plan.ranges, record.committed_present):
                        await self._flag_rewriting(record)
                    try:
                        await trio.to_thread.run_sync(stagingdata.write_pieces,
                                                      self._data_path(record), pieces,
                                                      layout.file_len)
                    except BaseException:
                        layout.apply_failed_write(plan)
                        raise
                layout.apply_write(plan)
            finally:
                self._reserved -= reserved
                self._usage += layout.charge() - before
            self._changed(record, offset)
        return len(data)

    async def truncate(self, id: int, size: int, fetch_base: BaseFetch) -> None:
        """Shrink, or grow with zeros. (``fetch_base`` is never needed by this layout:
        the bytes a shrink cuts off are zeros if the file grows again.)"""
        if size < 0:
            raise ValueError(f"negative size: {size}")
        record = self._record(id)
        async with record.lock:
            self._check_alive(record)
            layout = record.layout
            if size == layout.size:
                return  # no change (and a content() in progress need not restart)
            changed_from = min(size, layout.size)
            plan = layout.plan_truncate(size)
            before = layout.charge()
            reserved = self._reserve(layout.charge_after_truncate(plan) - before)
            try:
                with trio.CancelScope(shield=True):
                    path = self._data_path(record)
                    if plan.zero is not None:
                        start, end = plan.zero
                        if layout.overwrites([plan.zero], record.committed_present):
                            await self._flag_rewriting(record)
                        await trio.to_thread.run_sync(stagingdata.write_pieces, path,
                                                      [(start, bytes(end - start))],
                                                      layout.file_len)
                    elif plan.cut_to is not None:
                        await trio.to_thread.run_sync(stagingdata.cut_file, path, plan.cut_to)
                layout.apply_truncate(plan)
            finally:
                self._reserved -= reserved
                self._usage += layout.charge() - before
            self._changed(record, changed_from)

    async def set_mtime(self, id: int, mtime: float) -> None:
        """Set the modification time (durable at the next ``commit``, like a write)."""
        record = self._record(id)
        async with record.lock:
            self._check_alive(record)
            record.mtime = mtime
            record.dirty_since = self._clock()

    async def _flag_rewriting(self, record: Record) -> None:
        """Durably flag that committed blocks are about to change (module docstring)."""
        if not record.rewriting:
            await self._journal_call(self._journal.mark_rewriting, record.id)
            record.rewriting = True

    async def _journal_call(self, function: Callable[..., _T], *args: object) -> _T:
        """Run one journal method in a worker thread, one at a time, on an open journal.

        Callers shield it: a journal change must not happen on disk but be
        forgotten in memory because the caller was cancelled.
        """
        async with self._journal_lock:
            self._check_open()  # the store may have closed while we waited
            return await trio.to_thread.run_sync(function, *args)

    def _changed(self, record: Record, offset: int) -> None:
        record.mtime = record.dirty_since = self._clock()
        record.changed_at(offset)

    async def commit(self, id: int, *, state: str = "pending", meta: dict[str, str] | None = None) -> StagedFile:
        """Make the current content durable and set ``state`` (and ``meta``, replacing
        it, when given) in one journal transaction; returns the record."""
        check_state(state)
        if meta is not None:
            meta = _meta_dict(meta)
        record = self._record(id)
        async with record.lock:
            self._check_alive(record)
            layout = record.layout
            path = self._data_path(record)
            with trio.CancelScope(shield=True):
                inline = await self._inline_content(record)
                if inline is None:
                    synced_dir = await trio.to_thread.run_sync(self._sync, path, record.dir_synced)
                    record.dir_synced = record.dir_synced or synced_dir
                await self._journal_call(functools.partial(
                    self._journal.save_content, record.id, size=layout.size,
                    mtime=record.mtime, dirty_since=record.dirty_since,
                    base_limit=layout.base_limit, blocks=layout.present.to_bytes(),
                    state=state, inline=inline, meta=meta))
                record.state = state
                if meta is not None:
                    record.meta = meta
                record.committed = True
                record.rewriting = False
                # An inline snapshot lives in the journal: nothing in the data file is precious.
                record.committed_present = BlockMap() if inline is not None else layout.present.copy()
                layout.committed_len = layout.required_len()
                if layout.file_len > layout.committed_len:
                    # Stale tail past what the snapshot needs: give the space back.
                    before = layout.charge()
                    try:
                        await trio.to_thread.run_sync(stagingdata.cut_file, path,
                                                      layout.committed_len)
                    except OSError as exc:
                        log.warning("staging: cannot shorten %s: %s", path, exc)
                    else:
                        layout.cut(layout.committed_len)
                        self._usage += layout.charge() - before
            return record.snapshot()

    async def _inline_content(self, record: Record) -> bytes | None:
        """The whole content of a small, wholly local file (to commit it in the journal
        with one fsync), or None to commit the data file instead."""
        layout = record.layout
        if layout.size > self._inline_max or layout.missing_bytes():
            return None
        return await self._assemble_with_file(record, layout.plan_read(0, layout.size), [])

    @staticmethod
    def _sync(path: Path, dir_synced: bool) -> bool:
        """Worker thread: fsync the data file, and its directory the first time."""
        exists = stagingdata.sync_file(path)
        if exists and not dir_synced:
            stagingdata.sync_dir(path.parent)
            return True
        return False

    async def content(self, id: int, fetch_base: BaseFetch,
                      chunk: int = 1 << 20) -> AsyncIterator[bytes]:
        """The whole content in order, ``chunk`` bytes at a time, for an upload.

        Missing blocks come through ``fetch_base`` and are not stored. Raises
        ``ContentChanged`` if the file is written, truncated or discarded while
        this runs: what was streamed so far is no version of the file.
        """
        if chunk <= 0:
            raise ValueError(f"chunk must be positive, got {chunk}")
        record = self._record(id)
        generation, size = record.generation, record.layout.size
        position = 0
        while position < size:
            try:
                data, seen = await self._read(record, position, min(chunk, size - position),
                                              fetch_base)
            except KeyError:
                raise ContentChanged(f"staged file {id} was discarded") from None
            if seen != generation:
                raise ContentChanged(f"staged file {id} changed during content()")
            yield data
            position += len(data)

    # -- bookkeeping ----------------------------------------------------------

    async def update(self, id: int, *, path: Iterable[str] | None = None,
                     state: str | None = None, attempts: int | None = None,
                     last_error: str | None | EllipsisType = ...,
                     meta: dict[str, str] | None = None,
                     object_id: str | None | EllipsisType = ...,
                     base_version: str | None | EllipsisType = ...,
                     base_size: int | EllipsisType = ...) -> StagedFile:
        """Change bookkeeping fields durably (at once, not at the next commit).

        ``None`` leaves ``path``/``state``/``attempts``/``meta`` alone; for the
        fields that may be ``None``, ``...`` (the default) leaves them alone.
        ``meta`` replaces the whole dict. Changing the base changes no content:
        the new base must hold the same bytes wherever the content still reads
        the base (``from_base``), e.g. the version just uploaded from it.
        """
        fields: dict[str, object] = {}
        if path is not None:
            fields["path"] = _path_tuple(path)
        if state is not None:
            check_state(state)
            fields["state"] = state
        if attempts is not None:
            if attempts < 0:
                raise ValueError(f"attempts must not be negative, got {attempts}")
            fields["attempts"] = attempts
        if meta is not None:
            fields["meta"] = _meta_dict(meta)
        if base_size is not ... and base_size < 0:
            raise ValueError(f"base_size must not be negative, got {base_size}")
        for name, value in (("last_error", last_error), ("object_id", object_id),
                            ("base_version", base_version), ("base_size", base_size)):
            if value is not ...:
                fields[name] = value
        record = self._record(id)
        with trio.CancelScope(shield=True):  # disk and memory must not disagree
            async with self._journal_lock:
                # Under the journal lock, so changes land in memory in disk order.
                self._check_alive(record)
                await trio.to_thread.run_sync(self._journal.save_fields, record.id, fields)
                for name, value in fields.items():
                    setattr(record, name, value)
        return record.snapshot()

    async def discard(self, id: int, *, durable: bool = True) -> None:
        """Remove the record and its data (e.g. after the upload).  ``durable=False``
        skips the journal's fsync: for records whose content is safe elsewhere."""
        record = self._record(id)
        async with record.lock:
            self._check_alive(record)
            with trio.CancelScope(shield=True):
                await self._journal_call(functools.partial(self._journal.delete, record.id, durable=durable))
                record.discarded = True
                record.changed_at(0)  # a content() in progress, and any watch, must notice
                del self._records[record.id]
                self._usage -= record.layout.charge()
                try:
                    await trio.to_thread.run_sync(stagingdata.remove_file,
                                                  self._data_path(record))
                except OSError as exc:  # the next open removes files without a record
                    log.warning("staging: cannot remove data of record %d: %s", record.id, exc)

    # -- helpers --------------------------------------------------------------

    def _record(self, id: int) -> Record:
        self._check_open()
        try:
            return self._records[id]
        except KeyError:
            raise KeyError(f"no staged file with id {id}") from None

    def _check_alive(self, record: Record) -> None:
        self._check_open()
        if record.discarded:
            raise KeyError(f"staged file {record.id} was discarded")

    def _check_open(self) -> None:
        if self._closed:
            raise trio.ClosedResourceError("the staging store is closed")

    def _data_path(self, record: Record) -> Path:
        return stagingdata.data_path(self._root, record.id)

    def _reserve(self, delta: int) -> int:
        """Claim ``delta`` more bytes of ``max_bytes`` or raise ``ENOSPC``; returns the claim."""
        if delta <= 0:
            return 0
        if self._max_bytes is not None and \
                self._usage + self._reserved + delta > self._max_bytes:
            raise _full(f"staging area is full ({self._usage} of {self._max_bytes} bytes used, "
                        f"{delta} more needed)")
        self._reserved += delta
        return delta


@asynccontextmanager
async def open_staging_store(directory: Path, *, block_size: int = 1 << 20,
                             max_bytes: int | None = None,
                             clock: Callable[[], float] = time.time,
                             inline_max: int = INLINE_MAX) -> AsyncIterator[StagingStore]:
    """Open (creating, locking and recovering) the staging area in ``directory``.

    ``block_size`` applies to files created from now on; recovered files keep
    the block size they were staged with. ``clock`` gives wall-clock times for
    ``mtime`` and ``dirty_since``. Files of at most ``inline_max`` bytes, all
    written locally, are committed inline in the journal (one fsync, not three);
    0 commits every file through its data file.
    """
    if block_size <= 0:
        raise ValueError(f"block_size must be positive, got {block_size}")
    if max_bytes is not None and max_bytes < 0:
        raise ValueError(f"max_bytes must not be negative, got {max_bytes}")
    journal, recovered = await open_off_loop(lambda: open_journal(Path(directory)), lambda opened: opened[0].close())
    store: StagingStore | None = None
    try:
        store = StagingStore(journal, recovered, block_size=block_size, max_bytes=max_bytes,
                             clock=clock, inline_max=inline_max)
        yield store
    finally:
        with trio.CancelScope(shield=True):
            if store is None:
                await trio.to_thread.run_sync(journal.close)
            else:
                store._closed = True
                # A journal call in flight (another task's) finishes before we close under it.
                async with store._journal_lock:
                    await trio.to_thread.run_sync(journal.close)
