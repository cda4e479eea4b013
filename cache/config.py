"""The knobs of the block cache, checked once when the cache is built.

Everything here is a budget or a granularity; none of it changes what a read
returns, only how much is kept and how it is fetched. Subtleties:

* ``memory_bytes`` smaller than ``block_size`` is legal: the memory tier then
  keeps nothing and every read is served straight from its fetch (or from
  disk). Correctness never depends on a block surviving in a tier.
* ``fetch_size`` is the preferred size of one ranged request. A miss of many
  consecutive blocks is cut into pieces of about that size so that up to
  ``parallel_fetches`` of them run at once; a miss smaller than that is one
  request.
* The read-ahead window is capped at half the memory tier as well as at
  ``max_readahead``: a window larger than the tier would evict its own blocks
  before the reader reaches them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CacheConfig:
    """Sizes and limits of a block cache (see the module docstring)."""

    block_size: int = 1 << 20
    memory_bytes: int = 256 << 20
    disk_dir: Path | None = None
    """Directory of the persistent tier; ``None`` keeps blocks in memory only."""
    disk_bytes: int = 10 << 30
    max_readahead: int = 64 << 20
    """Largest read-ahead window of a sequential reader, in bytes."""
    parallel_fetches: int = 4
    """Fetches in flight at once across the whole cache (each a worker thread
    reading a connection: on a small machine more only fight over the GIL)."""
    fetch_size: int = 8 << 20
    """Preferred bytes per ranged fetch when a miss spans many blocks."""
    sequential_slack: int = 1 << 20
    """How far from the previous read's end a read may start and still count
    as sequential: the kernel hands out its parallel read-ahead requests
    slightly out of order."""
    group_fetch_bytes: int = 16 << 20
    """Most bytes of small objects ``fetch_together`` asks for in one request
    (0: never fetch objects together)."""
    disk_write_queue: int = 8
    """Whole blocks' worth of bytes waiting to be written to disk at most;
    fetchers wait beyond that."""
    index_flush_interval: float = 30.0
    """Seconds between saves of the disk tier's LRU order when only reads happen."""

    def __post_init__(self) -> None:
        if self.block_size <= 0:
            raise ValueError(f"block_size must be positive, got {self.block_size}")
        for name in ("memory_bytes", "disk_bytes", "max_readahead", "sequential_slack", "group_fetch_bytes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative, got {getattr(self, name)}")
        for name in ("parallel_fetches", "fetch_size", "disk_write_queue"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.index_flush_interval <= 0:
            raise ValueError("index_flush_interval must be positive")
        if self.disk_dir is not None and not isinstance(self.disk_dir, Path):
            # Accepting a str silently would work until someone calls a Path
            # method on it; normalise once here instead.
            object.__setattr__(self, "disk_dir", Path(self.disk_dir))

    @property
    def fetch_blocks(self) -> int:
        """Blocks per ranged fetch piece (at least one)."""
        return max(1, self.fetch_size // self.block_size)

    @property
    def readahead_limit(self) -> int:
        """The effective largest read-ahead window in bytes."""
        return min(self.max_readahead, self.memory_bytes // 2)
