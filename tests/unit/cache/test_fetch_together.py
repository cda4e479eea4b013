"""Small objects fetched together: one request for many, joined by their readers,
and never a source of errors (whatever a group does not deliver is read on its own)."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trio.testing

from cache import BlockCache, CacheConfig, ObjectKey, open_block_cache
from tests.support.waiting import until

from . import fakes
from .fakes import FakeSource, SourceError, make_bytes

BS = 4096


def config(**overrides: object) -> CacheConfig:
    values: dict[str, object] = dict(block_size=BS, memory_bytes=256 * BS, group_fetch_bytes=16 * BS)
    values.update(overrides)
    return CacheConfig(**values)  # type: ignore[arg-type]


def small_files(count: int, size: int = 1000) -> list[FakeSource]:
    return fakes.small_files(count, size)


class Together:
    """A ``FetchMany`` over fake sources: records its calls, can wait, fail or leave objects out."""

    def __init__(self, sources: list[FakeSource]) -> None:
        self.by_key = {source.key: source for source in sources}
        self.calls: list[list[ObjectKey]] = []
        self.gate: trio.Event | None = None
        self.failure: BaseException | None = None
        self.left_out: set[ObjectKey] = set()
        self.wrong_size: set[ObjectKey] = set()

    async def __call__(self, keys: list[ObjectKey]) -> dict[ObjectKey, bytes]:
        self.calls.append(list(keys))
        if self.gate is not None:
            await self.gate.wait()
        await trio.lowlevel.checkpoint()
        if self.failure is not None:
            raise self.failure
        got = {key: self.by_key[key].data for key in keys if key not in self.left_out}
        for key in self.wrong_size & got.keys():
            got[key] = got[key][:-1]
        return got


async def read_all(cache: BlockCache, sources: list[FakeSource]) -> list[bytes]:
    results: dict[int, bytes] = {}

    async def reader(i: int) -> None:
        results[i] = await cache.read(sources[i].key, 0, BS, sources[i].fetch)

    async with trio.open_nursery() as nursery:
        for i in range(len(sources)):
            nursery.start_soon(reader, i)
    return [results[i] for i in range(len(sources))]


async def test_readers_of_small_objects_fetched_together_cost_one_call() -> None:
    sources = small_files(10)
    together = Together(sources)
    together.gate = trio.Event()
    async with open_block_cache(config()) as cache:
        assert cache.fetch_together([s.key for s in sources], together) == 10
        async with trio.open_nursery() as nursery:
            results: list[list[bytes]] = []

            async def read() -> None:
                results.append(await read_all(cache, sources))

            nursery.start_soon(read)
            await trio.testing.wait_all_tasks_blocked()
            assert all(not s.calls for s in sources), "readers wait for the group instead of fetching"
            together.gate.set()
        stats = cache.statistics()
    assert results == [[s.data for s in sources]]
    assert together.calls == [[s.key for s in sources]]
    assert all(not s.calls for s in sources)
    assert (stats.group_fetches, stats.group_members, stats.fetch_calls) == (1, 10, 1)
    assert stats.inflight_joins == 10


@pytest.mark.parametrize("fault", ["left out", "wrong size", "request failed"])
async def test_what_a_group_does_not_deliver_is_read_on_its_own(fault: str) -> None:
    sources = small_files(6)
    together = Together(sources)
    if fault == "left out":
        together.left_out = {sources[1].key, sources[4].key}
    elif fault == "wrong size":
        together.wrong_size = {sources[1].key, sources[4].key}
    else:
        together.failure = SourceError("the portal cannot zip")
    async with open_block_cache(config()) as cache:
        cache.fetch_together([s.key for s in sources], together)
        assert await read_all(cache, sources) == [s.data for s in sources]
        # read again: everything is cached now, whoever fetched it
        assert await read_all(cache, sources) == [s.data for s in sources]
    on_their_own = [i for i, s in enumerate(sources) if s.calls]
    assert on_their_own == ([0, 1, 2, 3, 4, 5] if fault == "request failed" else [1, 4])
    assert all(len(s.calls) == 1 for s in sources if s.calls)


async def test_only_small_uncached_objects_are_taken_within_the_budget() -> None:
    sources = small_files(8, size=3 * BS)  # 3 blocks' worth of bytes, but larger than one block
    small = small_files(30, size=BS)
    for i, source in enumerate(small):
        source.key = ObjectKey(f"small:{i}", "v1", BS)
    empty = ObjectKey("empty", "v1", 0)
    together = Together(small)
    together.gate = trio.Event()
    async with open_block_cache(config(group_fetch_bytes=4 * BS + 10)) as cache:
        await cache.read(small[0].key, 0, BS, small[0].fetch)  # cached already
        keys = [sources[0].key, small[0].key, empty, *(s.key for s in small[1:])]
        looked = cache.fetch_together(keys, together)
        # skipped: the large one, the cached one, the empty one; taken: four within the budget
        assert looked == 3 + 4
        await trio.testing.wait_all_tasks_blocked()
        assert together.calls == [[s.key for s in small[1:5]]]
        # in flight now, so a second call for the same keys takes the next four
        looked_again = cache.fetch_together(keys, together)
        assert looked_again == 3 + 8
        await trio.testing.wait_all_tasks_blocked()
        assert together.calls[1] == [s.key for s in small[5:9]]
        together.gate.set()
        assert await read_all(cache, small[:9]) == [s.data for s in small[:9]]
        assert all(not s.calls for s in small[1:]) and cache.statistics().group_fetches == 2
    async with open_block_cache(config(group_fetch_bytes=0)) as cache:
        assert cache.fetch_together([s.key for s in small], together) == 0
        assert len(together.calls) == 2


async def test_objects_fetched_together_reach_the_disk_tier(tmp_path: Path) -> None:
    sources = small_files(5)
    together = Together(sources)
    async with open_block_cache(config(disk_dir=tmp_path / "cache")) as cache:
        cache.fetch_together([s.key for s in sources], together)
        await read_all(cache, sources)
        await until(lambda: cache.statistics().disk_writes == 5)
    async with open_block_cache(config(disk_dir=tmp_path / "cache")) as cache:
        assert await read_all(cache, sources) == [s.data for s in sources]
        assert cache.statistics().disk_hits == 5
    assert len(together.calls) == 1 and all(not s.calls for s in sources)


async def test_objects_on_disk_are_loaded_together_and_their_readers_join(tmp_path: Path) -> None:
    sources = small_files(6)
    together = Together(sources)
    async with open_block_cache(config(disk_dir=tmp_path / "cache")) as cache:
        for source in sources[:4]:  # four on disk, two not
            await cache.read(source.key, 0, BS, source.fetch)
        await until(lambda: cache.statistics().disk_writes == 4)
    async with open_block_cache(config(disk_dir=tmp_path / "cache")) as cache:
        assert cache.fetch_together([s.key for s in sources], together) == 6
        assert await read_all(cache, sources) == [s.data for s in sources]
        stats = cache.statistics()
    assert together.calls == [[s.key for s in sources[4:]]], "only what is not on disk goes to the network"
    assert stats.disk_hits == 4 and stats.inflight_joins == 6
    assert all(len(s.calls) == 1 for s in sources[:4]) and all(not s.calls for s in sources[4:])


async def test_a_closing_cache_fails_the_readers_of_a_group_in_the_air() -> None:
    sources = small_files(3)
    together = Together(sources)
    together.gate = trio.Event()  # never set: the group is in the air when the cache closes
    errors: list[BaseException] = []
    async with trio.open_nursery() as nursery:
        async with open_block_cache(config()) as cache:
            cache.fetch_together([s.key for s in sources], together)

            async def reader(source: FakeSource) -> None:
                try:
                    await cache.read(source.key, 0, BS, source.fetch)
                except trio.ClosedResourceError as exc:
                    errors.append(exc)

            for source in sources:
                nursery.start_soon(reader, source)
            await trio.testing.wait_all_tasks_blocked()
    assert len(errors) == 3
    assert all(not s.calls for s in sources)
