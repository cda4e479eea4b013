"""Adaptive read-ahead: sequential readers get it, random readers do not."""

from __future__ import annotations

import pytest
import trio

from cache import CacheConfig, ObjectKey, ReadStream, open_block_cache

from .fakes import FakeSource, make_bytes

BS = 4096
KEY = ObjectKey("o", "v", 1000 * BS)


def config(**overrides: object) -> CacheConfig:
    values: dict[str, object] = dict(block_size=BS, memory_bytes=256 * BS,
                                     max_readahead=32 * BS, fetch_size=8 * BS,
                                     sequential_slack=0)
    values.update(overrides)
    return CacheConfig(**values)  # type: ignore[arg-type]


# -- the policy on its own ----------------------------------------------------

def observe(stream: ReadStream, offset: int, length: int, limit: int = 32 * BS,
            slack: int = 0) -> range:
    return stream.observe(KEY, offset, offset + length, BS, limit, slack)


def test_the_first_read_gets_no_read_ahead() -> None:
    stream = ReadStream()
    assert observe(stream, 0, 1024) == range(0)
    assert stream.window == 0


def test_the_window_opens_at_one_block_and_doubles_per_block_entered() -> None:
    stream = ReadStream()
    observe(stream, 0, 1024)
    assert observe(stream, 1024, 1024) == range(1, 2)   # window: one block
    assert stream.window == BS
    observe(stream, 2048, 2048)                          # still block 0: no growth
    assert stream.window == BS
    windows = []
    for i in range(1, 8):
        observe(stream, i * BS, BS)
        windows.append(stream.window // BS)
    assert windows == [2, 4, 8, 16, 32, 32, 32]          # capped at the limit


def test_each_read_returns_only_blocks_not_yet_arranged() -> None:
    stream = ReadStream()
    observe(stream, 0, BS)
    wanted = observe(stream, BS, BS)        # window 1 block after block 1
    assert wanted == range(2, 3)
    stream.planned(wanted.stop)
    wanted = observe(stream, 2 * BS, BS)    # window 2 blocks after block 2
    assert wanted == range(3, 5)
    stream.planned(3)                       # only block 3 could be started
    assert observe(stream, 3 * BS, BS) == range(4, 8)


def test_a_seek_closes_the_window() -> None:
    stream = ReadStream()
    for i in range(6):
        observe(stream, i * BS, BS)
    assert stream.window > 0
    assert observe(stream, 500 * BS, BS) == range(0)
    assert stream.window == 0
    # Sequential again from the new place: the window starts small again.
    assert observe(stream, 501 * BS, BS) == range(502, 503)


def test_slack_tolerates_slightly_reordered_reads() -> None:
    stream = ReadStream()
    observe(stream, 0, BS, slack=2 * BS)
    observe(stream, 2 * BS, BS, slack=2 * BS)   # a request overtook its predecessor
    observe(stream, BS, BS, slack=2 * BS)       # the late one
    assert stream.window > 0


def test_the_window_never_runs_past_the_end() -> None:
    small = ObjectKey("o", "v", 3 * BS)
    stream = ReadStream()
    stream.observe(small, 0, BS, BS, 32 * BS, 0)
    assert stream.observe(small, BS, 3 * BS, BS, 32 * BS, 0) == range(3, 3)


def test_another_object_version_is_a_seek() -> None:
    stream = ReadStream()
    observe(stream, 0, BS)
    observe(stream, BS, BS)
    other = ObjectKey("o", "v2", 1000 * BS)
    assert stream.observe(other, 2 * BS, BS, BS, 32 * BS, 0) == range(0)


# -- in the cache ---------------------------------------------------------------

async def test_a_sequential_reader_reads_ahead_and_then_hits(autojump_clock: trio.abc.Clock
                                                              ) -> None:
    source = FakeSource(make_bytes(200 * BS), delay=0.05)
    async with open_block_cache(config()) as cache:
        stream = cache.stream()
        out = []
        for offset in range(0, 200 * BS, BS // 2):
            out.append(await cache.read(source.key, offset, BS // 2, source.fetch, stream))
        stats = cache.statistics()
    assert b"".join(out) == source.data
    # Only the first block was fetched for the reader itself (the second read,
    # still in block 0, already opened the window); everything else came from
    # read-ahead, and each byte was fetched once.
    assert stats.fetch_calls - stats.readahead_fetches == 1
    assert stats.fetched_bytes == 200 * BS
    assert stats.readahead_bytes == 199 * BS
    assert stream.window == 32 * BS
    # Read-ahead ran in ranged fetches, several at once.
    assert max(n for _, n in source.calls) == 8 * BS
    assert source.max_in_flight > 1


async def test_a_steady_reader_costs_one_request_per_fetch_size(autojump_clock: trio.abc.Clock
                                                                  ) -> None:
    # Once the window is full, each block the reader enters moves it by one
    # block; topping it up block by block would cost the portal one request
    # per block.  It is topped up a whole fetch at a time instead.
    source = FakeSource(make_bytes(400 * BS), delay=0.05)
    async with open_block_cache(config()) as cache:
        stream = cache.stream()
        for offset in range(0, 400 * BS, BS // 2):
            assert await cache.read(source.key, offset, BS // 2, source.fetch, stream) == \
                source.data[offset:offset + BS // 2]
        stats = cache.statistics()
    assert stats.fetched_bytes == 400 * BS
    small = [n for start, n in source.calls if n < 8 * BS and start + n < 400 * BS]
    assert len(small) <= 5  # the ramp-up while the window opens (1, 2, 4 … blocks)
    assert len(source.calls) <= 400 // 8 + 6


async def test_read_ahead_lands_in_the_cache_in_the_background(
        autojump_clock: trio.abc.Clock) -> None:
    source = FakeSource(make_bytes(100 * BS), delay=0.05)
    async with open_block_cache(config()) as cache:
        stream = cache.stream()
        for i in range(5):
            await cache.read(source.key, i * BS, BS, source.fetch, stream)
        await trio.sleep(1)  # the background fetches finish
        ahead = cache.cached_bytes(source.key) - 5 * BS
        assert ahead == stream.window
        calls = len(source.calls)
        for i in range(5, 5 + ahead // BS):
            await cache.read(source.key, i * BS, BS, source.fetch)  # no stream: no new read-ahead
        assert len(source.calls) == calls


async def test_a_random_reader_gets_no_read_ahead() -> None:
    source = FakeSource(make_bytes(1000 * BS))
    async with open_block_cache(config(sequential_slack=BS)) as cache:
        stream = cache.stream()
        blocks = [500, 3, 977, 120, 640, 42, 871, 301, 755, 18]
        for b in blocks:
            got = await cache.read(source.key, b * BS + 50, 4000, source.fetch, stream)
            assert got == source.data[b * BS + 50:b * BS + 4050]
        stats = cache.statistics()
    assert stats.readahead_fetches == 0
    # One 4 KiB read inside a block costs that one block, never more.
    assert source.calls == [(b * BS, BS) for b in blocks]
    assert stream.window == 0


async def test_read_ahead_leaves_a_fetch_slot_to_readers(autojump_clock: trio.abc.Clock
                                                         ) -> None:
    source = FakeSource(make_bytes(400 * BS), delay=0.05)
    async with open_block_cache(config(parallel_fetches=3, fetch_size=BS)) as cache:
        stream = cache.stream()
        for i in range(40):
            await cache.read(source.key, i * BS, BS, source.fetch, stream)
            # Never more than two read-ahead fetches: one slot stays free.
        assert source.max_in_flight <= 3
        random = FakeSource(make_bytes(10 * BS, seed=9), object_id="other", delay=0.05)
        start = trio.current_time()
        await cache.read(random.key, 0, BS, random.fetch)
        assert trio.current_time() - start == pytest.approx(0.05)  # not queued behind read-ahead


async def test_read_ahead_respects_the_memory_budget(autojump_clock: trio.abc.Clock) -> None:
    source = FakeSource(make_bytes(400 * BS), delay=0.05)
    cfg = config(memory_bytes=16 * BS, max_readahead=1 << 30)
    async with open_block_cache(cfg) as cache:
        stream = cache.stream()
        for offset in range(0, 400 * BS, BS // 4):
            assert (await cache.read(source.key, offset, BS // 4, source.fetch, stream)
                    == source.data[offset:offset + BS // 4])
            assert stream.window <= 8 * BS
            assert cache.statistics().memory_bytes <= 16 * BS
        stats = cache.statistics()
    assert stream.window == 8 * BS
    # Read-ahead never evicted blocks before the reader got to them.
    assert stats.fetched_bytes == 400 * BS


async def test_a_failed_read_ahead_is_retried_by_the_reader(autojump_clock: trio.abc.Clock
                                                            ) -> None:
    source = FakeSource(make_bytes(20 * BS), delay=0.05)
    async with open_block_cache(config(fetch_size=BS)) as cache:
        stream = cache.stream()
        await cache.read(source.key, 0, BS, source.fetch, stream)
        source.fail_at[2 * BS] = OSError("read-ahead of block 2 fails")
        await cache.read(source.key, BS, BS, source.fetch, stream)
        await trio.sleep(1)
        assert cache.statistics().fetch_errors == 1
        assert await cache.read(source.key, 2 * BS, BS, source.fetch, stream) == \
            source.data[2 * BS:3 * BS]
