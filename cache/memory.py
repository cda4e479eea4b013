"""The memory tier: an LRU of block payloads bounded by bytes.

The problem: keep the hottest blocks in RAM without ever exceeding a byte
budget, and answer "which blocks of this object version do you hold?" and
"drop every other version of this object" without scanning the whole tier.

Built on ``cachetools.LRUCache`` with ``getsizeof=len``, so the budget counts
payload bytes (the per-entry overhead of a few hundred bytes is ignored; with
blocks of 64 KiB and more it is below 1 %). Subtleties:

* cachetools raises ``ValueError`` for a value larger than ``maxsize``; such a
  block (or any block when the budget is 0) is simply not kept — the reader
  already has its bytes from the fetch.
* cachetools evicts through ``popitem()`` and removes through
  ``__delitem__``; the subclass hooks both so that the per-object index and
  the eviction counter stay exact however an entry leaves.
* ``contains()`` must not count as a use: read-ahead planning asks it for
  blocks nobody has read yet, and refreshing them would let read-ahead push
  out blocks that readers actually use.

Only the trio thread touches this tier, so nothing here is locked.
"""

from __future__ import annotations

from typing import Any

from cachetools import LRUCache

from .keys import BlockKey
from .stats import Counters


class _ByteLRU(LRUCache[BlockKey, bytes]):
    """An ``LRUCache`` that reports every removal to its tier.

    Guarded by: nothing (trio thread only).
    """

    def __init__(self, maxsize: int, tier: MemoryTier) -> None:
        super().__init__(maxsize, getsizeof=len)
        self._tier = tier

    def __setitem__(self, key: BlockKey, value: bytes, *args: Any) -> None:
        super().__setitem__(key, value)
        # Only reached when cachetools accepted the value (no ValueError).
        self._tier._indexed(key)

    def __delitem__(self, key: BlockKey, *args: Any) -> None:
        super().__delitem__(key)
        self._tier._unindexed(key)

    def popitem(self) -> tuple[BlockKey, bytes]:
        item = super().popitem()
        self._tier._counters.memory_evictions += 1
        return item


class MemoryTier:
    """Block payloads in RAM, least recently used evicted first.

    Fields (trio thread only, no lock): ``_lru`` holds the payloads;
    ``_objects`` maps ``object_id -> version -> {block index}`` for exactly
    the keys in ``_lru``.
    """

    def __init__(self, budget: int, counters: Counters) -> None:
        self._counters = counters
        self._objects: dict[str, dict[str, set[int]]] = {}
        self._lru = _ByteLRU(budget, self)

    # -- reads ---------------------------------------------------------------

    def get(self, key: BlockKey) -> bytes | None:
        """The payload of ``key`` (marking it recently used), or ``None``."""
        try:
            return self._lru[key]
        except KeyError:
            return None

    def contains(self, key: BlockKey) -> bool:
        """Whether ``key`` is held, without counting as a use."""
        return key in self._lru

    def indices(self, object_id: str, version: str) -> set[int]:
        """The block indices held for one object version (a copy)."""
        return set(self._objects.get(object_id, {}).get(version, ()))

    @property
    def used_bytes(self) -> int:
        return int(self._lru.currsize)

    @property
    def block_count(self) -> int:
        return len(self._lru)

    # -- writes --------------------------------------------------------------

    def put(self, key: BlockKey, payload: bytes) -> bool:
        """Keep ``payload`` under ``key``; ``False`` if it can never fit."""
        if len(payload) > self._lru.maxsize:
            return False
        self._lru[key] = payload
        return True

    def forget(self, object_id: str, keep_version: str | None = None) -> None:
        """Drop every version of ``object_id`` except ``keep_version``."""
        versions = self._objects.get(object_id)
        if not versions:
            return
        doomed = [
            (version, index)
            for version, indices in versions.items()
            if version != keep_version
            for index in indices
        ]
        for version, index in doomed:
            del self._lru[BlockKey(object_id, version, index)]

    # -- index upkeep (called by _ByteLRU) -------------------------------------

    def _indexed(self, key: BlockKey) -> None:
        self._objects.setdefault(key.object_id, {}).setdefault(key.version, set()).add(key.index)

    def _unindexed(self, key: BlockKey) -> None:
        versions = self._objects[key.object_id]
        indices = versions[key.version]
        indices.discard(key.index)
        # Prune empty levels so that forgotten objects leave no residue.
        if not indices:
            del versions[key.version]
            if not versions:
                del self._objects[key.object_id]
