"""Single-flight ranged fetches: one remote request per missing block, however
many readers want it.

The problem: a cold block wanted by N readers at once (the kernel issues
parallel reads, several processes open the same file, read-ahead runs ahead
of the reader) must cost one request, every waiter must see that request's
outcome, and a failure must leave nothing behind that a retry would trip on.

A ``Flight`` is one ranged fetch of ``count`` consecutive blocks. While it is
in the air each of its blocks maps to it in ``FlightTable._flights``, so a
reader that misses a block first looks for a flight to join.

Cancellation — the choice and why: a flight runs as a task in the cache's own
nursery, not in the reader that started it. A cancelled reader just stops
waiting; the fetch goes on for the others, and if there are none its blocks
are still cached (the kernel usually retries the same read right away). The
alternative, cancelling a fetch when its last waiter leaves, needs waiter
counting and throws away a half-transferred range to save at most one
``fetch_size`` of traffic. A fetch that hangs would hang its waiters too; the
backend's per-request timeout bounds it (the cache adds no timeout of its own
because it cannot know a sensible one for the link). When the cache closes,
fetches are cancelled and their waiters get ``trio.ClosedResourceError``; on
a clean close, blocks already fetched are still handed to the disk.

Failure: the fetch's exception is stored and re-raised in every waiter (each
raise starts from the original traceback so the tracebacks do not pile up),
the flight unregisters and nothing is cached, so the next read retries. A
fetch that returns fewer bytes than the object's size promises caches the
whole blocks it did get; waiters of the others get ``IncompleteFetch``.

Concurrency: ``parallel_fetches`` tokens of a ``CapacityLimiter`` bound the
fetches in the air. Foreground flights queue for a token; read-ahead takes
one only if it is free *now* and leaves the last one for foreground reads,
so read-ahead can never delay a reader behind a queue of speculative work.
A flight keeps its token after waking its waiters until its blocks are
queued for the disk: with a disk slower than the link, new fetches slow down
instead of fetched blocks piling up in memory. So the bytes held outside the
memory tier are bounded by ``parallel_fetches * fetch_size`` plus the disk
write queue.

Fetching together: a portal answers each request at a fixed cost far above
the bytes of a small file, so a reader working through a folder of small
files is better served by one request for many of them (``start_group``).
Each object (one block each) gets a flight of its own, so readers join them
exactly as they join ranged flights; one task fetches them all with one
token. The group is an optimisation, never a source of errors: whatever it
does not deliver whole, for whatever reason, is *withdrawn* (the waiter sees
``Flight.withdrawn`` and fetches that object the ordinary way).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from types import TracebackType

import trio

from .config import CacheConfig
from .keys import BlockKey, Fetch, ObjectKey, block_key, block_length
from .stats import Counters

log = logging.getLogger(__name__)

Blocks = dict[int, bytes]
"""Whole blocks of one object version, by block index."""

FetchMany = Callable[[list[ObjectKey]], Awaitable[dict[ObjectKey, bytes]]]
"""``fetch_many(keys)``: the whole content of some of ``keys`` (one request);
the ones left out are withdrawn, and an exception withdraws them all."""


class IncompleteFetch(Exception):
    """The source returned fewer bytes than the object's size promises."""


class Flight:
    """One ranged fetch in progress, shared by every reader of its blocks.

    Fields are written once by the flight's task before ``_done`` is set and
    only read by waiters after it, so they need no lock.
    """

    __slots__ = ("key", "first", "count", "fetch", "readahead", "withdrawn", "_done", "_blocks",
                 "_error", "_traceback")

    def __init__(self, key: ObjectKey, first: int, count: int, fetch: Fetch | None,
                 readahead: bool) -> None:
        self.key = key
        self.first = first
        self.count = count
        self.fetch = fetch
        self.readahead = readahead
        #: set (with ``_done``) when a group fetch left this object out: fetch it yourself
        self.withdrawn = False
        self._done = trio.Event()
        self._blocks: Blocks = {}
        self._error: BaseException | None = None
        self._traceback: TracebackType | None = None

    async def wait(self) -> None:
        """Wait for the outcome; raises the fetch's exception if it failed."""
        await self._done.wait()
        if self._error is not None:
            raise self._error.with_traceback(self._traceback)

    def block(self, index: int) -> bytes:
        """The payload of block ``index`` after a successful ``wait()``."""
        try:
            return self._blocks[index]
        except KeyError:
            raise IncompleteFetch(
                f"{self.key.object_id}@{self.key.version}: the source ended before block "
                f"{index} although the object has {self.key.size} bytes") from None

    def _succeed(self, blocks: Blocks) -> None:
        self._blocks = blocks
        self._done.set()

    def _withdraw(self) -> None:
        self.withdrawn = True
        self._done.set()

    def _fail(self, error: BaseException) -> None:
        self._error = error
        self._traceback = error.__traceback__
        self._done.set()


