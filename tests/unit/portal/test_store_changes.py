"""The change log under the feed, and the schema upgrade that introduced it.

Each operation must log exactly the items it changed, in the same
transaction (a refused operation logs nothing); an existing data directory of
schema 1 must open, be upgraded in place, and start its log with every live
item.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from portal.store import Exists, Store
from portal.store import changes
from tests.unit.portal.conftest import People, open_store, put


def log_after(store: Store, seq: int) -> list[tuple[str, bool]]:
    rows = store.db.execute("SELECT name, deleted FROM change_log WHERE seq > ? ORDER BY seq", (seq,))
    return [(row["name"], bool(row["deleted"])) for row in rows]


def test_each_operation_logs_what_it_changed(store: Store, people: People) -> None:
    root = people.root("alice")
    start = changes.latest_seq(store.db)
    docs = store.make_folder(root, "Docs")
    inner = store.make_folder(docs, "Inner")
    put(store, inner, "a.txt", b"a")
    assert log_after(store, start) == [("Docs", False), ("Inner", False), ("a.txt", False)]

    mark = changes.latest_seq(store.db)
    store.copy(docs, root, "Copy")
    assert log_after(store, mark) == [("Copy", False), ("Inner", False), ("a.txt", False)], "the whole new subtree"

    mark = changes.latest_seq(store.db)
    store.move(docs, root, "Renamed")
    assert log_after(store, mark) == [("Renamed", False)], "descendants keep their parent"

    mark = changes.latest_seq(store.db)
    with pytest.raises(Exists):
        store.move(store.child(root, "Renamed"), root, "Copy")
    assert log_after(store, mark) == [], "a refused change logs nothing"

    mark = changes.latest_seq(store.db)
    store.delete(store.child(root, "Renamed"))
    assert log_after(store, mark) == [("Renamed", True), ("Inner", True), ("a.txt", True)]

    mark = changes.latest_seq(store.db)
    deleted_file = store.deleted_child(store.item(inner.id), "a.txt")
    assert deleted_file is not None
    store.restore(deleted_file)  # brings back the deleted folders above it first
    assert log_after(store, mark) == [("Renamed", False), ("Inner", False), ("a.txt", False)]


def test_move_between_cloud_folders_logs_leaving_and_entering(store: Store, people: People) -> None:
    box = store.make_folder(people.root("alice"), "Box")
    put(store, box, "x.txt", b"x")
    bob_root = people.root("bob")
    mark = changes.latest_seq(store.db)
    store.move(box, bob_root, "Box")
    rows = store.db.execute(
        "SELECT cloud_folder_id, name, deleted, parent_id FROM change_log WHERE seq > ? ORDER BY seq", (mark,)
    ).fetchall()
    alice_folder, bob_folder = people.root("alice").cloud_folder_id, bob_root.cloud_folder_id
    assert [(r["cloud_folder_id"], r["name"], bool(r["deleted"])) for r in rows] == [
        (alice_folder, "Box", True), (alice_folder, "x.txt", True), (bob_folder, "Box", False), (bob_folder, "x.txt", False)]
    assert rows[0]["parent_id"] == people.root("alice").id, "leaving, as it was there"
    assert rows[2]["parent_id"] == bob_root.id


def test_schema_1_data_directory_is_upgraded_in_place(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = open_store(data)
    root = store.item(store.cloud_folders(store.user("alice").id)[0].root_item_id)  # type: ignore[union-attr]
    put(store, root, "kept.txt", b"k")
    store.delete(put(store, root, "deleted.txt", b"d"))
    store.close()
    # Make it what schema 1 left behind: no change log, no share tables.
    with sqlite3.connect(data / "portal.sqlite3") as db:
        for table in ("change_log", "shares", "share_settings"):
            db.execute(f"DROP TABLE {table}")
        db.execute("UPDATE meta SET value='1' WHERE key='schema_version'")

    store = Store(data)
    try:
        version = store.db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()["value"]
        assert version == "2"
        logged = sorted(r["name"] for r in store.db.execute("SELECT name FROM change_log"))
        assert logged == ["My Files", "My Files", "kept.txt"], "every live item once, deleted ones not"
        assert changes.live_items(store.db, 0, [root.cloud_folder_id], 10)[-1].seq > 0, "every item has a stamp"
    finally:
        store.close()

    with sqlite3.connect(data / "portal.sqlite3") as db:
        db.execute("UPDATE meta SET value='3' WHERE key='schema_version'")
    with pytest.raises(RuntimeError, match="schema version 3"):
        Store(data)
