"""The memory tier: LRU bounded by bytes."""

from __future__ import annotations

from cache import CacheConfig, ObjectKey, open_block_cache
from cache.keys import BlockKey
from cache.memory import MemoryTier
from cache.stats import Counters

from .fakes import FakeSource, make_bytes

BS = 4096


async def test_least_recently_used_block_is_evicted_first() -> None:
    source = FakeSource(make_bytes(8 * BS))
    async with open_block_cache(CacheConfig(block_size=BS, memory_bytes=3 * BS)) as cache:
        for i in (0, 1, 2):
            await cache.read(source.key, i * BS, BS, source.fetch)
        await cache.read(source.key, 0, 10, source.fetch)       # block 0 used again
        await cache.read(source.key, 3 * BS, BS, source.fetch)  # evicts block 1
        assert cache.statistics().memory_evictions == 1
        calls = len(source.calls)
        await cache.read(source.key, 0, BS, source.fetch)       # still cached
        assert len(source.calls) == calls
        await cache.read(source.key, BS, BS, source.fetch)      # was evicted
        assert source.calls[-1] == (BS, BS)


async def test_the_budget_counts_bytes_not_blocks() -> None:
    # 5 blocks of 4 KiB and a last block of 100 bytes; room for 2.5 blocks.
    source = FakeSource(make_bytes(5 * BS + 100))
    budget = 2 * BS + BS // 2
    async with open_block_cache(CacheConfig(block_size=BS, memory_bytes=budget)) as cache:
        for i in range(6):
            await cache.read(source.key, i * BS, BS, source.fetch)
            assert cache.statistics().memory_bytes <= budget
        stats = cache.statistics()
        # The short last block fits beside two whole ones.
        assert stats.memory_blocks == 3
        assert stats.memory_bytes == 2 * BS + 100
        assert cache.cached_bytes(source.key) == 2 * BS + 100


async def test_a_zero_budget_keeps_nothing_yet_reads_work() -> None:
    source = FakeSource(make_bytes(3 * BS))
    async with open_block_cache(CacheConfig(block_size=BS, memory_bytes=0)) as cache:
        assert await cache.read(source.key, 0, 3 * BS, source.fetch) == source.data
        assert cache.statistics().memory_bytes == 0
        assert cache.cached_bytes(source.key) == 0


def test_tier_index_follows_evictions_and_forget() -> None:
    counters = Counters()
    tier = MemoryTier(3 * BS, counters)
    payload = bytes(BS)
    for version in ("a", "b"):
        for i in range(2):
            tier.put(BlockKey("o", version, i), payload)
    # Four blocks into room for three: ("o", "a", 0) went first.
    assert counters.memory_evictions == 1
    assert tier.indices("o", "a") == {1}
    assert tier.indices("o", "b") == {0, 1}
    tier.forget("o", keep_version="b")
    assert tier.indices("o", "a") == set()
    assert tier.indices("o", "b") == {0, 1}
    assert tier.used_bytes == 2 * BS
    tier.forget("o")
    assert tier.used_bytes == 0 and tier.block_count == 0
    assert tier._objects == {}  # no residue of forgotten objects
    assert counters.memory_evictions == 1  # forget is not eviction


def test_contains_does_not_refresh_a_block() -> None:
    tier = MemoryTier(2 * BS, Counters())
    tier.put(BlockKey("o", "v", 0), bytes(BS))
    tier.put(BlockKey("o", "v", 1), bytes(BS))
    assert tier.contains(BlockKey("o", "v", 0))
    tier.put(BlockKey("o", "v", 2), bytes(BS))
    assert not tier.contains(BlockKey("o", "v", 0))
    assert tier.get(BlockKey("o", "v", 1)) is not None


def test_an_oversize_block_is_not_kept() -> None:
    tier = MemoryTier(BS, Counters())
    assert not tier.put(BlockKey("o", "v", 0), bytes(BS + 1))
    assert tier.block_count == 0


async def test_cached_bytes_of_an_unknown_object_is_zero() -> None:
    async with open_block_cache(CacheConfig(block_size=BS)) as cache:
        assert cache.cached_bytes(ObjectKey("nope", "v", 10 * BS)) == 0
        cache.forget("nope")
