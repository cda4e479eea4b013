"""The disk tier: persistence, LRU by bytes, damaged files, full disks, the directory.

Most tests give the memory tier no room (``memory_bytes=0``) so that every
cached read has to come from disk, and wait for the writer task (a worker
thread) with ``until`` on the real clock.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
from pathlib import Path

import pytest

from cache import BlockCache, CacheConfig, CacheDirectoryError, ObjectKey, open_block_cache
from cache import blockfile
from cache.keys import block_key
from tests.support.waiting import until

from .fakes import FakeSource, make_bytes

BS = blockfile.PACK_MAX  # whole blocks get files of their own (small ones: test_disk_packs.py)
FILE = blockfile.file_size(BS)  # bytes on disk of one whole block


def disk_config(disk_dir: Path, **overrides: object) -> CacheConfig:
    values: dict[str, object] = dict(block_size=BS, memory_bytes=0, disk_dir=disk_dir,
                                     disk_bytes=1 << 30, fetch_size=BS)
    values.update(overrides)
    return CacheConfig(**values)  # type: ignore[arg-type]


def block_file(disk_dir: Path, key: ObjectKey, index: int) -> Path:
    return blockfile.block_path(disk_dir, blockfile.block_name(block_key(key, index)))


def files_under(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file())


async def read_blocks(cache: BlockCache, source: FakeSource, *indices: int) -> None:
    """Read whole blocks one by one and wait until they are on disk."""
    for i in indices:
        got = await cache.read(source.key, i * BS, BS, source.fetch)
        assert got == source.data[i * BS:(i + 1) * BS]
    await until(lambda: all(cache._disk is not None
                            and cache._disk.contains(block_key(source.key, i))
                            for i in indices))


# -- persistence ----------------------------------------------------------------

async def test_blocks_survive_a_restart(disk_dir: Path) -> None:
    source = FakeSource(make_bytes(10 * BS + 123))
    cfg = disk_config(disk_dir, memory_bytes=1 << 20, fetch_size=4 * BS)
    async with open_block_cache(cfg) as cache:
        assert await cache.read(source.key, 0, 1 << 20, source.fetch) == source.data
    # A clean close drained the write queue: everything is on disk now.
    again = FakeSource(source.data)
    async with open_block_cache(cfg) as cache:
        assert cache.cached_bytes(again.key) == len(source.data)
        assert await cache.read(again.key, 0, 1 << 20, again.fetch) == source.data
        assert await cache.read(again.key, 5000, 7, again.fetch) == source.data[5000:5007]
        stats = cache.statistics()
    assert again.calls == []
    assert stats.disk_hits == 11 and stats.disk_misses == 0
    assert stats.disk_blocks == 11


async def test_a_new_version_is_not_served_from_the_old_versions_files(disk_dir: Path) -> None:
    old = FakeSource(make_bytes(3 * BS, seed=1), version="v1")
    async with open_block_cache(disk_config(disk_dir)) as cache:
        await read_blocks(cache, old, 0, 1, 2)
    new = FakeSource(make_bytes(3 * BS, seed=2), version="v2")
    async with open_block_cache(disk_config(disk_dir)) as cache:
        assert await cache.read(new.key, 0, 3 * BS, new.fetch) == new.data
        cache.forget(new.key.object_id, keep_version="v2")
        assert cache.cached_bytes(old.key) == 0
    async with open_block_cache(disk_config(disk_dir)) as cache:
        assert cache.cached_bytes(old.key) == 0
        assert cache.cached_bytes(new.key) == 3 * BS
    assert not any(block_file(disk_dir, old.key, i).exists() for i in range(3))


# -- LRU by bytes -------------------------------------------------------------

async def test_disk_evicts_the_least_recently_used_block_by_bytes(disk_dir: Path) -> None:
    source = FakeSource(make_bytes(8 * BS))
    async with open_block_cache(disk_config(disk_dir, disk_bytes=3 * FILE)) as cache:
        await read_blocks(cache, source, 0, 1, 2)
        await read_blocks(cache, source, 0)          # block 0 used again (a disk hit)
        assert len(source.calls) == 3
        await read_blocks(cache, source, 3)          # evicts block 1
        stats = cache.statistics()
        assert stats.disk_evictions == 1
        assert stats.disk_bytes == 3 * FILE
        await read_blocks(cache, source, 0)
        assert len(source.calls) == 4                # block 0 came from disk
        await read_blocks(cache, source, 1)
        assert source.calls[-1] == (BS, BS)          # block 1 had to be fetched
    await until(lambda: not block_file(disk_dir, source.key, 2).exists())
    assert len(files_under(disk_dir / "blocks")) == 3


async def test_the_lru_order_survives_a_restart(disk_dir: Path) -> None:
    source = FakeSource(make_bytes(8 * BS))
    cfg = disk_config(disk_dir, disk_bytes=3 * FILE)
    async with open_block_cache(cfg) as cache:
        await read_blocks(cache, source, 0, 1, 2)
        await read_blocks(cache, source, 0)          # 1 is now the oldest
    async with open_block_cache(cfg) as cache:
        await read_blocks(cache, source, 3)          # evicts 1, not 0
        assert cache.cached_bytes(source.key) == 3 * BS
        calls = len(source.calls)
        await read_blocks(cache, source, 0, 2)
        assert len(source.calls) == calls


async def test_a_smaller_budget_takes_effect_at_start(disk_dir: Path) -> None:
    source = FakeSource(make_bytes(6 * BS))
    async with open_block_cache(disk_config(disk_dir)) as cache:
        await read_blocks(cache, source, 0, 1, 2, 3, 4, 5)
    async with open_block_cache(disk_config(disk_dir, disk_bytes=2 * FILE)) as cache:
        stats = cache.statistics()
        assert stats.disk_blocks == 2 and stats.disk_bytes == 2 * FILE
        assert cache.cached_bytes(source.key) == 2 * BS  # the two most recent
        assert await cache.read(source.key, 4 * BS, 2 * BS, source.fetch) == source.data[4 * BS:]
        assert cache.statistics().disk_hits == 2
    assert len(files_under(disk_dir / "blocks")) == 2


async def test_a_block_larger_than_the_disk_budget_is_not_written(disk_dir: Path) -> None:
    source = FakeSource(make_bytes(BS))
    async with open_block_cache(disk_config(disk_dir, disk_bytes=BS)) as cache:
        assert await cache.read(source.key, 0, BS, source.fetch) == source.data
    assert files_under(disk_dir / "blocks") == []


# -- damaged files ------------------------------------------------------------

async def test_a_corrupt_block_file_is_refetched_never_served(disk_dir: Path) -> None:
    source = FakeSource(make_bytes(3 * BS))
    async with open_block_cache(disk_config(disk_dir)) as cache:
        await read_blocks(cache, source, 0, 1, 2)
    path = block_file(disk_dir, source.key, 1)
    raw = bytearray(path.read_bytes())
    raw[blockfile.HEADER_SIZE + 100] ^= 0x01    # one flipped bit in the payload
    path.write_bytes(bytes(raw))
    again = FakeSource(source.data)
    async with open_block_cache(disk_config(disk_dir)) as cache:
        assert await cache.read(again.key, 0, 3 * BS, again.fetch) == source.data
        assert again.calls == [(BS, BS)]
        assert cache.statistics().corrupt_blocks == 1
        await until(lambda: cache.statistics().disk_writes == 1)  # the good copy
    async with open_block_cache(disk_config(disk_dir)) as cache:
        assert await cache.read(again.key, 0, 3 * BS, again.fetch) == source.data
        assert cache.statistics().corrupt_blocks == 0
    assert len(again.calls) == 1


async def test_a_damaged_header_is_detected(disk_dir: Path) -> None:
    source = FakeSource(make_bytes(BS))
    async with open_block_cache(disk_config(disk_dir)) as cache:
        await read_blocks(cache, source, 0)
        path = block_file(disk_dir, source.key, 0)
        raw = bytearray(path.read_bytes())
        raw[0:8] = b"NOTABLK\n"
        path.write_bytes(bytes(raw))
        assert await cache.read(source.key, 0, BS, source.fetch) == source.data
        assert cache.statistics().corrupt_blocks == 1
        assert len(source.calls) == 2


async def test_a_truncated_block_file_is_refetched(disk_dir: Path) -> None:
    source = FakeSource(make_bytes(2 * BS))
    async with open_block_cache(disk_config(disk_dir)) as cache:
        await read_blocks(cache, source, 0, 1)
        os.truncate(block_file(disk_dir, source.key, 0), blockfile.HEADER_SIZE + 1000)
        assert await cache.read(source.key, 0, 2 * BS, source.fetch) == source.data
        assert cache.statistics().corrupt_blocks == 1
        assert source.calls[-1] == (0, BS)


async def test_a_vanished_block_file_is_refetched(disk_dir: Path) -> None:
    source = FakeSource(make_bytes(BS))
    async with open_block_cache(disk_config(disk_dir)) as cache:
        await read_blocks(cache, source, 0)
        block_file(disk_dir, source.key, 0).unlink()
        assert await cache.read(source.key, 0, BS, source.fetch) == source.data
        assert len(source.calls) == 2


async def test_start_drops_truncated_files_and_sweeps_leftovers(disk_dir: Path) -> None:
    source = FakeSource(make_bytes(3 * BS))
    async with open_block_cache(disk_config(disk_dir)) as cache:
        await read_blocks(cache, source, 0, 1, 2)
    os.truncate(block_file(disk_dir, source.key, 2), 10)   # a crash mid-write
    (disk_dir / "tmp" / "half-written").write_bytes(b"x" * 10)
    orphan = disk_dir / "blocks" / "ab" / ("ab" + "0" * 62)
    orphan.parent.mkdir(exist_ok=True)
    orphan.write_bytes(b"no row for me")
    async with open_block_cache(disk_config(disk_dir)) as cache:
        assert cache.cached_bytes(source.key) == 2 * BS
        assert await cache.read(source.key, 0, 3 * BS, source.fetch) == source.data
        assert source.calls[-1] == (2 * BS, BS)
    assert not orphan.exists()
    assert list((disk_dir / "tmp").iterdir()) == []


async def test_an_unreadable_index_empties_the_cache_instead_of_failing(
        disk_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    source = FakeSource(make_bytes(2 * BS))
    async with open_block_cache(disk_config(disk_dir)) as cache:
        await read_blocks(cache, source, 0, 1)
    for suffix in ("-wal", "-shm"):
        (disk_dir / ("index.sqlite3" + suffix)).unlink(missing_ok=True)
    (disk_dir / "index.sqlite3").write_bytes(b"this is not a database" * 100)
    with caplog.at_level(logging.WARNING, logger="cache"):
        async with open_block_cache(disk_config(disk_dir)) as cache:
            assert cache.cached_bytes(source.key) == 0
            assert await cache.read(source.key, 0, 2 * BS, source.fetch) == source.data
    assert "unusable" in caplog.text
    assert len(files_under(disk_dir / "blocks")) == 2  # the new copies only


async def test_a_block_size_change_empties_the_cache(disk_dir: Path) -> None:
    source = FakeSource(make_bytes(4 * BS))
    async with open_block_cache(disk_config(disk_dir)) as cache:
        await read_blocks(cache, source, 0, 1, 2, 3)
    async with open_block_cache(disk_config(disk_dir, block_size=2 * BS)) as cache:
        assert cache.cached_bytes(source.key) == 0
        assert cache.statistics().disk_blocks == 0
        assert await cache.read(source.key, 0, 4 * BS, source.fetch) == source.data
    assert len(files_under(disk_dir / "blocks")) == 2


# -- a full disk ----------------------------------------------------------------

async def test_a_full_disk_degrades_to_memory_only(
        disk_dir: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    real_write_all = blockfile._write_all

    def disk_full(fd: int, data: bytes | memoryview) -> None:
        real_write_all(fd, memoryview(data)[:len(data) // 2])  # a partial write, then:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(blockfile, "_write_all", disk_full)
    source = FakeSource(make_bytes(4 * BS))
    cfg = disk_config(disk_dir, memory_bytes=1 << 20, fetch_size=4 * BS)
    with caplog.at_level(logging.WARNING, logger="cache"):
        async with open_block_cache(cfg) as cache:
            assert await cache.read(source.key, 0, 4 * BS, source.fetch) == source.data
            await until(lambda: cache.statistics().disk_write_errors == 4)
            stats = cache.statistics()
            assert stats.disk_blocks == 0 and stats.disk_bytes == 0
            # Still served, from memory.
            assert await cache.read(source.key, 0, 4 * BS, source.fetch) == source.data
            assert len(source.calls) == 1
            assert cache.cached_bytes(source.key) == 4 * BS
            # Space again: new blocks reach the disk.
            monkeypatch.setattr(blockfile, "_write_all", real_write_all)
            other = FakeSource(make_bytes(BS, seed=5), object_id="ctera:2")
            assert await cache.read(other.key, 0, BS, other.fetch) == other.data
            await until(lambda: cache.statistics().disk_writes == 1)
    warnings = [r for r in caplog.records if "cannot write block files" in r.getMessage()]
    assert len(warnings) == 1  # logged once, not once per block
    assert list((disk_dir / "tmp").iterdir()) == []  # no partial temp files left
    assert len(files_under(disk_dir / "blocks")) == 1


# -- the directory ----------------------------------------------------------------

async def test_the_directory_is_created_private(tmp_path: Path) -> None:
    disk_dir = tmp_path / "deep" / "cache"
    async with open_block_cache(disk_config(disk_dir)):
        pass
    assert stat.S_IMODE(disk_dir.stat().st_mode) == 0o700
    for sub in ("blocks", "tmp"):
        assert stat.S_IMODE((disk_dir / sub).stat().st_mode) == 0o700


async def test_an_open_directory_is_made_private(disk_dir: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    disk_dir.mkdir()
    disk_dir.chmod(0o755)
    with caplog.at_level(logging.WARNING, logger="cache"):
        async with open_block_cache(disk_config(disk_dir)):
            pass
    assert stat.S_IMODE(disk_dir.stat().st_mode) == 0o700
    assert "setting 0700" in caplog.text


async def test_block_files_are_private(disk_dir: Path) -> None:
    source = FakeSource(make_bytes(BS))
    async with open_block_cache(disk_config(disk_dir)) as cache:
        await read_blocks(cache, source, 0)
    assert stat.S_IMODE(block_file(disk_dir, source.key, 0).stat().st_mode) == 0o600


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the directory away")
async def test_a_directory_of_another_user_is_refused(disk_dir: Path) -> None:
    disk_dir.mkdir(mode=0o700)
    os.chown(disk_dir, 12345, 12345)
    with pytest.raises(CacheDirectoryError):
        async with open_block_cache(disk_config(disk_dir)):
            pass


async def test_two_caches_cannot_share_a_directory(disk_dir: Path) -> None:
    async with open_block_cache(disk_config(disk_dir)):
        with pytest.raises(CacheDirectoryError):
            async with open_block_cache(disk_config(disk_dir)):
                pass
    async with open_block_cache(disk_config(disk_dir)):
        pass  # the lock went with the first cache


def test_block_names_cannot_collide_across_id_and_version() -> None:
    names = {blockfile.block_name(k) for k in (
        block_key(ObjectKey("a\0b", "c", 1), 0), block_key(ObjectKey("a", "b\0c", 1), 0),
        block_key(ObjectKey("a1", "", 1), 0), block_key(ObjectKey("a", "1", 1), 0),
        block_key(ObjectKey("a", "v", 1), 10), block_key(ObjectKey("a", "v1", 1), 0))}
    assert len(names) == 6
