"""Counters of the block cache and the frozen snapshot ``statistics()`` returns.

Following trio's convention, ``statistics()`` returns an immutable snapshot
so that callers (tests, a ``portalfs stats`` command, benchmarks) can diff two
of them. Counting is per *block*, not per read: a read of three blocks of
which one was in memory counts one memory hit and two memory misses.

How the hit/miss counters relate, for the blocks that foreground reads need:

* ``memory_hits + memory_misses`` = blocks needed.
* ``disk_hits + disk_misses`` = the blocks looked up on disk: those a reader
  missed in memory and found no flight for, plus those a group of small
  objects (``fetch_together``) loaded ahead of their readers (``disk_*``
  stay 0 without a disk tier).
* Of the blocks found in neither tier, ``inflight_joins`` were already being
  fetched (by another reader or by read-ahead) and the rest were fetched.

The counters live in one mutable ``Counters`` object shared by the modules of
this package; it is only touched from the trio thread, so it needs no lock.
"""

from __future__ import annotations

from dataclasses import dataclass, fields


@dataclass(frozen=True, slots=True)
class CacheStatistics:
    """A snapshot of the cache's counters and current sizes."""

    memory_hits: int = 0
    memory_misses: int = 0
    disk_hits: int = 0
    disk_misses: int = 0
    inflight_joins: int = 0
    """Blocks a reader got by waiting on a fetch already in flight."""
    fetch_calls: int = 0
    fetched_bytes: int = 0
    fetch_errors: int = 0
    incomplete_fetches: int = 0
    """Fetches that returned fewer bytes than the object's size promised."""
    readahead_fetches: int = 0
    readahead_bytes: int = 0
    """Bytes requested by read-ahead fetches."""
    group_fetches: int = 0
    """Fetches of several small objects together (each also counts in ``fetch_calls``)."""
    group_members: int = 0
    """Objects asked for by those fetches."""
    memory_bytes: int = 0
    memory_blocks: int = 0
    memory_evictions: int = 0
    disk_bytes: int = 0
    """Bytes of block files on disk (headers included)."""
    disk_blocks: int = 0
    disk_evictions: int = 0
    disk_writes: int = 0
    disk_write_errors: int = 0
    """Blocks that could not be written (ENOSPC and the like) and stayed memory-only."""
    corrupt_blocks: int = 0
    """Block files found corrupt, truncated or missing; they were dropped and refetched."""


@dataclass(slots=True)
class Counters:
    """The monotonic counters; sizes are added by ``BlockCache.statistics()``."""

    memory_hits: int = 0
    memory_misses: int = 0
    disk_hits: int = 0
    disk_misses: int = 0
    inflight_joins: int = 0
    fetch_calls: int = 0
    fetched_bytes: int = 0
    fetch_errors: int = 0
    incomplete_fetches: int = 0
    readahead_fetches: int = 0
    readahead_bytes: int = 0
    group_fetches: int = 0
    group_members: int = 0
    memory_evictions: int = 0
    disk_evictions: int = 0
    disk_writes: int = 0
    disk_write_errors: int = 0
    corrupt_blocks: int = 0

    def snapshot(self, **sizes: int) -> CacheStatistics:
        """Freeze the counters together with the current ``sizes``."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(sizes)
        return CacheStatistics(**values)
