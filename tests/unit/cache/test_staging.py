"""The staging store: lazy base content, what writes fetch, truncation, streaming, bookkeeping.

The base version is a ``FakeSource`` (bytes in memory behind a fetch that
records every range and asserts nothing past the base's end is asked for).
Expected contents come from a plain ``bytearray`` edited like the file.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest
import trio

from cache import CacheDirectoryError
from cache.flights import IncompleteFetch
from cache.staging import ContentChanged, StagingStore, open_staging_store

from .fakes import FakeSource, make_bytes

BS = 4096


async def no_base(offset: int, length: int) -> bytes:
    raise AssertionError(f"the base was fetched ({offset}, {length})")


async def collect(store: StagingStore, record_id: int, fetch: object, chunk: int = 3 * BS) -> bytes:
    return b"".join([part async for part in store.content(record_id, fetch, chunk)])  # type: ignore[arg-type]


@pytest.fixture
def staging_dir(tmp_path: Path) -> Path:
    return tmp_path / "staging"


# -- lazy reads -----------------------------------------------------------------

async def test_untouched_content_is_the_base_and_fetches_only_what_is_read(
        staging_dir: Path) -> None:
    base = FakeSource(make_bytes(100 * BS + 17))
    async with open_staging_store(staging_dir, block_size=BS) as store:
        staged = await store.create(("a.bin",), object_id="ctera:1", base_version="v1",
                                    base_size=len(base.data))
        assert staged.size == len(base.data) and staged.state == "open"
        assert staged.from_base == len(base.data)
        got = await store.read(staged.id, 10 * BS + 5, 300, base.fetch)
        assert got == base.data[10 * BS + 5:10 * BS + 305]
        assert base.calls == [(10 * BS + 5, 300)]
        # Past the end: clipped, and nothing beyond the base is asked for.
        tail = await store.read(staged.id, len(base.data) - 3, 100, base.fetch)
        assert tail == base.data[-3:]
        assert await store.read(staged.id, len(base.data), 10, base.fetch) == b""
        # Read-only access stores nothing.
        assert store.usage() == 0
        assert not any((staging_dir / "data").iterdir())


async def test_a_base_that_returns_more_than_asked_is_cut(staging_dir: Path) -> None:
    base = FakeSource(make_bytes(10 * BS))
    base.extra = 5000
    async with open_staging_store(staging_dir, block_size=BS) as store:
        staged = await store.create(("f",), base_size=len(base.data))
        assert await store.read(staged.id, 100, 50, base.fetch) == base.data[100:150]
        await store.write(staged.id, BS + 10, b"x", base.fetch)
        assert await collect(store, staged.id, base.fetch) == \
            base.data[:BS + 10] + b"x" + base.data[BS + 11:]


async def test_a_short_base_raises_incomplete_fetch(staging_dir: Path) -> None:
    base = FakeSource(make_bytes(10 * BS))
    base.truncate_at = 5 * BS
    async with open_staging_store(staging_dir, block_size=BS) as store:
        staged = await store.create(("f",), base_size=len(base.data))
        with pytest.raises(IncompleteFetch):
            await store.read(staged.id, 6 * BS, 10, base.fetch)
        with pytest.raises(IncompleteFetch):
            await store.write(staged.id, 7 * BS + 1, b"y", base.fetch)
        assert store.usage() == 0  # the failed write stored nothing


# -- what writes fetch ------------------------------------------------------------

async def test_a_write_in_the_middle_fetches_only_its_partial_blocks(staging_dir: Path) -> None:
    base = FakeSource(make_bytes(1000 * BS))
    model = bytearray(base.data)
    async with open_staging_store(staging_dir, block_size=BS) as store:
        staged = await store.create(("big",), base_size=len(base.data))
        # From the middle of block 500 to the middle of block 503.
        offset, data = 500 * BS + 100, make_bytes(3 * BS, seed=7)
        assert await store.write(staged.id, offset, data, base.fetch) == len(data)
        model[offset:offset + len(data)] = data
        # Only the head of block 500 and the tail of block 503 were needed.
        assert sorted(base.calls) == [(500 * BS, 100), (503 * BS + 100, BS - 100)]
        # Four blocks are now local; the rest still comes from the base.
        assert store.usage() == 4 * BS
        assert store.get(staged.id).from_base == len(base.data) - 4 * BS
        base.calls.clear()
        assert await store.read(staged.id, 499 * BS, 6 * BS, base.fetch) == \
            bytes(model[499 * BS:505 * BS])
        assert sorted(base.calls) == [(499 * BS, BS), (504 * BS, BS)]


async def test_a_write_inside_one_block_fetches_that_block_once(staging_dir: Path) -> None:
    base = FakeSource(make_bytes(8 * BS))
    async with open_staging_store(staging_dir, block_size=BS) as store:
        staged = await store.create(("f",), base_size=len(base.data))
        await store.write(staged.id, 3 * BS + 10, b"hello", base.fetch)
        assert base.calls == [(3 * BS, BS)]
        await store.write(staged.id, 3 * BS + 100, b"again", base.fetch)  # now present
        assert base.calls == [(3 * BS, BS)]
        assert base.fetch_count_of(3 * BS, BS) == 1


async def test_aligned_whole_block_writes_fetch_nothing(staging_dir: Path) -> None:
    base = FakeSource(make_bytes(10 * BS + 300))
    model = bytearray(base.data)
    async with open_staging_store(staging_dir, block_size=BS) as store:
        staged = await store.create(("f",), base_size=len(base.data))
        for offset, data in [(2 * BS, make_bytes(3 * BS, 1)),
                             (10 * BS, make_bytes(300, 2)),       # the short last block, whole
                             (9 * BS, make_bytes(BS + 300, 3))]:  # up to the end
            await store.write(staged.id, offset, data, no_base)
            model[offset:offset + len(data)] = data
        assert base.calls == []
        assert await collect(store, staged.id, base.fetch) == bytes(model)
        # content() fetched only the blocks never written: 0-1 and 5-8.
        assert base.fetched_bytes == 6 * BS


async def test_writing_past_the_base_end_fetches_only_the_base_s_last_block(
        staging_dir: Path) -> None:
    base = FakeSource(make_bytes(2 * BS + 100))
    async with open_staging_store(staging_dir, block_size=BS) as store:
        staged = await store.create(("f",), base_size=len(base.data))
        await store.write(staged.id, 2 * BS + 100, b"appended", base.fetch)
        assert base.calls == [(2 * BS, 100)]
        await store.write(staged.id, 5 * BS, b"far", no_base)
        expected = base.data + b"appended" + bytes(5 * BS - (2 * BS + 108)) + b"far"
        assert store.get(staged.id).size == len(expected)
        assert await collect(store, staged.id, base.fetch) == expected


async def test_sparse_writes_past_eof_read_as_zeros_and_stay_sparse(staging_dir: Path) -> None:
    async with open_staging_store(staging_dir, block_size=BS) as store:
        staged = await store.create(("new",), truncate=True)
        assert staged.size == 0 and staged.from_base == 0
        await store.write(staged.id, 5, b"abc", no_base)
        await store.write(staged.id, 1000 * BS + 7, b"xyz", no_base)
        expected = bytearray(1000 * BS + 10)
        expected[5:8] = b"abc"
        expected[1000 * BS + 7:] = b"xyz"
        assert store.get(staged.id).size == len(expected)
        assert await store.read(staged.id, 0, len(expected), no_base) == bytes(expected)
        # Two blocks charged, the second only to the end of the file.
        assert store.usage() == BS + 10
        st = os.stat(staging_dir / "data" / str(staged.id))
        assert st.st_blocks * 512 < 100 * BS


async def test_truncate_true_never_reads_the_base(staging_dir: Path) -> None:
    async with open_staging_store(staging_dir, block_size=BS) as store:
        staged = await store.create(("f",), object_id="ctera:9", base_version="v3",
                                    base_size=50 * BS, truncate=True)
        assert (staged.size, staged.base_version, staged.base_size) == (0, "v3", 50 * BS)
        await store.write(staged.id, 3, b"data", no_base)
        await store.truncate(staged.id, 4 * BS, no_base)
        assert await collect(store, staged.id, no_base) == bytes(3) + b"data" + bytes(4 * BS - 7)


# -- truncation -----------------------------------------------------------------------

async def test_shrink_then_grow_gives_zeros_not_the_base(staging_dir: Path) -> None:
    base = FakeSource(make_bytes(10 * BS))
    async with open_staging_store(staging_dir, block_size=BS) as store:
        staged = await store.create(("f",), base_size=len(base.data))
        await store.truncate(staged.id, 3 * BS + 100, no_base)
        assert store.get(staged.id).size == 3 * BS + 100
        await store.truncate(staged.id, 6 * BS, no_base)
        expected = base.data[:3 * BS + 100] + bytes(3 * BS - 100)
        assert await store.read(staged.id, 0, 10 * BS, base.fetch) == expected
        # Only the part of block 3 still below the cut came from the base.
        assert max(offset + length for offset, length in base.calls) == 3 * BS + 100


async def test_shrink_into_a_written_block_then_grow_zeroes_its_stale_tail(
        staging_dir: Path) -> None:
    async with open_staging_store(staging_dir, block_size=BS) as store:
        staged = await store.create(("f",), truncate=True)
        await store.write(staged.id, 0, b"\xff" * (2 * BS), no_base)
        await store.commit(staged.id)
        await store.truncate(staged.id, BS + 10, no_base)
        await store.truncate(staged.id, 2 * BS, no_base)
        assert await store.read(staged.id, 0, 2 * BS, no_base) == b"\xff" * (BS + 10) + \
            bytes(BS - 10)
        # Growing by a write past the end inside the same block as well.
        await store.truncate(staged.id, BS + 10, no_base)
        await store.write(staged.id, BS + 20, b"!", no_base)
        assert await store.read(staged.id, BS, BS, no_base) == b"\xff" * 10 + bytes(10) + b"!"


async def test_shrink_keeps_the_committed_length_until_the_next_commit(
        staging_dir: Path) -> None:
    async with open_staging_store(staging_dir, block_size=BS) as store:
        staged = await store.create(("f",), truncate=True)
        await store.write(staged.id, 0, make_bytes(8 * BS), no_base)
        await store.commit(staged.id)
        data_file = staging_dir / "data" / str(staged.id)
        await store.truncate(staged.id, BS, no_base)
        assert data_file.stat().st_size == 8 * BS  # the committed snapshot still needs it
        assert store.usage() == 8 * BS
        await store.commit(staged.id)
        assert data_file.stat().st_size == BS
        assert store.usage() == BS


# -- content() ---------------------------------------------------------------------------

async def test_content_streams_the_model_and_fetches_only_missing_blocks(
        staging_dir: Path) -> None:
    base = FakeSource(make_bytes(20 * BS + 5))
    model = bytearray(base.data)
    async with open_staging_store(staging_dir, block_size=BS) as store:
        staged = await store.create(("f",), base_size=len(base.data))
        for offset in (0, 7 * BS, 19 * BS):
            await store.write(staged.id, offset, b"\x01" * BS, no_base)
            model[offset:offset + BS] = b"\x01" * BS
        usage = store.usage()
        chunks = [part async for part in store.content(staged.id, base.fetch, 2 * BS)]
        assert b"".join(chunks) == bytes(model)
        assert all(len(part) == 2 * BS for part in chunks[:-1])
        fetched = {offset // BS for offset, length in base.calls
                   for offset in range(offset, offset + length, BS)}
        assert fetched == set(range(1, 7)) | set(range(8, 19)) | {20}
        assert store.usage() == usage  # nothing fetched was stored


async def test_content_of_an_empty_file_is_empty(staging_dir: Path) -> None:
    async with open_staging_store(staging_dir, block_size=BS) as store:
        staged = await store.create(("f",), truncate=True)
        assert await collect(store, staged.id, no_base) == b""


async def test_content_raises_if_the_file_changes_while_streaming(staging_dir: Path) -> None:
    base = FakeSource(make_bytes(10 * BS))
    async with open_staging_store(staging_dir, block_size=BS) as store:
        staged = await store.create(("f",), base_size=len(base.data))
        stream = store.content(staged.id, base.fetch, BS)
        assert await stream.__anext__() == base.data[:BS]  # type: ignore[attr-defined]
        await store.write(staged.id, 5 * BS, b"z", base.fetch)
        with pytest.raises(ContentChanged):
            await stream.__anext__()  # type: ignore[attr-defined]


# -- concurrency --------------------------------------------------------------------------

async def test_a_read_during_a_slow_write_fill_sees_a_consistent_file(staging_dir: Path) -> None:
    base = FakeSource(make_bytes(4 * BS))
    base.gate = trio.Event()
    async with open_staging_store(staging_dir, block_size=BS) as store:
        staged = await store.create(("f",), base_size=len(base.data))
        results: list[bytes] = []

        async def writer() -> None:
            await store.write(staged.id, BS + 1, b"W", base.fetch)

        async def reader() -> None:
            results.append(await store.read(staged.id, BS, 4, base.fetch))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(writer)
            await base.started.wait()
            nursery.start_soon(reader)
            await trio.sleep(0.01)
            base.gate.set()
        assert results[0] in (base.data[BS:BS + 4],
                              base.data[BS:BS + 1] + b"W" + base.data[BS + 2:BS + 4])
        assert await store.read(staged.id, BS, 4, base.fetch) == \
            base.data[BS:BS + 1] + b"W" + base.data[BS + 2:BS + 4]


async def test_a_cancelled_write_fill_changes_nothing(staging_dir: Path) -> None:
    base = FakeSource(make_bytes(4 * BS))
    base.gate = trio.Event()  # never set
    async with open_staging_store(staging_dir, block_size=BS) as store:
        staged = await store.create(("f",), base_size=len(base.data))
        with trio.move_on_after(0.05):
            await store.write(staged.id, 10, b"x", base.fetch)
        base.gate = None
        assert await collect(store, staged.id, base.fetch) == base.data
        assert store.usage() == 0


# -- limits and full disks -------------------------------------------------------------

async def test_max_bytes_is_enforced_and_a_refused_write_changes_nothing(
        staging_dir: Path) -> None:
    async with open_staging_store(staging_dir, block_size=BS, max_bytes=3 * BS) as store:
        one = await store.create(("one",), truncate=True)
        two = await store.create(("two",), truncate=True)
        await store.write(one.id, 0, b"a" * (2 * BS), no_base)
        await store.write(two.id, 0, b"b" * BS, no_base)
        assert store.usage() == 3 * BS
        await store.write(two.id, 10, b"overwrite", no_base)  # costs nothing more
        with pytest.raises(OSError) as excinfo:
            await store.write(two.id, BS, b"c", no_base)
        assert excinfo.value.errno == errno.ENOSPC
        with pytest.raises(OSError) as excinfo:
            await store.write(one.id, 5 * BS, b"c", no_base)
        assert excinfo.value.errno == errno.ENOSPC
        assert store.get(two.id).size == BS and store.usage() == 3 * BS
        assert await store.read(two.id, 0, 2 * BS, no_base) == \
            b"b" * 10 + b"overwrite" + b"b" * (BS - 19)
        # Space comes back with a discard.
        await store.discard(one.id)
        await store.write(two.id, BS, b"c", no_base)
        assert store.usage() == BS + 1


async def test_enospc_from_the_disk_reaches_the_writer_and_keeps_committed_data(
        staging_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cache import stagingdata

    base = FakeSource(make_bytes(6 * BS))
    async with open_staging_store(staging_dir, block_size=BS) as store:
        staged = await store.create(("f",), base_size=len(base.data))
        await store.write(staged.id, 0, b"committed", base.fetch)
        await store.commit(staged.id)
        expected = b"committed" + base.data[9:]
        usage = store.usage()
        real_write = stagingdata.write_at
        calls = 0

        def full_disk(fd: int, data: bytes | memoryview, offset: int) -> int:
            # Write part of the first piece, then fail: a disk filling up mid-write.
            nonlocal calls
            calls += 1
            if calls == 1 and len(data) > 1:
                return real_write(fd, memoryview(data)[:len(data) // 2], offset)
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(stagingdata, "write_at", full_disk)
        for offset, data in [(3 * BS + 5, b"lost" * 10), (6 * BS + 100, b"appended")]:
            calls = 0
            with pytest.raises(OSError) as excinfo:
                await store.write(staged.id, offset, data, base.fetch)
            assert excinfo.value.errno == errno.ENOSPC
        monkeypatch.setattr(stagingdata, "write_at", real_write)
        record = store.get(staged.id)
        assert record.size == len(base.data) and record.state == "pending"
        assert await collect(store, staged.id, base.fetch) == expected
        # The failed append left no tail; at most a scribbled block is charged.
        assert (staging_dir / "data" / str(staged.id)).stat().st_size == BS
        assert usage <= store.usage() <= usage + BS
        # And the file is still writable and committable.
        await store.write(staged.id, 3 * BS + 5, b"ok", base.fetch)
        await store.commit(staged.id)
    async with open_staging_store(staging_dir, block_size=BS) as store:
        assert await collect(store, staged.id, base.fetch) == \
            expected[:3 * BS + 5] + b"ok" + expected[3 * BS + 7:]


# -- bookkeeping -----------------------------------------------------------------------

async def test_records_update_and_discard(staging_dir: Path) -> None:
    now = [1000.0]
    async with open_staging_store(staging_dir, block_size=BS, clock=lambda: now[0]) as store:
        first = await store.create(("dir", "a"), mtime=5.0)
        second = await store.create(("b",), object_id="ctera:2", base_version="v1",
                                    base_size=10)
        assert [r.id for r in store.records()] == [first.id, second.id]
        assert (first.mtime, first.dirty_since) == (5.0, 1000.0)
        now[0] = 1010.0
        await store.write(first.id, 0, b"x", no_base)
        assert (store.get(first.id).mtime, store.get(first.id).dirty_since) == (1010.0, 1010.0)
        await store.set_mtime(first.id, 42.0)
        assert store.get(first.id).mtime == 42.0
        updated = await store.update(second.id, path=("c",), state="held", attempts=3,
                                     last_error="quota", meta={"mode": "644"},
                                     base_version="v2")
        assert (updated.path, updated.state, updated.attempts, updated.last_error,
                updated.meta, updated.base_version, updated.object_id) == \
            (("c",), "held", 3, "quota", {"mode": "644"}, "v2", "ctera:2")
        cleared = await store.update(second.id, last_error=None)
        assert cleared.last_error is None and cleared.state == "held"
        with pytest.raises(ValueError):
            await store.update(second.id, state="bogus")
        await store.commit(first.id)
        await store.discard(first.id)
        with pytest.raises(KeyError):
            store.get(first.id)
        with pytest.raises(KeyError):
            await store.read(first.id, 0, 1, no_base)
        assert [r.id for r in store.records()] == [second.id]
        assert not (staging_dir / "data" / str(first.id)).exists()
    async with open_staging_store(staging_dir, block_size=BS) as store:
        # Bookkeeping is durable at once; the content snapshot only at commit —
        # and this record was never committed, so it is gone.
        assert store.records() == []
        third = await store.create(("d",))
        assert third.id > second.id  # ids are never reused


async def test_bookkeeping_survives_a_reopen(staging_dir: Path) -> None:
    async with open_staging_store(staging_dir, block_size=BS) as store:
        staged = await store.create(("x", "\udcff-odd"), truncate=True)
        await store.write(staged.id, 0, b"abc", no_base)
        await store.commit(staged.id)
        await store.update(staged.id, path=("y", "renamed"), meta={"conflict": "y (1)"},
                           object_id="ctera:7", base_version="v9", base_size=3,
                           state="uploading", attempts=1)
    async with open_staging_store(staging_dir, block_size=2 * BS) as store:
        (record,) = store.records()
        assert (record.path, record.meta, record.object_id, record.base_version,
                record.base_size, record.size, record.attempts) == \
            (("y", "renamed"), {"conflict": "y (1)"}, "ctera:7", "v9", 3, 3, 1)
        assert record.state == "pending"  # the upload was interrupted
        assert await store.read(record.id, 0, 10, no_base) == b"abc"


async def test_a_closed_store_refuses_calls(staging_dir: Path) -> None:
    async with open_staging_store(staging_dir, block_size=BS) as store:
        staged = await store.create(("f",), truncate=True)
    with pytest.raises(trio.ClosedResourceError):
        await store.write(staged.id, 0, b"x", no_base)
    with pytest.raises(trio.ClosedResourceError):
        store.records()


# -- the directory ----------------------------------------------------------------------------

async def test_directory_is_private_and_fixed(staging_dir: Path, caplog: pytest.LogCaptureFixture
                                              ) -> None:
    async with open_staging_store(staging_dir):
        pass
    assert stat.S_IMODE(staging_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((staging_dir / "data").stat().st_mode) == 0o700
    staging_dir.chmod(0o755)
    async with open_staging_store(staging_dir):
        pass
    assert stat.S_IMODE(staging_dir.stat().st_mode) == 0o700
    assert "had mode 755" in caplog.text


async def test_a_second_open_of_the_same_directory_fails_clearly(staging_dir: Path) -> None:
    async with open_staging_store(staging_dir):
        with pytest.raises(CacheDirectoryError, match="in use by another process"):
            async with open_staging_store(staging_dir):
                pass
    async with open_staging_store(staging_dir):  # the lock went with the first store
        pass


async def test_an_unreadable_journal_is_refused_not_replaced(staging_dir: Path) -> None:
    staging_dir.mkdir(mode=0o700)
    journal = staging_dir / "journal.sqlite3"
    journal.write_bytes(b"this is not a database" * 100)
    with pytest.raises(CacheDirectoryError, match="unusable"):
        async with open_staging_store(staging_dir):
            pass
    assert journal.read_bytes() == b"this is not a database" * 100
    journal.unlink()
    async with open_staging_store(staging_dir):  # the failed open released the lock
        pass


async def test_a_full_journal_is_enospc_and_keeps_the_previous_commit(staging_dir: Path) -> None:
    async with open_staging_store(staging_dir, block_size=BS) as store:
        staged = await store.create(("f",), truncate=True)
        await store.write(staged.id, 0, b"first", no_base)
        await store.commit(staged.id)
        await store.write(staged.id, 100, b"second", no_base)
        # Let SQLite itself run out of room: no page may be added any more.
        db = store._journal._db
        (pages,) = db.execute("PRAGMA page_count").fetchone()
        db.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(OSError) as excinfo:
            await store.create(("g" * 20_000,))  # needs new pages
        assert excinfo.value.errno == errno.ENOSPC
        with pytest.raises(OSError) as excinfo:
            await store.update(staged.id, meta={"padding": "x" * 20_000})
        assert excinfo.value.errno == errno.ENOSPC
        assert store.get(staged.id).meta == {}
        assert [r.id for r in store.records()] == [staged.id]  # no half-made record
    async with open_staging_store(staging_dir, block_size=BS) as store:
        (record,) = store.records()
        assert await store.read(record.id, 0, 200, no_base) == b"first"


async def test_a_failed_commit_keeps_the_previous_snapshot(
        staging_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cache.stagingjournal import Journal

    async with open_staging_store(staging_dir, block_size=BS) as store:
        staged = await store.create(("f",), truncate=True)
        await store.write(staged.id, 0, b"first", no_base)
        await store.commit(staged.id)
        await store.write(staged.id, 2 * BS, b"second", no_base)

        def refuse(*args: object, **kwargs: object) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(Journal, "save_content", refuse)
        with pytest.raises(OSError):
            await store.commit(staged.id, state="held")
        assert store.get(staged.id).state == "pending"
    async with open_staging_store(staging_dir, block_size=BS) as store:
        (record,) = store.records()
        assert (record.size, record.state) == (5, "pending")
        assert await store.read(record.id, 0, 3 * BS, no_base) == b"first"


async def test_content_notices_a_discard_but_not_a_no_op_truncate(staging_dir: Path) -> None:
    async with open_staging_store(staging_dir, block_size=BS) as store:
        staged = await store.create(("f",), truncate=True)
        await store.write(staged.id, 0, b"x" * (3 * BS), no_base)
        stream = store.content(staged.id, no_base, BS)
        assert await stream.__anext__() == b"x" * BS  # type: ignore[attr-defined]
        await store.truncate(staged.id, 3 * BS, no_base)
        await store.set_mtime(staged.id, 1.0)
        assert await stream.__anext__() == b"x" * BS  # type: ignore[attr-defined]
        await store.discard(staged.id)
        with pytest.raises(ContentChanged):
            await stream.__anext__()  # type: ignore[attr-defined]


async def test_a_path_must_be_a_sequence_of_names(staging_dir: Path) -> None:
    async with open_staging_store(staging_dir, block_size=BS) as store:
        with pytest.raises(TypeError):
            await store.create("a.txt")  # type: ignore[arg-type]
        staged = await store.create(["dir", "a.txt"])
        assert staged.path == ("dir", "a.txt")
        with pytest.raises(TypeError):
            await store.update(staged.id, path="b.txt")  # type: ignore[arg-type]
