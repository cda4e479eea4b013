"""Opening and closing the cache: exceptions, cancellation, background saving."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import trio

from cache import CacheConfig, open_block_cache
from cache import blockfile
from cache.keys import block_key
from tests.support.waiting import until

from .fakes import FakeSource, make_bytes

BS = 4096


@pytest.fixture(params=["memory", "disk"])
def config(request: pytest.FixtureRequest, disk_dir: Path) -> CacheConfig:
    return CacheConfig(block_size=BS, disk_dir=disk_dir if request.param == "disk" else None)


async def test_an_exception_in_the_body_comes_out_unwrapped(config: CacheConfig) -> None:
    with pytest.raises(KeyError):
        async with open_block_cache(config):
            raise KeyError("not an ExceptionGroup")


async def test_an_outer_cancellation_closes_the_cache_cleanly(config: CacheConfig) -> None:
    source = FakeSource(make_bytes(BS))
    source.gate = trio.Event()  # a fetch that never ends
    with trio.move_on_after(0.05) as scope:
        async with open_block_cache(config) as cache:
            await cache.read(source.key, 0, BS, source.fetch)
    assert scope.cancelled_caught
    # The directory lock was released: the cache opens again.
    async with open_block_cache(config):
        pass


async def test_lru_stamps_are_saved_in_the_background(disk_dir: Path) -> None:
    source = FakeSource(make_bytes(2 * BS))
    cfg = CacheConfig(block_size=BS, memory_bytes=0, disk_dir=disk_dir, fetch_size=BS,
                      index_flush_interval=0.05)

    def stamps() -> dict[int, int]:
        db = sqlite3.connect(disk_dir / "index.sqlite3")
        try:
            return dict(db.execute("SELECT idx, used FROM blocks").fetchall())
        finally:
            db.close()

    async with open_block_cache(cfg) as cache:
        for i in (0, 1):
            await cache.read(source.key, i * BS, BS, source.fetch)
        await until(lambda: cache.statistics().disk_writes == 2)
        await until(lambda: len(stamps()) == 2)
        assert stamps()[0] < stamps()[1]
        await cache.read(source.key, 0, BS, source.fetch)   # a disk hit: block 0 is newest
        assert cache.statistics().disk_hits == 1
        # Saved without a close (a crash now would keep this order).
        await until(lambda: stamps()[0] > stamps()[1])


async def test_statistics_report_disk_use(disk_dir: Path) -> None:
    source = FakeSource(make_bytes(BS + 10))
    cfg = CacheConfig(block_size=BS, disk_dir=disk_dir)
    async with open_block_cache(cfg) as cache:
        await cache.read(source.key, 0, BS + 10, source.fetch)
        await until(lambda: cache._disk is not None
                    and cache._disk.contains(block_key(source.key, 1)))
        stats = cache.statistics()
    assert stats.disk_blocks == 2 and stats.disk_writes == 2
    assert stats.disk_bytes == blockfile.stored_size(BS) + blockfile.stored_size(10)
