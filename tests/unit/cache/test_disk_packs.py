"""The disk tier's packs: small blocks written together, then read, kept, damaged,
forgotten, evicted and swept one by one (the block-file cases: test_disk.py)."""

from __future__ import annotations

import errno
import os
import sqlite3
import threading
from collections import Counter
from pathlib import Path

import pytest
import trio

from cache import BlockCache, CacheConfig, open_block_cache
from cache import blockfile
from cache.keys import block_key
from tests.support.waiting import until

from . import fakes
from .fakes import FakeSource

BS = 4096
PACKED = blockfile.stored_size(BS)  # bytes on disk of one small block


def config(disk_dir: Path, **overrides: object) -> CacheConfig:
    values: dict[str, object] = dict(block_size=BS, memory_bytes=0, disk_dir=disk_dir, disk_bytes=1 << 30,
                                     fetch_size=BS, disk_write_queue=64)
    values.update(overrides)
    return CacheConfig(**values)  # type: ignore[arg-type]


def small_files(count: int, first: int = 0) -> list[FakeSource]:
    return fakes.small_files(count, BS, first)


def again(sources: list[FakeSource]) -> list[FakeSource]:
    """The same objects with fresh call records."""
    return [FakeSource(s.data, object_id=s.key.object_id) for s in sources]


async def read_together(cache: BlockCache, sources: list[FakeSource]) -> None:
    """Read every object at once (their blocks queue up for one batch), then wait for the disk."""
    async with trio.open_nursery() as nursery:
        for source in sources:
            nursery.start_soon(cache.read, source.key, 0, BS, source.fetch)
    await until(lambda: all(cache._disk is not None and cache._disk.contains(block_key(s.key, 0))
                            for s in sources))


def packs(disk_dir: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in (disk_dir / "packs").iterdir()}


def rows(disk_dir: Path) -> dict[str, tuple[str, int]]:
    """object id -> (pack, offset), as the index has them."""
    db = sqlite3.connect(disk_dir / "index.sqlite3")
    try:
        return {object_id: (pack, offset)
                for object_id, pack, offset in db.execute("SELECT object_id, pack, offset FROM blocks")}
    finally:
        db.close()


def fullest_pack(disk_dir: Path) -> tuple[str, list[str]]:
    """A pack holding several members, and the object ids in it by offset."""
    where = rows(disk_dir)
    pack, members = Counter(pack for pack, _ in where.values()).most_common(1)[0]
    assert members >= 2, f"expected blocks read together to share a pack: {where}"
    return pack, sorted((i for i, (p, _) in where.items() if p == pack), key=lambda i: where[i][1])


async def test_small_blocks_share_packs_and_survive_a_restart(disk_dir: Path) -> None:
    sources = small_files(20)
    async with open_block_cache(config(disk_dir)) as cache:
        await read_together(cache, sources)
        assert cache.statistics().disk_bytes == 20 * PACKED
    assert [p for p in (disk_dir / "blocks").rglob("*") if p.is_file()] == []  # no file per block
    assert 1 <= len(packs(disk_dir)) < 20 and sum(packs(disk_dir).values()) == 20 * PACKED
    fresh = again(sources)
    async with open_block_cache(config(disk_dir)) as cache:
        for source in fresh:
            assert await cache.read(source.key, 0, BS, source.fetch) == source.data
        assert cache.statistics().disk_hits == 20 and cache.statistics().disk_bytes == 20 * PACKED
    assert all(source.calls == [] for source in fresh)


async def test_a_pack_lives_until_its_last_member_is_forgotten(disk_dir: Path) -> None:
    sources = small_files(10)
    async with open_block_cache(config(disk_dir)) as cache:
        await read_together(cache, sources)
        pack, members = fullest_pack(disk_dir)
        by_id = {s.key.object_id: s for s in sources}
        before = cache.statistics().disk_bytes
        for number, object_id in enumerate(members):
            cache.forget(object_id)
            assert cache.cached_bytes(by_id[object_id].key) == 0
            for rest in members[number + 1:]:  # the others are still served from the pack
                source = by_id[rest]
                assert await cache.read(source.key, 0, BS, source.fetch) == source.data
                assert len(source.calls) == 1
            if number < len(members) - 1:
                assert pack in packs(disk_dir) and cache.statistics().disk_bytes == before
        assert cache.statistics().disk_bytes == before - len(members) * PACKED
        await until(lambda: pack not in packs(disk_dir))
    assert set(rows(disk_dir)) == {s.key.object_id for s in sources} - set(members)


async def test_the_budget_counts_a_pack_until_it_is_gone(disk_dir: Path) -> None:
    budget = 6 * PACKED
    async with open_block_cache(config(disk_dir, disk_bytes=budget)) as cache:
        for group in range(4):
            await read_together(cache, small_files(4, first=4 * group))
            assert cache.statistics().disk_bytes <= budget
            await until(lambda: sum(packs(disk_dir).values()) <= budget)
        newest = small_files(4, first=12)
        assert all(cache._disk is not None and cache._disk.contains(block_key(s.key, 0)) for s in newest)
        assert cache.statistics().disk_evictions >= 10
    assert sum(packs(disk_dir).values()) <= budget and set(rows(disk_dir)) >= {s.key.object_id for s in newest}


