"""What a read returns: exact bytes, EOF edges, versions, odd fetch results."""

from __future__ import annotations

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cache import CacheConfig, IncompleteFetch, ObjectKey, open_block_cache

from .fakes import FakeSource, make_bytes

BS = 4096


def config(**overrides: object) -> CacheConfig:
    values: dict[str, object] = dict(block_size=BS, memory_bytes=64 * BS,
                                     max_readahead=16 * BS, fetch_size=4 * BS)
    values.update(overrides)
    return CacheConfig(**values)  # type: ignore[arg-type]


reads = st.lists(st.tuples(st.integers(0, 70_000), st.integers(0, 40_000)),
                 min_size=1, max_size=12)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(size=st.integers(0, 60_000), seed=st.integers(0, 1000),
       block_size=st.sampled_from([7, 512, 4096, 65536]),
       memory_blocks=st.sampled_from([0, 1, 3, 1000]),
       fetch_blocks=st.integers(1, 6), use_stream=st.booleans(), ranges=reads)
async def test_random_reads_return_exactly_the_source_bytes(
        size: int, seed: int, block_size: int, memory_blocks: int, fetch_blocks: int,
        use_stream: bool, ranges: list[tuple[int, int]]) -> None:
    source = FakeSource(make_bytes(size, seed))
    cfg = CacheConfig(block_size=block_size, memory_bytes=memory_blocks * block_size,
                      fetch_size=fetch_blocks * block_size, max_readahead=8 * block_size)
    async with open_block_cache(cfg) as cache:
        stream = cache.stream() if use_stream else None
        for offset, length in ranges:
            got = await cache.read(source.key, offset, length, source.fetch, stream)
            assert got == source.data[offset:offset + length]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 1000), ranges=reads, memory_blocks=st.sampled_from([0, 2, 100]))
async def test_concurrent_random_reads_return_exactly_the_source_bytes(
        seed: int, ranges: list[tuple[int, int]], memory_blocks: int) -> None:
    source = FakeSource(make_bytes(50_000, seed), delay=0.001)
    results: dict[int, bytes] = {}
    async with open_block_cache(config(memory_bytes=memory_blocks * BS,
                                       parallel_fetches=2)) as cache:
        stream = cache.stream()

        async def reader(i: int, offset: int, length: int) -> None:
            results[i] = await cache.read(source.key, offset, length, source.fetch, stream)

        async with trio.open_nursery() as nursery:
            for i, (offset, length) in enumerate(ranges):
                nursery.start_soon(reader, i, offset, length)
    for i, (offset, length) in enumerate(ranges):
        assert results[i] == source.data[offset:offset + length]


@pytest.mark.parametrize(("offset", "length", "expected"), [
    (10_000, 5, b""),          # exactly at EOF
    (10_001, 5, b""),          # past EOF
    (50_000, 0, b""),          # far past EOF, empty
    (0, 0, b""),               # empty read at the start
    (9_999, 100, None),        # the last byte only
    (8_000, 100_000, None),    # a read crossing EOF is cut at EOF
    (8_192, 1_808, None),      # exactly the short last block
    (4_096, 4_096, None),      # exactly one whole block
    (4_095, 2, None),          # two bytes across a block boundary
    (0, 10_000, None),         # the whole object
])
async def test_eof_and_boundary_edges(offset: int, length: int, expected: bytes | None) -> None:
    source = FakeSource(make_bytes(10_000))
    async with open_block_cache(config()) as cache:
        got = await cache.read(source.key, offset, length, source.fetch)
    assert got == (source.data[offset:offset + length] if expected is None else expected)
    if not got:
        assert source.calls == []


async def test_an_empty_object_is_never_fetched() -> None:
    source = FakeSource(b"")
    async with open_block_cache(config()) as cache:
        assert await cache.read(source.key, 0, 4096, source.fetch, cache.stream()) == b""
        assert cache.cached_bytes(source.key) == 0
    assert source.calls == []


async def test_negative_offset_or_length_is_refused() -> None:
    source = FakeSource(make_bytes(100))
    async with open_block_cache(config()) as cache:
        with pytest.raises(ValueError):
            await cache.read(source.key, -1, 10, source.fetch)
        with pytest.raises(ValueError):
            await cache.read(source.key, 0, -10, source.fetch)


async def test_a_read_fetches_only_the_blocks_it_touches() -> None:
    source = FakeSource(make_bytes(100 * BS))
    async with open_block_cache(config()) as cache:
        await cache.read(source.key, 10 * BS + 100, 4096, source.fetch)
    # 4 KiB straddling blocks 10 and 11: one ranged fetch of exactly those two.
    assert source.calls == [(10 * BS, 2 * BS)]


async def test_cached_reads_do_not_fetch_again() -> None:
    source = FakeSource(make_bytes(10 * BS))
    async with open_block_cache(config()) as cache:
        assert await cache.read(source.key, 0, 10 * BS, source.fetch) == source.data
        calls = len(source.calls)
        assert await cache.read(source.key, 123, 5000, source.fetch) == source.data[123:5123]
        assert len(source.calls) == calls
        assert cache.cached_bytes(source.key) == 10 * BS
        stats = cache.statistics()
    assert stats.memory_hits == 2 and stats.fetched_bytes == 10 * BS


