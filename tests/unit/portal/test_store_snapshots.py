"""Snapshots are genuine: old names, tree and bytes, whatever happened since."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.store import PermissionDenied, Store
from tests.unit.portal.conftest import People, names, open_store, put, read


def test_snapshot_reads_old_names_and_bytes_after_later_changes(store: Store, people: People) -> None:
    root = people.root("alice")
    docs = store.make_folder(root, "Docs")
    report = put(store, docs, "report.txt", b"draft 1")
    notes = put(store, docs, "notes.txt", b"notes")
    put(store, root, "top.txt", b"top")
    snapshot = store.take_snapshot(root.cloud_folder_id, force=True)
    assert snapshot is not None

    # Later: new version, rename, move, delete, new file, folder renamed.
    put(store, docs, "report.txt", b"final version")
    store.move(notes, root, "moved notes.txt")
    store.delete(store.child(root, "top.txt"))  # type: ignore[arg-type]
    put(store, docs, "new.txt", b"new")
    store.move(docs, root, "Documents")

    old_root = store.snapshot_root(snapshot)
    assert names(store, old_root) == ["Docs", "top.txt"]
    old_docs = store.child(old_root, "docs")  # names fold in snapshots too
    assert old_docs is not None and old_docs.snapshot_id == snapshot.id
    assert names(store, old_docs) == ["notes.txt", "report.txt"]
    old_report = store.child(old_docs, "report.txt")
    assert old_report is not None and old_report.id == report.id
    assert read(store, old_report) == b"draft 1"
    assert read(store, store.child(old_docs, "notes.txt")) == b"notes"  # type: ignore[arg-type]
    assert read(store, store.child(old_root, "top.txt")) == b"top"  # type: ignore[arg-type]
    assert store.path_of(old_report) == ["My Files", "Docs", "report.txt"]

    live_docs = store.child(root, "Documents")
    assert live_docs is not None
    assert names(store, live_docs) == ["new.txt", "report.txt"]
    assert read(store, store.child(live_docs, "report.txt")) == b"final version"  # type: ignore[arg-type]


def test_several_snapshots_each_keep_their_moment(store: Store, people: People) -> None:
    root = people.root("alice")
    taken = []
    for number in range(4):
        put(store, root, "counter.txt", f"{number}".encode())
        snapshot = store.take_snapshot(root.cloud_folder_id, force=True)
        assert snapshot is not None
        taken.append(snapshot)
    assert [s.id for s in store.snapshots(root.cloud_folder_id)] == [s.id for s in taken]
    assert len({s.taken_at for s in taken}) == 4, "snapshot times are unique per cloud folder"
    for number, snapshot in enumerate(taken):
        item = store.child(store.snapshot_root(snapshot), "counter.txt")
        assert item is not None and read(store, item) == f"{number}".encode()


def test_snapshots_are_read_only(store: Store, people: People) -> None:
    root = people.root("alice")
    folder = store.make_folder(root, "F")
    file = put(store, folder, "f.txt", b"f")
    snapshot = store.take_snapshot(root.cloud_folder_id, force=True)
    assert snapshot is not None
    old_folder = store.child(store.snapshot_root(snapshot), "F")
    old_file = store.child(old_folder, "f.txt")  # type: ignore[arg-type]
    assert old_folder is not None and old_file is not None
    for attempt in (
        lambda: store.make_folder(old_folder, "x"),
        lambda: put(store, old_folder, "x.txt", b"x"),
        lambda: store.delete(old_file),
        lambda: store.move(old_file, root, "x.txt"),
        lambda: store.move(file, old_folder, "x.txt"),
        lambda: store.copy(file, old_folder, "x.txt"),
        lambda: store.restore(old_file),
    ):
        with pytest.raises(PermissionDenied):
            attempt()
    # Copying *out of* a snapshot is how old content is recovered.
    recovered = store.copy(old_file, root, "recovered.txt")
    assert read(store, recovered) == b"f" and recovered.snapshot_id is None


def test_scheduled_snapshot_of_an_unchanged_folder_is_skipped(store: Store, people: People) -> None:
    root = people.root("alice")
    put(store, root, "a.txt", b"a")
    assert store.take_snapshot(root.cloud_folder_id) is not None
    assert store.take_snapshot(root.cloud_folder_id) is None
    assert store.take_snapshot(root.cloud_folder_id, force=True) is not None
    put(store, root, "b.txt", b"b")
    assert store.take_snapshot(root.cloud_folder_id) is not None


def test_snapshots_survive_reopening_the_store(tmp_path: Path) -> None:
    store = open_store(tmp_path / "data")
    try:
        root = People(store).root("alice")
        put(store, root, "kept.txt", b"then")
        snapshot = store.take_snapshot(root.cloud_folder_id, force=True)
        assert snapshot is not None
        put(store, root, "kept.txt", b"now")
    finally:
        store.close()
    reopened = Store(tmp_path / "data")
    try:
        again = reopened.snapshots(root.cloud_folder_id)
        assert [s.id for s in again] == [snapshot.id]
        old = reopened.child(reopened.snapshot_root(again[0]), "kept.txt")
        assert old is not None and read(reopened, old) == b"then"
    finally:
        reopened.close()
