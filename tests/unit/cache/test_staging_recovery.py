"""The staging store after a crash: ``kill -9`` of a real process, and leftovers found at open.

The crash tests run the store in a child process that commits, goes on
writing without committing, reports, and is killed with SIGKILL while still
holding the directory; the test then reopens the directory and compares with
a model of what was committed.
"""

from __future__ import annotations

import errno
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from cache.staging import open_staging_store

BS = 4096
ROOT = Path(__file__).resolve().parents[3]
BASE = random.Random(1).randbytes(40 * BS + 123)


async def fetch_base(offset: int, length: int) -> bytes:
    assert 0 <= offset < len(BASE)
    return BASE[offset:offset + length]


async def no_base(offset: int, length: int) -> bytes:
    raise AssertionError(f"the base was fetched ({offset}, {length})")


CHILD = textwrap.dedent("""
    import random, sys
    from pathlib import Path
    import trio
    from cache.staging import open_staging_store

    BS = 4096
    BASE = random.Random(1).randbytes(40 * BS + 123)

    async def fetch(offset, length):
        return BASE[offset:offset + length]

    async def main(directory, scenario):
        async with open_staging_store(Path(directory), block_size=BS, inline_max=16 * BS) as store:
            if scenario == "inline":
                s = await store.create(("small.txt",), truncate=True)
                await store.write(s.id, BS, b"I" * (2 * BS + 5), fetch)  # a hole, then data
                await store.commit(s.id)
                await store.write(s.id, 0, b"J" * (20 * BS), fetch)      # over it, past the limit
                print("READY", s.id, flush=True)
                await trio.sleep_forever()
            s = await store.create(("doc.bin",), object_id="ctera:1", base_version="v1",
                                   base_size=len(BASE))
            await store.write(s.id, 5 * BS + 100, b"A" * (3 * BS), fetch)
            await store.write(s.id, len(BASE) + 10, b"B" * 5000, fetch)
            if scenario != "uncommitted":
                await store.commit(s.id)
            if scenario == "later-writes":
                await store.write(s.id, 20 * BS + 7, b"C" * 100, fetch)  # a new block
                await store.write(s.id, 60 * BS, b"D" * BS, fetch)       # far past the end
                await store.set_mtime(s.id, 12345.0)
                await store.truncate(s.id, 3 * BS, fetch)                # below committed blocks
            elif scenario == "rewrite":
                await store.truncate(s.id, 0, fetch)
                await store.write(s.id, 0, b"E" * (10 * BS), fetch)     # over committed blocks
            elif scenario == "uploading":
                await store.update(s.id, state="uploading", attempts=1)
            print("READY", s.id, flush=True)
            await trio.sleep_forever()

    trio.run(main, sys.argv[1], sys.argv[2])
""")


def committed_model() -> bytes:
    model = bytearray(BASE)
    model[5 * BS + 100:8 * BS + 100] = b"A" * (3 * BS)
    model.extend(bytes(10))
    model.extend(b"B" * 5000)
    return bytes(model)


