"""Concurrent misses share one fetch; failures and cancellations do not poison."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from cache import BlockCache, CacheConfig, open_block_cache

from .fakes import FakeSource, SourceError, make_bytes

BS = 4096


def config(**overrides: object) -> CacheConfig:
    values: dict[str, object] = dict(block_size=BS, memory_bytes=64 * BS, fetch_size=4 * BS)
    values.update(overrides)
    return CacheConfig(**values)  # type: ignore[arg-type]


async def test_n_readers_of_a_cold_block_cause_one_fetch() -> None:
    source = FakeSource(make_bytes(4 * BS))
    source.gate = trio.Event()
    results: list[bytes] = []
    async with open_block_cache(config()) as cache:

        async def reader(offset: int) -> None:
            results.append(await cache.read(source.key, offset, 100, source.fetch))

        async with trio.open_nursery() as nursery:
            for i in range(20):
                nursery.start_soon(reader, BS + i * 100)
            await trio.testing.wait_all_tasks_blocked()
            source.gate.set()
        stats = cache.statistics()
    assert source.calls == [(BS, BS)]
    assert sorted(results) == sorted(source.data[BS + i * 100:BS + i * 100 + 100]
                                     for i in range(20))
    assert stats.inflight_joins == 19


async def test_overlapping_reads_join_what_is_in_flight_and_fetch_the_rest() -> None:
    source = FakeSource(make_bytes(16 * BS))
    source.gate = trio.Event()
    results: dict[str, bytes] = {}
    async with open_block_cache(config(fetch_size=16 * BS)) as cache:

        async def reader(name: str, offset: int, length: int) -> None:
            results[name] = await cache.read(source.key, offset, length, source.fetch)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader, "a", 0, 4 * BS)        # blocks 0-3
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(reader, "b", 2 * BS, 4 * BS)   # blocks 2-5: joins 2-3
            await trio.testing.wait_all_tasks_blocked()
            source.gate.set()
    assert results == {"a": source.data[:4 * BS], "b": source.data[2 * BS:6 * BS]}
    assert source.calls == [(0, 4 * BS), (4 * BS, 2 * BS)]


async def test_a_fetch_error_reaches_every_waiter_and_a_later_read_retries() -> None:
    source = FakeSource(make_bytes(4 * BS))
    source.gate = trio.Event()
    source.failures = [SourceError("portal said 503")]
    errors: list[BaseException] = []
    async with open_block_cache(config()) as cache:

        async def reader() -> None:
            try:
                await cache.read(source.key, 0, BS, source.fetch)
            except SourceError as exc:
                errors.append(exc)

        async with trio.open_nursery() as nursery:
            for _ in range(5):
                nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            source.gate.set()
        assert len(errors) == 5 and all(e is errors[0] for e in errors)
        assert len(source.calls) == 1
        # Nothing was cached for the failed range, and the next read retries.
        assert cache.cached_bytes(source.key) == 0
        assert await cache.read(source.key, 0, BS, source.fetch) == source.data[:BS]
        assert len(source.calls) == 2
        assert cache.statistics().fetch_errors == 1


async def test_repeated_waiter_errors_do_not_pile_up_tracebacks() -> None:
    source = FakeSource(make_bytes(BS))
    source.gate = trio.Event()
    source.failures = [SourceError("boom")]
    depths: list[int] = []
    async with open_block_cache(config()) as cache:

        async def reader() -> None:
            try:
                await cache.read(source.key, 0, BS, source.fetch)
            except SourceError as exc:
                tb, depth = exc.__traceback__, 0
                while tb is not None:
                    tb, depth = tb.tb_next, depth + 1
                depths.append(depth)

        async with trio.open_nursery() as nursery:
            for _ in range(10):
                nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            source.gate.set()
    assert len(depths) == 10 and max(depths) == min(depths)


async def test_a_cancelled_reader_does_not_cancel_the_fetch_others_wait_for() -> None:
    source = FakeSource(make_bytes(2 * BS))
    source.gate = trio.Event()
    got: list[bytes] = []
    async with open_block_cache(config()) as cache:
        async with trio.open_nursery() as nursery:
            first = trio.CancelScope()

            async def impatient() -> None:
                with first:
                    await cache.read(source.key, 0, BS, source.fetch)

            async def patient() -> None:
                got.append(await cache.read(source.key, 0, BS, source.fetch))

            nursery.start_soon(impatient)       # starts the fetch
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(patient)         # joins it
            await trio.testing.wait_all_tasks_blocked()
            first.cancel()
            await trio.testing.wait_all_tasks_blocked()
            source.gate.set()
    assert got == [source.data[:BS]]
    assert len(source.calls) == 1


async def test_a_fetch_abandoned_by_all_readers_still_fills_the_cache() -> None:
    source = FakeSource(make_bytes(2 * BS))
    source.gate = trio.Event()
    async with open_block_cache(config()) as cache:
        with trio.move_on_after(0.01):
            await cache.read(source.key, 0, BS, source.fetch)
        source.gate.set()
        await trio.testing.wait_all_tasks_blocked()
        assert cache.cached_bytes(source.key) == BS
        assert await cache.read(source.key, 0, BS, source.fetch) == source.data[:BS]
    assert len(source.calls) == 1


async def test_closing_the_cache_wakes_waiting_readers() -> None:
    source = FakeSource(make_bytes(BS))
    source.gate = trio.Event()  # never set: the fetch hangs
    outcome: list[BaseException] = []

    async def reader(cache: BlockCache) -> None:
        try:
            await cache.read(source.key, 0, BS, source.fetch)
        except trio.ClosedResourceError as exc:
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        async with open_block_cache(config()) as cache:
            nursery.start_soon(reader, cache)
            await source.started.wait()
    assert len(outcome) == 1


async def test_parallel_fetches_bound_the_fetches_in_the_air(autojump_clock: trio.abc.Clock
                                                             ) -> None:
    source = FakeSource(make_bytes(64 * BS), delay=1.0)
    async with open_block_cache(config(parallel_fetches=3, fetch_size=2 * BS)) as cache:
        async with trio.open_nursery() as nursery:
            for i in range(0, 64, 4):
                nursery.start_soon(cache.read, source.key, i * BS, 4 * BS, source.fetch)
    assert source.max_in_flight == 3
    assert source.fetched_bytes == 64 * BS


async def test_a_large_read_is_cut_into_parallel_ranged_fetches(autojump_clock: trio.abc.Clock
                                                                ) -> None:
    source = FakeSource(make_bytes(16 * BS), delay=1.0)
    async with open_block_cache(config(parallel_fetches=8, fetch_size=4 * BS)) as cache:
        start = trio.current_time()
        assert await cache.read(source.key, 0, 16 * BS, source.fetch) == source.data
        elapsed = trio.current_time() - start
    assert sorted(source.calls) == [(i * BS, 4 * BS) for i in range(0, 16, 4)]
    assert source.max_in_flight == 4
    assert elapsed == pytest.approx(1.0)  # one round trip, not four
