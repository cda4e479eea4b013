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
  block files (``blockfile``) and the SQLite index (``diskindex``), batched,
  in worker threads. One writer means stores and deletes of the same block
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
  so the directory never exceeds ``disk_bytes`` of block files.
* At most ``disk_write_queue`` blocks wait for the writer; ``store()`` blocks
  beyond that. It is awaited by background fetch tasks, never by a reader,
  so a slow disk slows read-ahead, not reads.
* A write that fails (``ENOSPC``, ``EDQUOT``, ``EIO``…) drops only that block
  from the tier — it stays in memory — and is logged once per errno. An
  index error (SQLite cannot write either) is logged once; the files stay
  usable in this process and the next start reconciles files and rows.
* LRU order survives restarts: every hit stamps the entry, and the stamps are
  saved with the next batch, or ``index_flush_interval`` seconds after the
  first unsaved one. A crash loses at most that much recency, never data.
* A block whose file is missing, short or fails its checksum is dropped and
  counted in ``corrupt_blocks``; the caller refetches it.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from . import blockfile
from .config import CacheConfig
from .diskindex import DiskIndex, IndexRow, open_index
from .keys import BlockKey
from .private_dir import open_off_loop
from .stats import Counters

log = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class _Entry:
    """One block of the mirror; compared by identity to detect replacement."""

    name: str
    file_size: int
    used: int
    ready: bool


@dataclass(slots=True)
class _Store:
    """Writer job: write ``payload`` as the file of ``entry`` and insert its row."""

    key: BlockKey
    entry: _Entry
    payload: bytes


@dataclass(slots=True)
class _Delete:
    """Writer job: unlink a block file and delete its row."""

    key: BlockKey
    name: str


_Job = _Store | _Delete


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
                 rows: list[IndexRow]) -> None:
        self._root = index.root
        self._budget = config.disk_bytes
        self._flush_interval = config.index_flush_interval
        self._counters = counters
        self._index = index
        self._entries: OrderedDict[BlockKey, _Entry] = OrderedDict()
        self._objects: dict[str, dict[str, set[int]]] = {}
        self._used = 0
        self._stamp = 0
        for row in rows:  # least recently used first
            self._add(row.key, _Entry(row.name, row.file_size, row.used, ready=True))
            self._stamp = max(self._stamp, row.used)
        self._touched: dict[BlockKey, int] = {}
        self._jobs: list[_Job] = []
        self._wakeup = trio.Event()
        self._slots = trio.Semaphore(config.disk_write_queue)
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
        """Worker thread: read and verify each file."""
        results: list[bytes | Exception] = []
        for _, entry, expected in todo:
            try:
                results.append(blockfile.read_block_file(self._root, entry.name, expected))
            except (OSError, blockfile.CorruptBlock) as exc:
                results.append(exc)
        return results

    # -- changes -------------------------------------------------------------

    async def store(self, key: BlockKey, payload: bytes) -> None:
        """Queue ``payload`` to be written as ``key``; waits while the queue is full."""
        size = blockfile.file_size(len(payload))
        if size > self._budget or key in self._entries:
            return
        await self._slots.acquire()
        if key in self._entries:  # stored by someone else while we waited
            self._slots.release()
            return
        self._evict_until_fits(size)
        self._stamp += 1
        entry = _Entry(blockfile.block_name(key), size, self._stamp, ready=False)
        self._add(key, entry)
        self._jobs.append(_Store(key, entry, payload))
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
            oldest = next(iter(self._entries))
            self._remove(oldest)
            self._counters.disk_evictions += 1

    def _touch(self, key: BlockKey, entry: _Entry) -> None:
        self._entries.move_to_end(key)
        self._stamp += 1
        entry.used = self._stamp
        if not self._touched:
            self._wakeup.set()  # the writer starts its flush timer
        self._touched[key] = self._stamp

    def _add(self, key: BlockKey, entry: _Entry) -> None:
        self._entries[key] = entry
        self._used += entry.file_size
        self._objects.setdefault(key.object_id, {}).setdefault(key.version, set()).add(key.index)

    def _remove(self, key: BlockKey, *, queue_delete: bool = True) -> None:
        entry = self._entries.pop(key)
        self._used -= entry.file_size
        self._touched.pop(key, None)
        versions = self._objects[key.object_id]
        versions[key.version].discard(key.index)
        if not versions[key.version]:
            del versions[key.version]
            if not versions:
                del self._objects[key.object_id]
        if queue_delete:
            self._jobs.append(_Delete(key, entry.name))
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

    async def write_batch(self) -> None:
        """Write everything queued so far (also used to drain at close)."""
        jobs, self._jobs = self._jobs, []
        touched, self._touched = self._touched, {}
        if not jobs and not touched:
            return
        # Not abandonable: cancellation waits for the batch, so the index is
        # never closed under a running thread.
        outcomes, index_error = await trio.to_thread.run_sync(self._apply, jobs, touched)
        if index_error is not None:
            self._warn_once("index", "cache index cannot be updated (%s); "
                            "blocks stay usable until restart", index_error)
        for job, outcome in zip(jobs, outcomes):
            if not isinstance(job, _Store):
                continue
            self._slots.release()
            current = self._entries.get(job.key) is job.entry
            if outcome is None:
                self._counters.disk_writes += 1
                if current:
                    job.entry.ready = True
            else:
                self._counters.disk_write_errors += 1
                self._warn_once(outcome.errno or 0, "cache: cannot write block files (%s); "
                                "keeping such blocks in memory only", outcome)
                if current:
                    self._remove(job.key, queue_delete=False)

    def _apply(self, jobs: list[_Job], touched: dict[BlockKey, int]
               ) -> tuple[list[OSError | None], sqlite3.Error | None]:
        """Worker thread: files first, then one index transaction."""
        outcomes: list[OSError | None] = []
        for job in jobs:
            if isinstance(job, _Store):
                try:
                    blockfile.write_block_file(self._root, job.entry.name, job.payload)
                except OSError as exc:
                    outcomes.append(exc)
                else:
                    outcomes.append(None)
            else:
                try:
                    blockfile.remove_block_file(self._root, job.name)
                except OSError as exc:  # the next start's reconcile retries it
                    log.debug("cache: cannot delete block file %s: %s", job.name, exc)
                outcomes.append(None)
        index = self._index
        try:
            index.begin()
            for job, outcome in zip(jobs, outcomes):
                if isinstance(job, _Delete):
                    index.delete(job.key)
                elif outcome is None:
                    index.insert(IndexRow(job.key, job.entry.name, job.entry.file_size,
                                          job.entry.used))
            for key, used in touched.items():
                index.touch(key, used)
            index.commit()
        except sqlite3.Error as exc:
            index.rollback()
            return outcomes, exc
        return outcomes, None

    def _warn_once(self, what: int | str, message: str, *args: object) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning(message, *args)


@asynccontextmanager
async def open_disk_tier(config: CacheConfig, counters: Counters) -> AsyncIterator[DiskTier]:
    """Open the tier in ``config.disk_dir``; on a clean exit, drain the queue."""
    assert config.disk_dir is not None
    root: Path = config.disk_dir
    index, rows = await open_off_loop(lambda: open_index(root, config.block_size), lambda opened: opened[0].close())
    try:
        tier = DiskTier(config, counters, index, rows)
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
        # A clean exit: save what is still queued and the LRU order.
        await tier.write_batch()
    finally:
        # Closing checkpoints the WAL, which is disk I/O: do it in a thread,
        # shielded because it is short and must happen however we leave.
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(index.close)

