"""The disk tier: block files bounded by bytes, LRU, surviving restarts.

The problem: keep far more blocks than RAM allows, across restarts, without
ever blocking the trio loop on disk I/O, without ever serving a damaged
file, and without letting a full disk fail a read.

Shape:

* An in-memory *mirror* (``_entries``, an ``OrderedDict`` in LRU order) is
  the truth inside the process: membership, sizes, the byte budget and every
  eviction decision are answered from it synchronously, which is what lets
  ``cached_bytes()`` and ``forget()`` be plain methods.
* A single *writer task* applies the mirror's changes to disk in order:
  block files and packs (``blockfile``) and the SQLite index (``diskindex``),
  batched, in worker threads (``diskjobs``). One writer means stores and deletes of the same block
  can never be reordered, and the index connection is never used by two
  threads at once.
* Reads (``load_many``) go straight to worker threads: they need no index,
  only the file, whose checksum is verified every time.

Subtleties:

* A stored block enters the mirror *pending* when it is queued and becomes
  *ready* only after its file is in place; only ready blocks are read. If it
  is evicted or forgotten while pending, its delete is queued behind its
  store, so the writer writes and then deletes it: no leaked file.
* The budget is reserved when a block is queued (evicting LRU blocks first),
  so the directory does not exceed ``disk_bytes`` of block files and packs
  (but for a moment, see the packs below).
* At most ``disk_write_queue`` whole blocks' worth of bytes wait for the
  writer; ``store()`` waits beyond that.  Bytes, not blocks, so that the
  small blocks of a folder fetched together (hundreds of KiB-sized files)
  go into a few packs rather than one per few blocks.  It is awaited by
  background fetch tasks, never by a reader, so a slow disk slows
  read-ahead, not reads.
* A write that fails (``ENOSPC``, ``EDQUOT``, ``EIO``…) drops only that block
  from the tier — it stays in memory — and is logged once per errno. An
  index error (SQLite cannot write either) is logged once; the files stay
  usable in this process and the next start reconciles files and rows.
* LRU order survives restarts: every hit stamps the entry, and the stamps are
  saved with the next batch, or ``index_flush_interval`` seconds after the
  first unsaved one. A crash loses at most that much recency, never data.
* A block whose file is missing, short or fails its checksum is dropped and
  counted in ``corrupt_blocks``; the caller refetches it.
* Small blocks of a batch are written together into one pack
  (``blockfile``).  A pack's members are removed one by one (``forget``
  must not take a whole folder's files with one of them), but its bytes stay
  on disk until its last member is gone, so the budget counts a pack whole
  from its writing to its death (``_packs``: bytes, members alive).
  Eviction for space therefore takes a victim's whole pack: one member at a
  time would free nothing until the last, and could empty every other pack
  of its cold members first.  A block dropped before its batch is taken is
  not written at all; one dropped while its batch is being written is
  written dead: its bytes join its pack's, its row is deleted behind it,
  and if that takes the tier over budget the batch's end evicts until it
  fits.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from . import blockfile
from .config import CacheConfig
from .diskindex import DiskIndex, IndexRow, open_index
from .diskjobs import Delete, DeletePack, Job, Store, Written, apply_jobs
from .keys import BlockKey
from .private_dir import open_off_loop
from .stats import Counters

log = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class _Entry:
    """One block of the mirror; compared by identity to detect replacement.

    ``file_size`` is what it takes on disk (as a file, or in its pack);
    ``pack``/``offset`` say where a written small block is.
    """

    name: str
    file_size: int
    used: int
    ready: bool
    packed: bool = False
    pack: str | None = None
    offset: int = 0


@dataclass(slots=True)
class _Pack:
    """A pack on disk: its bytes (dead members included) and its members alive."""

    size: int
    members: set[BlockKey] = field(default_factory=set)


class DiskTier:
    """Block files under one directory.

    Fields, all touched only from the trio thread (no lock):
    ``_entries`` (mirror, LRU order), ``_objects`` (object_id -> version ->
    indices, ready or pending), ``_used`` (bytes reserved by the mirror),
    ``_stamp`` (last LRU stamp), ``_touched`` (stamps not yet saved),
    ``_jobs`` and ``_wakeup`` (the writer's queue). ``_index`` is used only
    by the writer's worker thread, one batch at a time.
    """

    def __init__(self, config: CacheConfig, counters: Counters, index: DiskIndex,
                 rows: list[IndexRow], packs: dict[str, int]) -> None:
        self._root = index.root
        self._budget = config.disk_bytes
        self._flush_interval = config.index_flush_interval
        self._counters = counters
        self._index = index
        self._entries: OrderedDict[BlockKey, _Entry] = OrderedDict()
        self._objects: dict[str, dict[str, set[int]]] = {}
        self._packs = {pack: _Pack(size) for pack, size in packs.items()}
        self._used = sum(packs.values())
        self._stamp = 0
        for row in rows:  # least recently used first
            entry = _Entry(row.name, row.file_size, row.used, ready=True, packed=row.pack is not None,
                           pack=row.pack, offset=row.offset)
            self._add(row.key, entry)
            if row.pack is None:
                self._used += row.file_size
            else:
                self._packs[row.pack].members.add(row.key)
            self._stamp = max(self._stamp, row.used)
        self._touched: dict[BlockKey, int] = {}
        self._jobs: list[Job] = []
        self._wakeup = trio.Event()
        self._queue_limit = config.disk_write_queue * config.block_size
        self._queued = 0  # payload bytes in _jobs (and in the batch being written)
        self._drained = trio.Event()  # set (and replaced) whenever a batch is written
        self._warned: set[int | str] = set()
        # A budget cut between runs takes effect at once.
        self._evict_until_fits(0)

    # -- queries -------------------------------------------------------------

    def contains(self, key: BlockKey) -> bool:
        """Whether a ready file holds ``key`` (no LRU effect)."""
        entry = self._entries.get(key)
        return entry is not None and entry.ready

    def indices(self, object_id: str, version: str) -> set[int]:
        """The block indices of one object version with a ready file."""
        indices = self._objects.get(object_id, {}).get(version, ())
        return {i for i in indices if self._entries[BlockKey(object_id, version, i)].ready}

    @property
    def used_bytes(self) -> int:
        return self._used

    @property
    def block_count(self) -> int:
        return len(self._entries)

    # -- reads ---------------------------------------------------------------

    async def load_many(self, wanted: list[tuple[BlockKey, int]]) -> dict[BlockKey, bytes]:
        """Verified payloads of those ``(key, expected length)`` on disk.

        Missing or damaged blocks are simply absent from the result.
        """
        todo: list[tuple[BlockKey, _Entry, int]] = []
        for key, expected in wanted:
            entry = self._entries.get(key)
            if entry is not None and entry.ready:
                self._touch(key, entry)
                todo.append((key, entry, expected))
        found: dict[BlockKey, bytes] = {}
        if todo:
            results = await trio.to_thread.run_sync(self._read_files, todo)
            for (key, entry, _), result in zip(todo, results):
                if isinstance(result, bytes):
                    found[key] = result
                elif self._entries.get(key) is entry:
                    # Still the same file we read: it is damaged or gone.
                    # (Otherwise it was evicted or replaced meanwhile.)
                    log.warning("cache: dropping block file %s: %s", entry.name, result)
                    self._counters.corrupt_blocks += 1
                    self._remove(key)
        self._counters.disk_hits += len(found)
        self._counters.disk_misses += len(wanted) - len(found)
        return found

    def _read_files(self, todo: list[tuple[BlockKey, _Entry, int]]) -> list[bytes | Exception]:
        """Worker thread: read and verify each block (each pack opened once)."""
        results: list[bytes | Exception] = []
        packs = blockfile.PackReader(self._root)
        try:
            for _, entry, expected in todo:
                try:
                    if entry.pack is None:
                        results.append(blockfile.read_block_file(self._root, entry.name, expected))
                    else:
                        results.append(packs.read(entry.pack, entry.offset, entry.name, expected))
                except (OSError, blockfile.CorruptBlock) as exc:
                    results.append(exc)
        finally:
            packs.close()
        return results

    # -- changes -------------------------------------------------------------

    async def store(self, key: BlockKey, payload: bytes) -> None:
        """Queue ``payload`` to be written as ``key``; waits while the queue is full."""
        size = blockfile.stored_size(len(payload))
        if size > self._budget or key in self._entries:
            return
        while self._queued and self._queued + len(payload) > self._queue_limit:
            await self._drained.wait()
        if key in self._entries:  # stored by someone else while we waited
            return
        self._queued += len(payload)
        self._evict_until_fits(size)
        self._stamp += 1
        entry = _Entry(blockfile.block_name(key), size, self._stamp, ready=False,
                       packed=blockfile.is_packed(len(payload)))
        self._add(key, entry)
        self._used += size  # reserved until written, then the pack's or the file's
        self._jobs.append(Store(key, entry, payload))
        self._wakeup.set()

    def forget(self, object_id: str, keep_version: str | None = None) -> None:
        """Drop every version of ``object_id`` except ``keep_version``."""
        versions = self._objects.get(object_id, {})
        doomed = [BlockKey(object_id, version, index)
                  for version, indices in versions.items() if version != keep_version
                  for index in indices]
        for key in doomed:
            self._remove(key)

    def _evict_until_fits(self, size: int) -> None:
        while self._entries and self._used + size > self._budget:
            oldest, entry = next(iter(self._entries.items()))
            doomed = [oldest] if entry.pack is None else list(self._packs[entry.pack].members)
            for key in doomed:
                self._remove(key)
                self._counters.disk_evictions += 1

    def _touch(self, key: BlockKey, entry: _Entry) -> None:
        self._entries.move_to_end(key)
        self._stamp += 1
        entry.used = self._stamp
        if not self._touched:
            self._wakeup.set()  # the writer starts its flush timer
        self._touched[key] = self._stamp

    def _add(self, key: BlockKey, entry: _Entry) -> None:
        """Into the mirror; the caller accounts for its bytes."""
        self._entries[key] = entry
        self._objects.setdefault(key.object_id, {}).setdefault(key.version, set()).add(key.index)

    def _remove(self, key: BlockKey, *, queue_delete: bool = True) -> None:
        entry = self._entries.pop(key)
        if entry.pack is None:
            self._used -= entry.file_size  # a file, or a reservation not yet written
        else:
            self._member_gone(entry.pack, key)
        self._touched.pop(key, None)
        versions = self._objects[key.object_id]
        versions[key.version].discard(key.index)
        if not versions[key.version]:
            del versions[key.version]
            if not versions:
                del self._objects[key.object_id]
        if queue_delete:
            self._jobs.append(Delete(key, None if entry.packed else entry.name))
            self._wakeup.set()

    def _member_gone(self, pack: str, key: BlockKey) -> None:
        """Member ``key`` of ``pack`` is gone; the last one takes the pack with it."""
        self._packs[pack].members.discard(key)
        self._drop_pack_if_empty(pack)

    def _drop_pack_if_empty(self, pack: str) -> None:
        held = self._packs[pack]
        if not held.members:
            del self._packs[pack]
            self._used -= held.size
            self._jobs.append(DeletePack(pack))
            self._wakeup.set()

    # -- the writer ----------------------------------------------------------

    async def run_writer(self) -> None:
        """Apply queued changes to disk until cancelled."""
        while True:
            await self._wakeup.wait()
            if not self._jobs:
                # Woken by the first unsaved LRU stamp: let stamps gather for
                # a while; a real job ends the wait early.
                self._wakeup = trio.Event()
                with trio.move_on_after(self._flush_interval):
                    await self._wakeup.wait()
            self._wakeup = trio.Event()
            await self.write_batch()

    def has_work(self) -> bool:
        """Whether changes wait for the writer."""
        return bool(self._jobs or self._touched)

    async def write_batch(self) -> None:
        """Write everything queued so far (also used to drain at close)."""
        jobs: list[Job] = []
        for job in self._jobs:
            if isinstance(job, Store) and self._entries.get(job.key) is not job.entry:
                self._queued -= len(job.payload)  # dropped before it was written: nothing to write
            else:
                jobs.append(job)
        self._jobs = []
        touched, self._touched = self._touched, {}
        if not jobs and not touched:
            self._drained.set()
            self._drained = trio.Event()
            return
        # Shielded: the jobs are taken, so a cancellation (the writer stopped
        # at close) waits for the batch instead of dropping it before the
        # thread starts, and the index is never closed under a running thread.
        with trio.CancelScope(shield=True):
            outcomes, index_error = await trio.to_thread.run_sync(apply_jobs, self._root, self._index,
                                                                  jobs, touched)
        if index_error is not None:
            self._warn_once("index", "cache index cannot be updated (%s); "
                            "blocks stay usable until restart", index_error)
        written_packs: set[str] = set()
        for job, outcome in zip(jobs, outcomes):
            if not isinstance(job, Store):
                continue
            self._queued -= len(job.payload)
            current = self._entries.get(job.key) is job.entry
            if isinstance(outcome, Written):
                self._counters.disk_writes += 1
                if outcome.pack is not None:
                    written_packs.add(outcome.pack)
                    held = self._packs.setdefault(outcome.pack, _Pack(0))
                    held.size += job.entry.file_size
                    if current:
                        held.members.add(job.key)
                        job.entry.pack, job.entry.offset = outcome.pack, outcome.offset
                    else:
                        self._used += job.entry.file_size  # written dead: its bytes are the pack's now
                if current:
                    job.entry.ready = True
            else:
                self._counters.disk_write_errors += 1
                self._warn_once(outcome.errno or 0, "cache: cannot write block files (%s); "
                                "keeping such blocks in memory only", outcome)
                if current:
                    self._remove(job.key, queue_delete=False)
        for pack in written_packs:
            self._drop_pack_if_empty(pack)  # every member was gone before it was written?
        # Members written dead count until their pack dies, which may take
        # the tier over budget: evict until it fits again.
        self._evict_until_fits(0)
        self._drained.set()
        self._drained = trio.Event()

    def _warn_once(self, what: int | str, message: str, *args: object) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning(message, *args)


@asynccontextmanager
async def open_disk_tier(config: CacheConfig, counters: Counters) -> AsyncIterator[DiskTier]:
    """Open the tier in ``config.disk_dir``; on a clean exit, drain the queue."""
    assert config.disk_dir is not None
    root: Path = config.disk_dir
    index, rows, packs = await open_off_loop(lambda: open_index(root, config.block_size),
                                             lambda opened: opened[0].close())
    try:
        tier = DiskTier(config, counters, index, rows, packs)
        body_error: BaseException | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(tier.run_writer)
            try:
                yield tier
            except BaseException as exc:
                body_error = exc  # re-raised outside the nursery: not wrapped in a group
            nursery.cancel_scope.cancel()
        if body_error is not None:
            raise body_error
        # A clean exit: save what is still queued and the LRU order (twice at
        # most: the first batch may leave a pack whose members all died meanwhile).
        while tier.has_work():
            await tier.write_batch()
    finally:
        # Closing checkpoints the WAL, which is disk I/O: do it in a thread,
        # shielded because it is short and must happen however we leave.
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(index.close)

