"""A file committed inline, after a reopen: treated as right after an inline commit.

The journal row holds the committed content, so the reopen rebuilds the data
file without fsyncing it, the first overwrite needs no ``rewriting`` flag, and
only a later commit through the data file fsyncs the file and its directory.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from cache import stagingdata
from cache.staging import open_staging_store
from cache.stagingjournal import Journal

BS = 4096


async def no_base(offset: int, length: int) -> bytes:
    raise AssertionError(f"the base was fetched ({offset}, {length})")


async def test_a_reopened_inline_file_needs_no_fsync_until_it_leaves_the_journal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    directory = tmp_path / "staging"
    async with open_staging_store(directory, block_size=BS, inline_max=2 * BS) as store:
        s = await store.create(("small",), truncate=True)
        await store.write(s.id, 0, b"a" * (BS + 10), no_base)
        await store.commit(s.id)

    synced: list[Path] = []
    flagged: list[int] = []
    real_sync_dir, real_mark = stagingdata.sync_dir, Journal.mark_rewriting

    def sync_dir(path: Path) -> None:
        synced.append(path)
        real_sync_dir(path)

    def mark_rewriting(journal: Journal, record_id: int) -> None:
        flagged.append(record_id)
        real_mark(journal, record_id)

    monkeypatch.setattr(stagingdata, "sync_file", lambda path: synced.append(path) or True)
    monkeypatch.setattr(stagingdata, "sync_dir", sync_dir)
    monkeypatch.setattr(Journal, "mark_rewriting", mark_rewriting)
    data_dir = directory / stagingdata.DATA_DIR
    async with open_staging_store(directory, block_size=BS, inline_max=2 * BS) as store:
        (record,) = store.records()
        assert synced == [directory], "the open syncs the staging directory, not the rebuilt file"
        synced.clear()
        await store.write(record.id, 0, b"b" * 10, no_base)  # over the committed bytes
        assert flagged == [], "the journal still has the committed content"
        await store.commit(record.id)  # still small: inline again
        assert synced == []
        await store.write(record.id, BS + 10, b"c" * (2 * BS), no_base)  # past the limit
        await store.commit(record.id)
        assert synced == [stagingdata.data_path(directory, record.id), data_dir]
        synced.clear()
        await store.write(record.id, 0, b"d" * 10, no_base)
        assert flagged == [record.id], "now the data file holds the committed content"
        await store.commit(record.id)
        assert synced == [stagingdata.data_path(directory, record.id)]
    async with open_staging_store(directory, block_size=BS) as store:
        (record,) = store.records()
        got = await store.read(record.id, 0, 3 * BS + 10, no_base)
        assert got == b"d" * 10 + b"a" * BS + b"c" * (2 * BS)