def run_and_kill(directory: Path, scenario: str) -> int:
    """Run the child until it reports, SIGKILL it; returns the record id it made."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(directory), scenario],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        assert line.startswith("READY"), (line, child.stderr.read() if child.stderr else "")
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
        return int(line.split()[1])
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        for stream in (child.stdout, child.stderr):
            if stream is not None:
                stream.close()


async def content(store: object, record_id: int) -> bytes:
    return b"".join([part async for part in store.content(record_id, fetch_base)])  # type: ignore[attr-defined]


async def test_kill_9_after_commit_keeps_exactly_the_committed_content(tmp_path: Path) -> None:
    record_id = run_and_kill(tmp_path / "staging", "later-writes")
    expected = committed_model()
    async with open_staging_store(tmp_path / "staging", block_size=BS) as store:
        (record,) = store.records()
        assert record.id == record_id
        assert (record.path, record.object_id, record.base_version) == \
            (("doc.bin",), "ctera:1", "v1")
        assert record.state == "pending" and record.last_error is None
        assert record.size == len(expected)
        assert record.mtime != 12345.0  # set after the commit: not part of it
        assert await content(store, record.id) == expected
        # The uncommitted tail was cut: the data file holds just the committed blocks.
        assert (tmp_path / "staging" / "data" / str(record_id)).stat().st_size == len(expected)


async def test_kill_9_during_an_upload_makes_it_pending_again(tmp_path: Path) -> None:
    run_and_kill(tmp_path / "staging", "uploading")
    async with open_staging_store(tmp_path / "staging", block_size=BS) as store:
        (record,) = store.records()
        assert (record.state, record.attempts) == ("pending", 1)
        assert await content(store, record.id) == committed_model()


async def test_kill_9_while_overwriting_committed_blocks_holds_the_record(tmp_path: Path) -> None:
    run_and_kill(tmp_path / "staging", "rewrite")
    async with open_staging_store(tmp_path / "staging", block_size=BS) as store:
        (record,) = store.records()
        assert record.state == "held"
        assert record.last_error is not None and "may mix" in record.last_error
        assert record.size == len(committed_model())
        # Still readable; each byte is either committed or one of the later writes.
        got = await content(store, record.id)
        assert all(g in (c, ord("E")) for g, c in zip(got, committed_model()))
        # The owner may release it; the flag does not come back on the next open.
        await store.update(record.id, state="pending", last_error=None)
    async with open_staging_store(tmp_path / "staging", block_size=BS) as store:
        (record,) = store.records()
        assert record.state == "pending"


async def test_kill_9_after_an_inline_commit_restores_it_from_the_journal(tmp_path: Path) -> None:
    """A small file committed inline (one fsync) and then overwritten in place is
    rebuilt from the journal: exactly the committed bytes, not held."""
    run_and_kill(tmp_path / "staging", "inline")
    async with open_staging_store(tmp_path / "staging", block_size=BS) as store:
        (record,) = store.records()
        assert (record.state, record.last_error) == ("pending", None)
        assert await content(store, record.id) == bytes(BS) + b"I" * (2 * BS + 5)


async def test_an_inline_commit_makes_one_journal_write_and_no_data_fsync(tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from cache import stagingdata

    synced: list[Path] = []
    monkeypatch.setattr(stagingdata, "sync_file", lambda path: synced.append(path) or True)
    async with open_staging_store(tmp_path / "staging", block_size=BS, inline_max=2 * BS) as store:
        small = await store.create(("small",), truncate=True)
        await store.write(small.id, 0, b"s" * BS, no_base)
        await store.commit(small.id)
        assert synced == [], "a small file is committed inline"
        big = await store.create(("big",), truncate=True)
        await store.write(big.id, 0, b"b" * (3 * BS), no_base)
        await store.commit(big.id)
        assert len(synced) == 1, "a larger one fsyncs its data file"
        await store.write(small.id, 0, b"t" * (3 * BS), no_base)  # grows past the limit
        await store.commit(small.id)
        assert len(synced) == 2
    async with open_staging_store(tmp_path / "staging", block_size=BS) as store:
        by_path = {record.path: record for record in store.records()}
        assert await content(store, by_path[("small",)].id) == b"t" * (3 * BS)
        assert await content(store, by_path[("big",)].id) == b"b" * (3 * BS)


async def test_a_commit_replaces_meta_in_the_same_journal_write(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    # New content and the meta that describes it must land together: were the meta a
    # second write, a crash between the two would pair new bytes with stale meta (the
    # upload queue would take them for a version already uploaded).
    from cache.stagingjournal import Journal

    directory = tmp_path / "staging"
    async with open_staging_store(directory, block_size=BS) as store:
        s = await store.create(("f",), truncate=True)
        await store.write(s.id, 0, b"1" * BS, no_base)
        await store.commit(s.id)
        await store.update(s.id, meta={"uploaded": "v1", "keep": "yes"})
        await store.write(s.id, 0, b"2" * BS, no_base)

        def no_second_write(*args: object, **kwargs: object) -> None:
            raise AssertionError("commit wrote the meta in a transaction of its own")

        monkeypatch.setattr(Journal, "save_fields", no_second_write)
        committed = await store.commit(s.id, meta={"keep": "yes"})
        assert committed.meta == {"keep": "yes"}
    monkeypatch.undo()
    async with open_staging_store(directory, block_size=BS) as store:
        (record,) = store.records()
        assert record.meta == {"keep": "yes"}
        assert await store.read(record.id, 0, BS, no_base) == b"2" * BS


async def test_kill_9_before_any_commit_leaves_nothing(tmp_path: Path) -> None:
    run_and_kill(tmp_path / "staging", "uncommitted")
    async with open_staging_store(tmp_path / "staging", block_size=BS) as store:
        assert store.records() == [] and store.usage() == 0
    assert list((tmp_path / "staging" / "data").iterdir()) == []


async def test_a_commit_after_overwriting_clears_the_flag(tmp_path: Path) -> None:
    directory = tmp_path / "staging"
    async with open_staging_store(directory, block_size=BS) as store:
        s = await store.create(("f",), truncate=True)
        await store.write(s.id, 0, b"1" * BS, no_base)
        await store.commit(s.id)
        await store.write(s.id, 0, b"2" * BS, no_base)
        await store.commit(s.id)
    async with open_staging_store(directory, block_size=BS) as store:
        (record,) = store.records()
        assert record.state == "pending"
        assert await store.read(record.id, 0, BS, no_base) == b"2" * BS


# -- leftovers found at open ----------------------------------------------------------

async def make_committed(directory: Path) -> tuple[int, bytes]:
    """A committed record: base blocks 0-4, blocks 5-8 written, the rest from the base."""
    async with open_staging_store(directory, block_size=BS) as store:
        s = await store.create(("f",), base_size=len(BASE), object_id="ctera:1",
                               base_version="v1")
        await store.write(s.id, 5 * BS + 100, b"A" * (3 * BS), fetch_base)
        await store.commit(s.id)
    model = bytearray(BASE)
    model[5 * BS + 100:8 * BS + 100] = b"A" * (3 * BS)
    return s.id, bytes(model)


async def test_files_without_a_record_are_removed(tmp_path: Path) -> None:
    directory = tmp_path / "staging"
    record_id, model = await make_committed(directory)
    data = directory / "data"
    (data / "999").write_bytes(b"orphan")
    (data / f"{record_id}.tmp").write_bytes(b"temp")
    async with open_staging_store(directory, block_size=BS) as store:
        assert sorted(p.name for p in data.iterdir()) == [str(record_id)]
        assert await content(store, record_id) == model
        assert store.usage() == 4 * BS


async def test_an_uncommitted_tail_is_cut_and_not_charged(tmp_path: Path) -> None:
    directory = tmp_path / "staging"
    record_id, model = await make_committed(directory)
    data_file = directory / "data" / str(record_id)
    with open(data_file, "r+b") as f:
        f.seek(30 * BS)
        f.write(b"uncommitted" * 100)
    async with open_staging_store(directory, block_size=BS) as store:
        assert data_file.stat().st_size == 9 * BS
        assert store.get(record_id).state == "pending"
        assert await content(store, record_id) == model
        assert store.usage() == 4 * BS


async def test_scribbles_in_blocks_that_are_not_present_are_ignored_but_charged(
        tmp_path: Path) -> None:
    directory = tmp_path / "staging"
    record_id, model = await make_committed(directory)
    with open(directory / "data" / str(record_id), "r+b") as f:
        f.seek(BS)
        f.write(b"X" * 10)  # a fill after the commit, never committed
    async with open_staging_store(directory, block_size=BS) as store:
        assert await content(store, record_id) == model
        assert store.usage() == 5 * BS


@pytest.mark.parametrize("damage", ["missing", "short"])
async def test_missing_or_short_committed_data_is_held_and_reported(
        tmp_path: Path, damage: str) -> None:
    directory = tmp_path / "staging"
    record_id, model = await make_committed(directory)
    data_file = directory / "data" / str(record_id)
    if damage == "missing":
        data_file.unlink()
    else:
        os.truncate(data_file, 7 * BS)
    async with open_staging_store(directory, block_size=BS) as store:
        record = store.get(record_id)
        assert record.state == "held"
        assert record.last_error is not None and "damaged" in record.last_error
        # Regions from the base are fine; the damaged ones fail, never fake zeros.
        assert await store.read(record_id, 0, 100, fetch_base) == model[:100]
        with pytest.raises(OSError) as excinfo:
            await store.read(record_id, 8 * BS, 10, fetch_base)
        assert excinfo.value.errno == errno.EIO
    async with open_staging_store(directory, block_size=BS) as store:
        assert store.get(record_id).state == "held"  # kept until its owner decides


async def test_an_unknown_schema_is_refused(tmp_path: Path) -> None:
    import sqlite3

    from cache import CacheDirectoryError

    directory = tmp_path / "staging"
    await make_committed(directory)
    db = sqlite3.connect(directory / "journal.sqlite3")
    with db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    db.close()
    with pytest.raises(CacheDirectoryError, match="schema"):
        async with open_staging_store(directory):
            pass
