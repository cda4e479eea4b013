"""Many concurrent readers, two versions, forget, tiny tiers and restarts: bytes stay exact."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cache import CacheConfig, open_block_cache
from cache import blockfile

from .fakes import FakeSource, make_bytes

BS = 512
SIZE = 40 * BS + 77


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 100),
       reads=st.lists(st.tuples(st.booleans(), st.integers(0, SIZE + BS),
                                st.integers(0, 6 * BS), st.booleans()),
                      min_size=1, max_size=25),
       forget_after=st.integers(0, 25),
       memory_blocks=st.sampled_from([0, 2, 1000]),
       disk_blocks=st.sampled_from([1, 3, 1000]))
async def test_concurrent_reads_over_tiny_tiers_and_restarts_stay_exact(
        seed: int, reads: list[tuple[bool, int, int, bool]], forget_after: int,
        memory_blocks: int, disk_blocks: int) -> None:
    v1 = FakeSource(make_bytes(SIZE, seed), version="v1")
    v2 = FakeSource(make_bytes(SIZE, seed + 1), version="v2")
    budget = disk_blocks * blockfile.stored_size(BS)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = CacheConfig(block_size=BS, memory_bytes=memory_blocks * BS,
                          disk_dir=Path(tmp) / "cache", disk_bytes=budget,
                          fetch_size=2 * BS, max_readahead=8 * BS, parallel_fetches=3,
                          disk_write_queue=2, sequential_slack=BS)
        for _round in range(2):  # the second round starts from what the first left on disk
            results: dict[int, bytes] = {}
            async with open_block_cache(cfg) as cache:
                streams = {"v1": cache.stream(), "v2": cache.stream()}

                async def reader(i: int, source: FakeSource, offset: int, length: int,
                                 with_stream: bool) -> None:
                    stream = streams[source.key.version] if with_stream else None
                    results[i] = await cache.read(source.key, offset, length, source.fetch,
                                                  stream)

                async with trio.open_nursery() as nursery:
                    for i, (newer, offset, length, with_stream) in enumerate(reads):
                        if i == forget_after:
                            cache.forget("ctera:1", keep_version="v2")
                        source = v2 if newer else v1
                        nursery.start_soon(reader, i, source, offset, length, with_stream)
                        if i % 3 == 0:
                            await trio.lowlevel.checkpoint()
                stats = cache.statistics()
                assert stats.disk_bytes <= budget
                assert stats.memory_bytes <= memory_blocks * BS
            for i, (newer, offset, length, _) in enumerate(reads):
                source = v2 if newer else v1
                assert results[i] == source.data[offset:offset + length], i
            files = [p for p in (Path(tmp) / "cache" / "blocks").rglob("*") if p.is_file()]
            packs = list((Path(tmp) / "cache" / "packs").iterdir())
            assert sum(p.stat().st_size for p in files + packs) <= budget
            assert list((Path(tmp) / "cache" / "tmp").iterdir()) == []
            # After a clean close the index and the files agree exactly: every
            # block file and every pack is used by a row, and every row's file is there.
            db = sqlite3.connect(Path(tmp) / "cache" / "index.sqlite3")
            try:
                rows = db.execute("SELECT name, pack FROM blocks").fetchall()
            finally:
                db.close()
            assert {name for name, pack in rows if pack is None} == {p.name for p in files}
            assert {pack for _, pack in rows if pack is not None} == {p.name for p in packs}
