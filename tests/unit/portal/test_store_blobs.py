"""Blob staging and crash recovery.

A blob is staged under ``tmp/``, fsynced and renamed into ``blobs/`` before a
transaction references it.  A crash can therefore leave a staged file (while
receiving) or a finished but unreferenced blob (between the rename and the
commit); opening the store removes both and nothing else.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from portal.store import IsAFolder, Store
from tests.support.portal_process import blob_names
from tests.unit.portal.conftest import People, open_store, put, read


async def test_staged_blob_commits_its_bytes_and_leaves_no_tmp(store: Store, people: People) -> None:
    staged = store.stage()
    pieces = [bytes([n]) * (300_000 + n) for n in range(7)]  # crosses the write-chunk size several times
    for piece in pieces:
        await staged.write(piece)
    assert staged.size == sum(map(len, pieces))
    item = await staged.commit(lambda name: store.put_file(people.root("alice"), "big.bin", name, staged.size))
    staged.abort()  # harmless after commit
    assert list(store.blobs.tmp_dir.iterdir()) == []
    assert read(store, item) == b"".join(pieces)


async def test_a_blob_its_reference_refuses_is_removed_at_once(store: Store, people: People) -> None:
    """The database change that would use a committed blob fails (a folder took the name while the
    bytes arrived): the blob goes at once, not at the next start, and the error is the caller's."""
    root = people.root("alice")
    put(store, root, "kept.txt", b"already here")
    kept = blob_names(store.data_dir)
    staged = store.stage()
    await staged.write(b"y" * (2 << 20))
    store.make_folder(root, "report")
    with pytest.raises(IsAFolder):
        await staged.commit(lambda name: store.put_file(root, "report", name, staged.size))
    staged.abort()
    assert blob_names(store.data_dir) == kept
    assert list(store.blobs.tmp_dir.iterdir()) == []


async def test_aborted_staging_leaves_nothing(store: Store) -> None:
    staged = store.stage()
    await staged.write(b"x" * (3 << 20))
    assert list(store.blobs.tmp_dir.iterdir())
    staged.abort()
    staged.abort()
    assert list(store.blobs.tmp_dir.iterdir()) == []
    assert blob_names(store.data_dir) == set()


async def test_reopening_removes_tmp_files_and_unreferenced_blobs(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    store = open_store(data_dir)
    try:
        root = People(store).root("alice")
        kept = put(store, root, "kept.txt", b"kept")
        old_version_blob = store.version(kept.version_id).blob  # type: ignore[arg-type]
        put(store, root, "kept.txt", b"newer")  # the old version's blob stays referenced
        copied = store.copy(kept, root, "copy.txt")
        snapshot_file = put(store, root, "snap.txt", b"in a snapshot")
        store.take_snapshot(root.cloud_folder_id, force=True)
        store.delete(snapshot_file)
        deleted = put(store, root, "deleted.txt", b"in the bin")
        store.delete(deleted)

        # A crash between the rename and the commit, and one while receiving:
        orphan_stage = store.stage()
        await orphan_stage.write(b"finished, never referenced")
        orphan = await orphan_stage.commit(lambda name: name)  # in place, and the process dies
        (store.blobs.tmp_dir / f"{uuid.uuid4().hex}.part").write_bytes(b"left by a killed writer")
        referenced = blob_names(store.data_dir) - {orphan}
        assert old_version_blob in referenced
    finally:
        store.close()

    reopened = Store(data_dir)
    try:
        assert list(reopened.blobs.tmp_dir.iterdir()) == []
        assert blob_names(reopened.data_dir) == referenced
        root = People(reopened).root("alice")
        assert read(reopened, reopened.child(root, "kept.txt")) == b"newer"  # type: ignore[arg-type]
        assert read(reopened, reopened.item(copied.id)) == b"kept"
        assert reopened.blobs.path(old_version_blob).read_bytes() == b"kept"
        assert read(reopened, reopened.item(deleted.id)) == b"in the bin"
        snapshot = reopened.snapshots(root.cloud_folder_id)[0]
        in_snapshot = reopened.child(reopened.snapshot_root(snapshot), "snap.txt")
        assert in_snapshot is not None and read(reopened, in_snapshot) == b"in a snapshot"
    finally:
        reopened.close()


def test_recovery_ignores_foreign_entries_in_the_blob_directory(tmp_path: Path) -> None:
    """A stray file at the top of ``blobs/`` (not in a shard directory) is not ours to judge."""
    store = open_store(tmp_path / "data")
    (store.blobs.blob_dir / "README").write_text("hands off")
    store.close()
    reopened = Store(tmp_path / "data")
    try:
        assert (reopened.blobs.blob_dir / "README").read_text() == "hands off"
    finally:
        reopened.close()


@pytest.mark.parametrize("name", ["", "../etc/passwd", "A" * 32, "0" * 31, "0" * 33, "g" * 32, "0" * 30 + "/x"])
def test_blob_paths_accept_only_blob_names(store: Store, name: str) -> None:
    with pytest.raises(ValueError):
        store.blobs.path(name)