async def test_a_damaged_member_is_refetched_and_its_neighbours_still_served(disk_dir: Path) -> None:
    sources = small_files(8)
    async with open_block_cache(config(disk_dir)) as cache:
        await read_together(cache, sources)
    pack, members = fullest_pack(disk_dir)
    victim = members[1]
    path = disk_dir / "packs" / pack
    raw = bytearray(path.read_bytes())
    raw[rows(disk_dir)[victim][1] + blockfile.MEMBER_HEADER + 10] ^= 0x01  # one flipped bit
    path.write_bytes(bytes(raw))
    fresh = again(sources)
    async with open_block_cache(config(disk_dir)) as cache:
        for source in fresh:
            assert await cache.read(source.key, 0, BS, source.fetch) == source.data
        assert cache.statistics().corrupt_blocks == 1
    assert [s.key.object_id for s in fresh if s.calls] == [victim]


async def test_start_drops_rows_a_cut_pack_cannot_hold_and_sweeps_orphan_packs(disk_dir: Path) -> None:
    sources = small_files(8)
    async with open_block_cache(config(disk_dir)) as cache:
        await read_together(cache, sources)
    pack, members = fullest_pack(disk_dir)
    os.truncate(disk_dir / "packs" / pack, rows(disk_dir)[members[1]][1] + 10)  # a crash mid-write
    orphan = disk_dir / "packs" / ("0" * 32)
    orphan.write_bytes(b"no row for me")
    fresh = {s.key.object_id: s for s in again(sources)}
    async with open_block_cache(config(disk_dir)) as cache:
        assert cache.cached_bytes(fresh[members[0]].key) == BS
        assert all(cache.cached_bytes(fresh[m].key) == 0 for m in members[1:])
        for source in fresh.values():
            assert await cache.read(source.key, 0, BS, source.fetch) == source.data
    assert not orphan.exists()
    assert [i for i, s in fresh.items() if s.calls] == [i for i in fresh if i in members[1:]]


async def test_a_full_disk_leaves_no_pack_and_keeps_blocks_in_memory(
        disk_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write_all = blockfile._write_all

    def disk_full(fd: int, data: bytes | memoryview) -> None:
        real_write_all(fd, memoryview(data)[:len(data) // 2])  # a partial write, then:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(blockfile, "_write_all", disk_full)
    sources = small_files(6)
    async with open_block_cache(config(disk_dir, memory_bytes=1 << 20)) as cache:
        async with trio.open_nursery() as nursery:
            for source in sources:
                nursery.start_soon(cache.read, source.key, 0, BS, source.fetch)
        await until(lambda: cache.statistics().disk_write_errors == 6)
        assert cache.statistics().disk_bytes == 0 and packs(disk_dir) == {}
        for source in sources:
            assert await cache.read(source.key, 0, BS, source.fetch) == source.data
            assert len(source.calls) == 1  # from memory


async def test_eviction_takes_the_oldest_pack_whole_and_spares_the_others(disk_dir: Path) -> None:
    groups = [small_files(4, first=4 * n) for n in range(3)]
    async with open_block_cache(config(disk_dir, disk_bytes=12 * PACKED)) as cache:
        for group in groups:
            await read_together(cache, group)
        assert len(packs(disk_dir)) == 3, "each group read together shares a pack"
        for group in groups:  # one recently used file in each pack
            assert await cache.read(group[1].key, 0, BS, group[1].fetch) == group[1].data
        newest = small_files(4, first=12)
        await read_together(cache, newest)
        # The oldest block's pack went whole (its recently used member too);
        # no other pack lost a member.
        assert cache.statistics().disk_evictions == 4
        assert all(cache.cached_bytes(s.key) == 0 for s in groups[0])
        assert all(cache.cached_bytes(s.key) == BS for group in groups[1:] + [newest] for s in group)
    assert len(packs(disk_dir)) == 3


async def test_a_block_dropped_while_its_batch_is_written_is_written_dead(
        disk_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cache import disk as disk_module

    writing, release = threading.Event(), threading.Event()
    real = disk_module.apply_jobs

    def held_up(*args: object) -> object:
        writing.set()
        release.wait(10)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(disk_module, "apply_jobs", held_up)
    sources = small_files(4)
    async with open_block_cache(config(disk_dir)) as cache:
        tier = cache._disk
        assert tier is not None
        async with trio.open_nursery() as nursery:
            for source in sources:
                nursery.start_soon(cache.read, source.key, 0, BS, source.fetch)
        await until(writing.is_set)
        cache.forget(sources[0].key.object_id)  # its batch is in the worker thread now
        release.set()
        await until(lambda: all(tier.contains(block_key(s.key, 0)) for s in sources[1:]))
        assert not tier.contains(block_key(sources[0].key, 0))
        assert tier.used_bytes == sum(packs(disk_dir).values()) == 4 * PACKED  # the dead member counts
        for source in sources[1:]:
            cache.forget(source.key.object_id)
        assert tier.used_bytes == 0
        await until(lambda: packs(disk_dir) == {})
    assert rows(disk_dir) == {}