async def test_versions_never_share_blocks() -> None:
    old = FakeSource(make_bytes(3 * BS, seed=1), version="v1")
    new = FakeSource(make_bytes(3 * BS, seed=2), version="v2")
    async with open_block_cache(config()) as cache:
        assert await cache.read(old.key, 0, 3 * BS, old.fetch) == old.data
        # Same object, new version: nothing of v1 may be served.
        assert await cache.read(new.key, 0, 3 * BS, new.fetch) == new.data
        assert len(new.calls) == 1
        assert cache.cached_bytes(old.key) == 3 * BS
        assert cache.cached_bytes(new.key) == 3 * BS
        cache.forget(old.key.object_id, keep_version="v2")
        assert cache.cached_bytes(old.key) == 0
        assert cache.cached_bytes(new.key) == 3 * BS
        cache.forget(old.key.object_id)
        assert cache.cached_bytes(new.key) == 0
        # A forgotten version is fetched again if asked for.
        assert await cache.read(old.key, 0, 10, old.fetch) == old.data[:10]
        assert len(old.calls) == 2


async def test_different_objects_never_share_blocks() -> None:
    a = FakeSource(make_bytes(BS, seed=1), object_id="ctera:1")
    b = FakeSource(make_bytes(BS, seed=2), object_id="ctera:2")
    async with open_block_cache(config()) as cache:
        assert await cache.read(a.key, 0, BS, a.fetch) == a.data
        assert await cache.read(b.key, 0, BS, b.fetch) == b.data
        cache.forget("ctera:1")
        assert cache.cached_bytes(b.key) == BS


async def test_oversize_fetch_results_are_kept() -> None:
    source = FakeSource(make_bytes(8 * BS + 10))
    source.extra = 1 << 30  # a server that ignored the Range and sent everything
    async with open_block_cache(config()) as cache:
        assert await cache.read(source.key, 0, 100, source.fetch) == source.data[:100]
        assert cache.cached_bytes(source.key) == 8 * BS + 10
        assert await cache.read(source.key, 0, 9 * BS, source.fetch) == source.data
    assert len(source.calls) == 1


async def test_bytes_past_the_objects_size_are_ignored() -> None:
    # The source holds more than this version's size says: never serve past size.
    source = FakeSource(make_bytes(3 * BS))
    key = ObjectKey(source.key.object_id, source.key.version, 2 * BS + 5)
    source.extra = BS
    async with open_block_cache(config()) as cache:
        got = await cache.read(key, 0, 10 * BS, source.fetch)
        assert got == source.data[:2 * BS + 5]
        assert cache.cached_bytes(key) == 2 * BS + 5


async def test_a_short_source_raises_and_keeps_the_whole_blocks_it_got() -> None:
    source = FakeSource(make_bytes(4 * BS))
    source.truncate_at = 2 * BS + 100  # the object ends early: its size lied
    async with open_block_cache(config()) as cache:
        with pytest.raises(IncompleteFetch):
            await cache.read(source.key, 0, 4 * BS, source.fetch)
        assert cache.cached_bytes(source.key) == 2 * BS
        assert cache.statistics().incomplete_fetches == 1
        # Blocks it did get are served without another fetch.
        assert await cache.read(source.key, 0, 2 * BS, source.fetch) == source.data[:2 * BS]
        assert len(source.calls) == 1
        # Once the source is whole again, the rest is fetched.
        source.truncate_at = None
        assert await cache.read(source.key, 0, 4 * BS, source.fetch) == source.data


async def test_statistics_count_hits_misses_and_fetches() -> None:
    source = FakeSource(make_bytes(4 * BS))
    async with open_block_cache(config()) as cache:
        await cache.read(source.key, 0, 2 * BS, source.fetch)
        await cache.read(source.key, 0, 3 * BS, source.fetch)
        stats = cache.statistics()
    assert (stats.memory_hits, stats.memory_misses) == (2, 3)
    assert (stats.disk_hits, stats.disk_misses) == (0, 0)
    assert stats.fetch_calls == 2 and stats.fetched_bytes == 3 * BS
    assert stats.memory_bytes == 3 * BS and stats.memory_blocks == 3


async def test_reads_after_close_are_refused() -> None:
    source = FakeSource(make_bytes(BS))
    async with open_block_cache(config()) as cache:
        pass
    with pytest.raises(trio.ClosedResourceError):
        await cache.read(source.key, 0, 10, source.fetch)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError):
        CacheConfig(block_size=0)
    with pytest.raises(ValueError):
        CacheConfig(parallel_fetches=0)
    with pytest.raises(ValueError):
        CacheConfig(memory_bytes=-1)
    with pytest.raises(ValueError):
        ObjectKey("x", "v", -1)
    assert CacheConfig(block_size=BS, fetch_size=1).fetch_blocks == 1
    assert CacheConfig(memory_bytes=10 << 20, max_readahead=64 << 20).readahead_limit == 5 << 20