class FlightTable:
    """The flights in the air and the limiter that bounds them.

    Fields (trio thread only, no lock): ``_flights`` maps every block of
    every flight still fetching to it; ``_limiter`` holds one token per
    flight that is fetching or handing its blocks to the disk;
    ``_fetching`` holds the cancel scopes of the fetches (not of the disk
    hand-off), so that a clean close can cancel just those; ``_closed``
    refuses new flights after that.
    """

    def __init__(self, nursery: trio.Nursery, config: CacheConfig, counters: Counters,
                 keep: Callable[[ObjectKey, Blocks], None],
                 persist: Callable[[ObjectKey, Blocks], Awaitable[None]]) -> None:
        self._nursery = nursery
        self._block_size = config.block_size
        self._counters = counters
        self._keep = keep
        self._persist = persist
        self._flights: dict[BlockKey, Flight] = {}
        self._fetching: set[trio.CancelScope] = set()
        self._closed = False
        self._limiter = trio.CapacityLimiter(config.parallel_fetches)
        # Read-ahead leaves one token to foreground reads, if there is more than one.
        self._readahead_reserve = 1 if config.parallel_fetches > 1 else 0

    def get(self, key: BlockKey) -> Flight | None:
        """The flight fetching ``key``, if any."""
        return self._flights.get(key)

    def start(self, key: ObjectKey, first: int, count: int, fetch: Fetch) -> Flight:
        """Fetch blocks ``first .. first+count-1`` for a reader (queues for a token)."""
        flight = Flight(key, first, count, fetch, False)
        try:
            self._limiter.acquire_on_behalf_of_nowait(flight)
            holding = True
        except trio.WouldBlock:
            holding = False
        self._launch(flight, holding)
        return flight

    def start_readahead(self, key: ObjectKey, first: int, count: int,
                        fetch: Fetch) -> Flight | None:
        """Like ``start`` for read-ahead, but only if a token is free now."""
        if self._limiter.available_tokens <= self._readahead_reserve:
            return None
        flight = Flight(key, first, count, fetch, True)
        self._limiter.acquire_on_behalf_of_nowait(flight)
        self._counters.readahead_fetches += 1
        self._counters.readahead_bytes += self._range(flight)[1]
        self._launch(flight, True)
        return flight

    def start_group(self, keys: list[ObjectKey], fetch_many: FetchMany, *, local: bool = False) -> None:
        """Fetch the single-block objects ``keys`` (none in flight) with one call.

        ``local``: ``fetch_many`` reads the disk tier, not the network, so the
        group takes no fetch token, counts as no fetch and stores nothing.
        """
        if self._closed:
            raise trio.ClosedResourceError("the block cache is closed")
        flights = [Flight(key, 0, 1, None, True) for key in keys]
        for flight in flights:
            self._flights[block_key(flight.key, 0)] = flight
        if not local:
            self._counters.group_fetches += 1
            self._counters.group_members += len(flights)
        self._nursery.start_soon(self._run_group, flights, fetch_many, local)

    def _launch(self, flight: Flight, holding: bool) -> None:
        if self._closed:
            if holding:
                self._limiter.release_on_behalf_of(flight)
            raise trio.ClosedResourceError("the block cache is closed")
        for index in range(flight.first, flight.first + flight.count):
            self._flights[block_key(flight.key, index)] = flight
        self._nursery.start_soon(self._run, flight, holding)

    def _range(self, flight: Flight) -> tuple[int, int]:
        offset = flight.first * self._block_size
        end = min((flight.first + flight.count) * self._block_size, flight.key.size)
        return offset, end - offset

    async def _run_group(self, flights: list[Flight], fetch_many: FetchMany, local: bool) -> None:
        delivered: list[tuple[ObjectKey, Blocks]] = []
        borrower = object()  # holds the group's one token
        holding = False
        fetching = trio.CancelScope()
        self._fetching.add(fetching)
        try:
            with fetching:
                if not local:
                    await self._limiter.acquire_on_behalf_of(borrower)
                    holding = True
                    self._counters.fetch_calls += 1
                try:
                    got = await fetch_many([flight.key for flight in flights])
                except Exception as exc:
                    self._counters.fetch_errors += not local
                    log.info("%s %d small objects together failed (%r); each will be fetched alone "
                             "when a reader asks for it", "loading" if local else "fetching", len(flights), exc)
                    got = {}
                for flight in flights:
                    self._unregister(flight)
                    data = got.get(flight.key)
                    if data is None or len(data) != flight.key.size:
                        flight._withdraw()
                        continue
                    blocks = {0: data}
                    self._keep(flight.key, blocks)
                    flight._succeed(blocks)
                    if not local:
                        self._counters.fetched_bytes += len(data)
                        delivered.append((flight.key, blocks))
            for key, blocks in delivered:
                await self._persist(key, blocks)
        finally:
            self._fetching.discard(fetching)
            if holding:
                self._limiter.release_on_behalf_of(borrower)
            for flight in flights:
                if not flight._done.is_set():  # cancelled (cache closing) or keep() failed
                    self._unregister(flight)
                    flight._fail(trio.ClosedResourceError("the block cache was closed"))

    async def _run(self, flight: Flight, holding: bool) -> None:
        assert flight.fetch is not None  # only group members have none
        blocks: Blocks = {}
        offset, length = self._range(flight)
        fetching = trio.CancelScope()
        self._fetching.add(fetching)
        try:
            with fetching:
                if not holding:
                    await self._limiter.acquire_on_behalf_of(flight)
                    holding = True
                self._counters.fetch_calls += 1
                try:
                    data = await flight.fetch(offset, length)
                except Exception as exc:
                    self._counters.fetch_errors += 1
                    # A reader gets the error itself; a failed read-ahead only
                    # matters to the log (the reader will fetch and see it).
                    log.log(logging.DEBUG if flight.readahead else logging.INFO,
                            "fetch of %s@%s [%d+%d] failed: %r", flight.key.object_id,
                            flight.key.version, offset, length, exc)
                    self._unregister(flight)
                    flight._fail(exc)
                else:
                    self._counters.fetched_bytes += len(data)
                    blocks = self._split(flight.key, flight.first, data)
                    if any(i not in blocks
                           for i in range(flight.first, flight.first + flight.count)):
                        self._counters.incomplete_fetches += 1
                    # Into the memory tier in the same step as unregistering:
                    # at no moment is a fetched block in neither place.
                    self._keep(flight.key, blocks)
                    self._unregister(flight)
                    flight._succeed(blocks)
            if blocks:
                # Waiters are served; now the disk. The token is still held, so
                # a disk slower than the link slows new fetches down instead
                # of piling fetched blocks up in memory.
                await self._persist(flight.key, blocks)
        finally:
            self._fetching.discard(fetching)
            if holding:
                self._limiter.release_on_behalf_of(flight)
            if not flight._done.is_set():  # cancelled (cache closing) or keep() failed
                self._unregister(flight)
                flight._fail(trio.ClosedResourceError("the block cache was closed"))

    def cancel_fetches(self) -> None:
        """Cancel every fetch in the air; flights already storing carry on.

        Used for a clean close: what has been fetched still reaches the disk.
        """
        self._closed = True
        for scope in self._fetching:
            scope.cancel()

    def _unregister(self, flight: Flight) -> None:
        for index in range(flight.first, flight.first + flight.count):
            bk = block_key(flight.key, index)
            if self._flights.get(bk) is flight:
                del self._flights[bk]

    def _split(self, key: ObjectKey, first: int, data: bytes) -> Blocks:
        """Every whole block in ``data``, which starts at block ``first``.

        Bytes beyond the object's size and a trailing partial block are
        dropped: a block is only ever cached complete.
        """
        bs = self._block_size
        view = memoryview(data)
        blocks: Blocks = {}
        index, start = first, 0
        while True:
            length = block_length(key, index, bs)
            if length == 0 or start + length > len(data):
                break
            if start == 0 and length == len(data) and isinstance(data, bytes):
                blocks[index] = data  # the common exact single-block fetch: no copy
            else:
                blocks[index] = bytes(view[start:start + length])
            index += 1
            start += bs
        return blocks
