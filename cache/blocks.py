"""The block cache: reads of object versions served from memory, disk or one
shared fetch, with read-ahead for sequential readers.

The problem: the filesystem asks for byte ranges of remote object versions
and must get exactly those bytes, fast when they are cached, with as few and
as large remote requests as possible when they are not, without the cache
ever holding a whole large object or serving a byte of another version.

A read walks the tiers in order:

1. memory (``memory.MemoryTier``): synchronous, no await;
2. disk (``disk.DiskTier``), one worker-thread hop for all the read's blocks
   that have a file; hits are promoted to memory;
3. flights (``flights.FlightTable``): blocks some fetch is already bringing
   are joined; the rest are grouped into runs of consecutive blocks, cut into
   pieces of about ``fetch_size`` and fetched in parallel (at most
   ``parallel_fetches`` in the air across the cache).

Steps 3 and the read-ahead planning happen in one synchronous stretch after
the last await of step 2, so two readers cannot both decide to fetch the same
block: the first registers a flight, the second finds it. Memory is checked
once more in that stretch because blocks may have landed while step 2 was at
the disk.

The reader assembles its answer from the payloads it got (from a tier or
straight from the flight), never by re-reading the memory tier afterwards,
so a tiny memory budget or a concurrent ``forget()`` cannot make a read fail.

Fetched blocks go into memory first, then the flight's task queues them for
disk after the waiters are woken: a slow disk delays no reader directly, it
only slows new fetches once its write queue is full.

Read-ahead (``readahead.ReadStream`` decides the window) is started after the
read's own fetches, as background flights that only take free fetch slots.
Across files, ``fetch_together`` brings many small objects in one request
(its caller decides when: the cache only sees versions, not folders); a
reader that finds one of them withdrawn from such a group reads again.

Exceptions: a fetch's own exception propagates unchanged to every reader
waiting on it; ``flights.IncompleteFetch`` if the source returned less than
the object's size promises; ``trio.ClosedResourceError`` for reads on (or
waiting while closing) a closed cache; ``ValueError`` for a negative offset
or length. ``CacheDirectoryError`` from ``open_block_cache`` if the
cache directory belongs to someone else or is in use by another process.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager

import trio

from .config import CacheConfig
from .disk import DiskTier, open_disk_tier
from .flights import Blocks, FetchMany, Flight, FlightTable
from .keys import BlockKey, Fetch, ObjectKey, block_count, block_key, block_length
from .memory import MemoryTier
from .readahead import ReadStream
from .stats import CacheStatistics, Counters


#: Objects asked for in one group fetch at most (bounds the size of the request itself).
MAX_GROUP = 1000

#: Objects and bytes one disk-tier group loads at most: its first reader waits for all of
#: them, and a slow disk (a cold cache on a spinning or network home) must not make that long.
MAX_LOCAL_GROUP = 128
LOCAL_GROUP_BYTES = 4 << 20


class BlockCache:
    """Block reads over a memory tier, an optional disk tier and shared fetches.

    Build it with ``open_block_cache``. Fields (trio thread only, no lock):
    ``_memory``, ``_disk`` and ``_flights`` keep their own state (see their
    classes); ``_counters`` is shared with them; ``_closed`` is set once on exit.
    """

    def __init__(self, config: CacheConfig, counters: Counters, disk: DiskTier | None,
                 nursery: trio.Nursery) -> None:
        self._config = config
        self._counters = counters
        self._memory = MemoryTier(config.memory_bytes, counters)
        self._disk = disk
        self._flights = FlightTable(nursery, config, counters, self._keep, self._persist)
        self._closed = False

    @property
    def config(self) -> CacheConfig:
        return self._config

    def stream(self) -> ReadStream:
        """A new read-pattern tracker; use one per open file handle."""
        return ReadStream()

    async def read(self, key: ObjectKey, offset: int, length: int, fetch: Fetch,
                   stream: ReadStream | None = None) -> bytes:
        """Exactly the bytes ``[offset, min(offset + length, key.size))`` of ``key``.

        ``b""`` at or after the end. ``fetch`` is used for whatever is not
        cached (and for read-ahead, if ``stream`` shows a sequential reader).
        """
        if offset < 0 or length < 0:
            raise ValueError(f"offset and length must not be negative ({offset}, {length})")
        if self._closed:
            raise trio.ClosedResourceError("the block cache is closed")
        end = min(offset + length, key.size)
        if offset >= end:
            await trio.lowlevel.checkpoint()
            return b""
        bs = self._config.block_size
        first, last = offset // bs, (end - 1) // bs
        got: dict[int, bytes] = {}
        missing: list[int] = []
        for index in range(first, last + 1):
            payload = self._memory.get(block_key(key, index))
            if payload is None:
                missing.append(index)
            else:
                got[index] = payload
        self._counters.memory_hits += len(got)
        self._counters.memory_misses += len(missing)
        awaited = False

        if missing and self._disk is not None:
            # Blocks in flight are joined below (a group may be loading them from disk right now).
            loaded = await self._disk.load_many(
                [(bk, block_length(key, i, bs)) for i in missing if self._flights.get(bk := block_key(key, i)) is None])
            awaited = True
            for bk, payload in loaded.items():
                self._memory.put(bk, payload)
                got[bk.index] = payload
            missing = [i for i in missing if i not in got]

        # -- synchronous from here until the waits (see the module docstring) --
        if self._closed:
            raise trio.ClosedResourceError("the block cache is closed")
        waits: list[tuple[int, Flight]] = []
        to_fetch: list[int] = []
        for index in missing:
            bk = block_key(key, index)
            payload = self._memory.get(bk)
            if payload is not None:
                got[index] = payload
            elif (flight := self._flights.get(bk)) is not None:
                waits.append((index, flight))
                self._counters.inflight_joins += 1
            else:
                to_fetch.append(index)
        for run_first, run_count in _pieces(to_fetch, self._config.fetch_blocks):
            flight = self._flights.start(key, run_first, run_count, fetch)
            waits.extend((i, flight) for i in range(run_first, run_first + run_count))
        if stream is not None:
            self._read_ahead(key, offset, end, fetch, stream)

        for index, flight in waits:
            await flight.wait()
            awaited = True
            if flight.withdrawn:  # a group fetch left it out: ask again, now on our own
                return await self.read(key, offset, length, fetch, stream)
            got[index] = flight.block(index)
        if not awaited:
            await trio.lowlevel.checkpoint()  # trio convention: every async call checkpoints
        return _assemble(got, first, last, offset, end, bs)

    def fetch_together(self, keys: Iterable[ObjectKey], fetch_many: FetchMany, *, budget: int | None = None) -> int:
        """Start fetching the small objects among ``keys`` with one ``fetch_many`` call.

        For a reader about to go through many small files: it joins their
        flights as it reads them.  Objects of one block only (not empty), not
        in memory and not in flight are taken, in order, until the next would
        pass ``budget`` bytes (at most ``group_fetch_bytes``, the default) or
        ``MAX_GROUP`` objects.  Those with a file in the disk tier are loaded
        from there, all in one worker-thread hop (a hop costs more than reading
        a small block file, and a reader would pay one per file), at most
        ``MAX_LOCAL_GROUP`` of them and ``LOCAL_GROUP_BYTES``; the rest are fetched.  Returns how many of ``keys`` were
        looked at (taken or skipped) before a limit, so a caller can resume
        after them.  Returns at once; nothing happens when the limit is 0.
        """
        if self._closed:
            raise trio.ClosedResourceError("the block cache is closed")
        ceiling = self._config.group_fetch_bytes
        budget = ceiling if budget is None else min(budget, ceiling)
        disk_budget = min(ceiling, LOCAL_GROUP_BYTES)
        taken: list[ObjectKey] = []
        on_disk: list[ObjectKey] = []
        looked = 0
        for key in keys:
            bk = block_key(key, 0)
            if (0 < key.size <= self._config.block_size and not self._memory.contains(bk)
                    and self._flights.get(bk) is None):
                if self._disk is not None and self._disk.contains(bk):
                    if key.size > disk_budget or len(on_disk) == MAX_LOCAL_GROUP:
                        break
                    disk_budget -= key.size
                    on_disk.append(key)
                else:
                    if key.size > budget or len(taken) == MAX_GROUP:
                        break
                    budget -= key.size
                    taken.append(key)
            looked += 1
        if taken:
            self._flights.start_group(taken, fetch_many)
        if on_disk:
            self._flights.start_group(on_disk, self._load_many, local=True)
        return looked

    async def _load_many(self, keys: list[ObjectKey]) -> dict[ObjectKey, bytes]:
        assert self._disk is not None
        found = await self._disk.load_many([(block_key(key, 0), key.size) for key in keys])
        return {key: found[bk] for key in keys if (bk := block_key(key, 0)) in found}

    def _cached_or_coming(self, bk: BlockKey) -> bool:
        return (self._memory.contains(bk)
                or (self._disk is not None and self._disk.contains(bk))
                or self._flights.get(bk) is not None)

    def cached_bytes(self, key: ObjectKey) -> int:
        """How many bytes of this object version are cached, in either tier."""
        indices = self._memory.indices(key.object_id, key.version)
        if self._disk is not None:
            indices |= self._disk.indices(key.object_id, key.version)
        bs = self._config.block_size
        return sum(block_length(key, i, bs) for i in indices)

    def forget(self, object_id: str, keep_version: str | None = None) -> None:
        """Drop the cached blocks of every version of ``object_id`` but ``keep_version``.

        Fetches already in flight for a dropped version still complete and
        may cache their blocks; those can never be served for another
        version and age out under LRU.
        """
        self._memory.forget(object_id, keep_version)
        if self._disk is not None:
            self._disk.forget(object_id, keep_version)

    def statistics(self) -> CacheStatistics:
        """A snapshot of the counters and current sizes."""
        disk = self._disk
        return self._counters.snapshot(
            memory_bytes=self._memory.used_bytes,
            memory_blocks=self._memory.block_count,
            disk_bytes=disk.used_bytes if disk is not None else 0,
            disk_blocks=disk.block_count if disk is not None else 0,
        )

    # -- read-ahead ----------------------------------------------------------

    def _read_ahead(self, key: ObjectKey, offset: int, end: int, fetch: Fetch,
                    stream: ReadStream) -> None:
        config = self._config
        wanted = stream.observe(key, offset, end, config.block_size, config.readahead_limit,
                                config.sequential_slack)
        run: list[int] = []

        def launch() -> bool:
            if run:
                if self._flights.start_readahead(key, run[0], len(run), fetch) is None:
                    stream.planned(run[0])  # out of free slots: the next read resumes here
                    return False
                run.clear()
            return True

        for index in wanted:
            if self._cached_or_coming(block_key(key, index)):
                if not launch():
                    return
                continue
            run.append(index)
            if len(run) == config.fetch_blocks and not launch():
                return
        if (run and len(run) < config.fetch_blocks and wanted.stop < block_count(key.size, config.block_size)
                and stream.window >= 2 * config.fetch_size):
            # A full window that moved by less than one fetch: top it up once a
            # whole fetch is due, so a steady reader costs the portal one request
            # per fetch_size rather than one per block.
            stream.planned(run[0])
            return
        if launch():
            stream.planned(wanted.stop)

    # -- where fetched blocks go ---------------------------------------------

    def _keep(self, key: ObjectKey, blocks: Blocks) -> None:
        for index, payload in blocks.items():
            self._memory.put(block_key(key, index), payload)

    async def _persist(self, key: ObjectKey, blocks: Blocks) -> None:
        if self._disk is not None:
            for index, payload in blocks.items():
                await self._disk.store(block_key(key, index), payload)


def _pieces(indices: list[int], max_blocks: int) -> Iterator[tuple[int, int]]:
    """``(first, count)`` runs of consecutive ``indices``, at most ``max_blocks`` long."""
    i = 0
    while i < len(indices):
        start = i
        while (i + 1 < len(indices) and indices[i + 1] == indices[i] + 1
               and i + 1 - start < max_blocks):
            i += 1
        yield indices[start], i - start + 1
        i += 1


def _assemble(got: dict[int, bytes], first: int, last: int, offset: int, end: int,
              bs: int) -> bytes:
    if first == last:
        payload = got[first]
        start = offset - first * bs
        if start == 0 and end - offset == len(payload):
            return payload  # a whole-block read: hand out the cached object itself
        return payload[start:end - first * bs]
    parts: list[memoryview] = []
    for index in range(first, last + 1):
        view = memoryview(got[index])
        lo = max(offset, index * bs) - index * bs
        hi = min(end, (index + 1) * bs) - index * bs
        parts.append(view[lo:hi])
    return b"".join(parts)


@asynccontextmanager
async def open_block_cache(config: CacheConfig) -> AsyncIterator[BlockCache]:
    """A block cache for the duration of the ``async with``.

    Opens the disk tier (if ``config.disk_dir``), owns the nursery of
    fetches and read-ahead; on exit cancels the fetches, and on a clean exit
    lets fetched blocks and the disk tier's queue reach the disk before the
    index is closed.
    """
    counters = Counters()
    async with AsyncExitStack() as stack:
        disk = None
        if config.disk_dir is not None:
            disk = await stack.enter_async_context(open_disk_tier(config, counters))
        body_error: BaseException | None = None
        async with trio.open_nursery() as nursery:
            cache = BlockCache(config, counters, disk, nursery)
            try:
                yield cache
            except BaseException as exc:
                # Re-raised below, outside the nursery, so that the caller
                # gets its own exception back rather than wrapped in an
                # ExceptionGroup by a nursery it never asked for.
                body_error = exc
                cache._closed = True
                nursery.cancel_scope.cancel()
            else:
                # A clean exit: stop the network, but let flights that already
                # have their bytes hand them to the disk tier (a bounded amount
                # of local work) so that a remount finds them.
                cache._closed = True
                cache._flights.cancel_fetches()
        if body_error is not None:
            raise body_error
