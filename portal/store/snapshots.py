"""Snapshots: genuine, read-only points in time of a cloud folder.

Taking a snapshot copies the cloud folder's live metadata rows into
``snapshot_items`` in one transaction; the content is not copied, because
versions and blobs are immutable and shared.  Reading a snapshot therefore
returns exactly the names, tree and bytes of that moment, however the live
folder changed since.

Snapshots are identified on the wire by their time (whole seconds, UTC),
unique per cloud folder; two snapshots asked for within one second get
consecutive seconds.  A scheduled snapshot of an unchanged folder is skipped
(``force`` overrides that for on-demand snapshots).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from portal.store.database import transaction
from portal.store.errors import NotFound
from portal.store.records import Item, Snapshot

if TYPE_CHECKING:
    from portal.store.store import Store

ITEM_COLUMNS = "id, parent_id, cloud_folder_id, name, is_folder, size, mtime, version_id"


def take(store: Store, cloud_folder_id: int, *, when: float | None = None, force: bool = False) -> Snapshot | None:
    """Snapshot one cloud folder now (or stamped ``when``); None if skipped as unchanged."""
    db = store.db
    with transaction(db):
        seq = store.change_seq(cloud_folder_id)
        last = db.execute(
            "SELECT change_seq FROM snapshots WHERE cloud_folder_id=? ORDER BY taken_at DESC LIMIT 1",
            (cloud_folder_id,),
        ).fetchone()
        if not force and last is not None and last["change_seq"] == seq:
            return None
        taken = int(time.time() if when is None else when)
        while db.execute(
            "SELECT 1 FROM snapshots WHERE cloud_folder_id=? AND taken_at=?", (cloud_folder_id, taken)
        ).fetchone():
            taken += 1
        snapshot_id = db.execute(
            "INSERT INTO snapshots (cloud_folder_id, taken_at, change_seq) VALUES (?, ?, ?)",
            (cloud_folder_id, taken, seq),
        ).lastrowid
        db.execute(
            f"""INSERT INTO snapshot_items (snapshot_id, {ITEM_COLUMNS}, name_key)
                SELECT ?, {ITEM_COLUMNS}, name_key FROM items
                WHERE cloud_folder_id=? AND deleted_at IS NULL""",
            (snapshot_id, cloud_folder_id),
        )
        return Snapshot(snapshot_id, cloud_folder_id, taken)


def list_for(store: Store, cloud_folder_id: int) -> list[Snapshot]:
    """The cloud folder's snapshots, oldest first."""
    rows = store.db.execute(
        "SELECT id, cloud_folder_id, taken_at FROM snapshots WHERE cloud_folder_id=? ORDER BY taken_at",
        (cloud_folder_id,),
    )
    return [Snapshot.from_row(r) for r in rows]


def root(store: Store, snapshot: Snapshot) -> Item:
    """The cloud folder's top folder as it was in ``snapshot``."""
    row = store.db.execute(
        f"SELECT {ITEM_COLUMNS} FROM snapshot_items WHERE snapshot_id=? AND parent_id IS NULL",
        (snapshot.id,),
    ).fetchone()
    if row is None:
        raise NotFound(f"snapshot {snapshot.id} has no root")
    return Item.from_row(row, snapshot.id)


def item(store: Store, snapshot_id: int, item_id: int) -> Item:
    row = store.db.execute(
        f"SELECT {ITEM_COLUMNS} FROM snapshot_items WHERE snapshot_id=? AND id=?", (snapshot_id, item_id)
    ).fetchone()
    if row is None:
        raise NotFound(f"no item {item_id} in snapshot {snapshot_id}")
    return Item.from_row(row, snapshot_id)


def child(store: Store, parent: Item, name: str) -> Item | None:
    row = store.db.execute(
        f"SELECT {ITEM_COLUMNS} FROM snapshot_items WHERE snapshot_id=? AND parent_id=? AND name_key=?",
        (parent.snapshot_id, parent.id, store.name_key(name)),
    ).fetchone()
    return Item.from_row(row, parent.snapshot_id) if row else None
