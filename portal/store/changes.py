"""The change log behind the change feed (``/v2/api/metadata``, spec §6).

Every store operation that creates, changes, moves, renames, deletes or
restores items appends one row per affected item to ``change_log``, in the
same transaction as the change, holding the item's state *after* it.  So the
log can never disagree with the items, and a crash loses a change and its
event together or neither.

``seq`` is the cursor basis and each item's version stamp (``gvsn``): it only
grows, across all cloud folders, so "everything in these folders after seq
N" is one index range per folder.

What is logged (see docs/PROTOCOL-CHOICES.md):

* create, new version, restore, copy (every new item of the copy): the item;
* rename or move inside a cloud folder: the moved item only, with its new
  name and parent; its descendants keep their parent, so their paths follow;
* delete: the item and every descendant, ``deleted``;
* move to another cloud folder: the subtree once in the old folder as it was
  there, ``deleted``, then once in the new folder as it is now.

A folder's own mtime changes when its contents do, but that is not logged:
the children's events already name it as their parent.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass

_COLUMNS = "cloud_folder_id, item_id, parent_id, name, is_folder, size, mtime, deleted, logged_at"


@dataclass(frozen=True, slots=True)
class Change:
    """One item's state as of one change (or, in a replay, as it is now)."""

    seq: int
    cloud_folder_id: int
    item_id: int
    parent_id: int | None
    name: str
    is_folder: bool
    size: int
    mtime: float
    deleted: bool
    logged_at: float

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Change:
        return cls(
            row["seq"] or 0,
            row["cloud_folder_id"],
            row["item_id"],
            row["parent_id"],
            row["name"],
            bool(row["is_folder"]),
            row["size"],
            row["mtime"],
            bool(row["deleted"]),
            row["logged_at"] if row["logged_at"] is not None else row["mtime"],
        )


def record(
    db: sqlite3.Connection,
    item_ids: Sequence[int],
    *,
    gone_from: int | None = None,
) -> None:
    """Append the current state of ``item_ids``; with ``gone_from``, log them as
    deleted from that cloud folder instead (they are leaving it)."""
    now = time.time()
    if gone_from is None:
        values, head = "cloud_folder_id, id, parent_id, name, is_folder, size, mtime, deleted_at IS NOT NULL, ?", (now,)
    else:
        values, head = "?, id, parent_id, name, is_folder, size, mtime, 1, ?", (gone_from, now)
    # One statement per item keeps the caller's order: subtrees come parents first.
    db.executemany(
        f"INSERT INTO change_log ({_COLUMNS}) SELECT {values} FROM items WHERE id=?",
        [(*head, item_id) for item_id in item_ids],
    )


def latest_seq(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT COALESCE(MAX(seq), 0) AS seq FROM change_log").fetchone()
    return int(row["seq"])


def since(db: sqlite3.Connection, seq: int, folder_ids: Sequence[int], limit: int) -> list[Change]:
    """Up to ``limit`` changes after ``seq`` in the given cloud folders, oldest first."""
    if not folder_ids:
        return []
    marks = ",".join("?" * len(folder_ids))
    rows = db.execute(
        f"SELECT seq, {_COLUMNS} FROM change_log WHERE seq > ? AND cloud_folder_id IN ({marks}) ORDER BY seq LIMIT ?",
        (seq, *folder_ids, limit),
    ).fetchall()
    return [Change.from_row(r) for r in rows]


def any_since(db: sqlite3.Connection, seq: int, folder_ids: Sequence[int]) -> bool:
    return bool(since(db, seq, folder_ids, 1))


def live_items(db: sqlite3.Connection, after_id: int, folder_ids: Sequence[int], limit: int) -> list[Change]:
    """Up to ``limit`` live items with ``id > after_id`` in those folders, by id,
    each stamped with its latest log entry: the replay behind a null cursor."""
    if not folder_ids:
        return []
    marks = ",".join("?" * len(folder_ids))
    return _stamped(
        db,
        f"i.deleted_at IS NULL AND i.id > ? AND i.cloud_folder_id IN ({marks}) ORDER BY i.id LIMIT ?",
        (after_id, *folder_ids, limit),
    )


def current(db: sqlite3.Connection, item_id: int) -> Change | None:
    """An item's state now (live or deleted), stamped with its latest log entry."""
    found = _stamped(db, "i.id = ?", (item_id,))
    return found[0] if found else None


def _stamped(db: sqlite3.Connection, where: str, args: tuple) -> list[Change]:
    rows = db.execute(
        f"""SELECT c.seq, i.cloud_folder_id, i.id AS item_id, i.parent_id, i.name, i.is_folder, i.size, i.mtime,
                   i.deleted_at IS NOT NULL AS deleted, c.logged_at
            FROM items i
            LEFT JOIN change_log c ON c.seq = (SELECT MAX(seq) FROM change_log WHERE item_id = i.id)
            WHERE {where}""",
        args,
    ).fetchall()
    return [Change.from_row(r) for r in rows]

