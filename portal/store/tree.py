"""The tree: reading items and folder pages, creating folders, storing file versions.

Every public method is synchronous and atomic (one SQLite transaction) and
raises only :class:`~portal.store.errors.StoreError` subclasses for refusals.
Items read from a snapshot (:mod:`portal.store.snapshots`) can be read like
live ones; changing them is ``PermissionDenied``.  Every change also appends
the affected items to the change feed's log (:mod:`portal.store.changes`) in
the same transaction, so the feed can never report a change that did not
happen.

Listing pages are O(page): the position after each page is remembered per
folder state, so the next page continues from that key instead of counting
``OFFSET`` rows from the start of the folder.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from cachetools import LRUCache

from portal.store import changes as _changes
from portal.store import snapshots as _snapshots
from portal.store.accounts import Accounts
from portal.store.blobs import BlobStore, StagedBlob
from portal.store.database import in_lists, transaction
from portal.store.errors import (
    Exists,
    IsAFolder,
    NotAFolder,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
)
from portal.store.names import check_name
from portal.store.records import Item, Version

#: Listing positions and page sizes are clamped to this (no folder holds more).
_MAX_POSITION = 1 << 62

ITEM_COLUMNS = "id, parent_id, cloud_folder_id, name, is_folder, size, mtime, version_id, deleted_at"


class Tree(Accounts):
    """Items, versions and pages of folders (on top of the accounts that own them)."""

    blobs: BlobStore
    change_listeners: list[Callable[[], None]]
    _page_cursors: LRUCache[tuple, tuple[str, int]]

    def change_seq(self, cloud_folder_id: int) -> int:
        row = self.db.execute("SELECT change_seq FROM cloud_folders WHERE id=?", (cloud_folder_id,)).fetchone()
        return row["change_seq"] if row else 0

    def _changed(self, *cloud_folder_ids: int) -> None:
        for folder_id in set(cloud_folder_ids):
            self.db.execute("UPDATE cloud_folders SET change_seq=change_seq+1 WHERE id=?", (folder_id,))

    def _log(self, item_ids: Sequence[int], *, gone_from: int | None = None) -> None:
        """Append these items' states to the change feed (see :mod:`portal.store.changes`)."""
        _changes.record(self.db, item_ids, gone_from=gone_from)
        for listener in self.change_listeners:
            listener()

    # ------------------------------------------------------------------ reads

    def item(self, item_id: int) -> Item:
        row = self.db.execute(f"SELECT {ITEM_COLUMNS} FROM items WHERE id=?", (item_id,)).fetchone()
        if row is None:
            raise NotFound(f"no item {item_id}")
        return Item.from_row(row)

    def child(self, parent: Item, name: str, *, include_deleted: bool = False) -> Item | None:
        """The child called ``name`` (live first; else the latest deleted one if asked)."""
        if parent.snapshot_id is not None:
            return _snapshots.child(self, parent, name)
        rows = self.db.execute(
            f"""SELECT {ITEM_COLUMNS} FROM items WHERE parent_id=? AND name_key=?
                ORDER BY deleted_at IS NOT NULL, deleted_at DESC LIMIT 1""",
            (parent.id, self.name_key(name)),
        ).fetchall()
        if not rows:
            return None
        found = Item.from_row(rows[0])
        if found.is_deleted and not include_deleted:
            return None
        return found

    def deleted_child(self, parent: Item, name: str) -> Item | None:
        """The most recently deleted child called ``name`` (what a restore brings back)."""
        row = self.db.execute(
            f"""SELECT {ITEM_COLUMNS} FROM items WHERE parent_id=? AND name_key=? AND deleted_at IS NOT NULL
                ORDER BY deleted_at DESC, id DESC LIMIT 1""",
            (parent.id, self.name_key(name)),
        ).fetchone()
        return Item.from_row(row) if row else None

    def children(
        self, parent: Item, *, start: int = 0, limit: int = 100, include_deleted: bool = False
    ) -> tuple[list[Item], bool]:
        """One page of a folder's children in name order, and whether more follow."""
        if not parent.is_folder:
            raise NotAFolder(f"{parent.name!r} is not a folder")
        # SQLite integers are 64-bit; a client may ask for any position or size.
        start, limit = min(max(0, start), _MAX_POSITION), min(max(1, limit), _MAX_POSITION)
        if parent.snapshot_id is not None:
            table, scope, scope_args = "snapshot_items", "snapshot_id=? AND ", (parent.snapshot_id,)
            columns = _snapshots.ITEM_COLUMNS
        else:
            table, scope, scope_args = "items", "", ()
            columns = ITEM_COLUMNS
        live = "" if include_deleted or parent.snapshot_id is not None else " AND deleted_at IS NULL"
        state = (parent.snapshot_id, parent.id, include_deleted, self.change_seq(parent.cloud_folder_id))
        after = self._page_cursors.get((*state, start)) if start else None
        if start == 0 or after is not None:
            keyset, args = "", ()
            if after is not None:
                keyset, args = " AND (name_key, id) > (?, ?)", after
            rows = self.db.execute(
                f"SELECT {columns}, name_key FROM {table} WHERE {scope}parent_id=?{live}{keyset} "
                "ORDER BY name_key, id LIMIT ?",
                (*scope_args, parent.id, *args, limit + 1),
            ).fetchall()
        else:
            rows = self.db.execute(
                f"SELECT {columns}, name_key FROM {table} WHERE {scope}parent_id=?{live} "
                "ORDER BY name_key, id LIMIT ? OFFSET ?",
                (*scope_args, parent.id, limit + 1, start),
            ).fetchall()
        has_more = len(rows) > limit
        rows = rows[:limit]
        # Inside a write transaction the change counter in ``state`` may yet be
        # rolled back to a value a different change will reuse: remember nothing.
        if has_more and not self.db.in_transaction:
            self._page_cursors[(*state, start + limit)] = (rows[-1]["name_key"], rows[-1]["id"])
        return [Item.from_row(r, parent.snapshot_id) for r in rows], has_more

    def iter_children(self, parent: Item, *, include_deleted: bool = False) -> Iterator[Item]:
        start = 0
        while True:
            page, more = self.children(parent, start=start, limit=500, include_deleted=include_deleted)
            yield from page
            if not more:
                return
            start += len(page)

    def has_live_children(self, folder: Item) -> bool:
        if folder.snapshot_id is not None:
            return bool(self.children(folder, limit=1)[0])
        row = self.db.execute(
            "SELECT 1 FROM items WHERE parent_id=? AND deleted_at IS NULL LIMIT 1", (folder.id,)
        ).fetchone()
        return row is not None

    def version(self, version_id: int) -> Version:
        row = self.db.execute("SELECT * FROM versions WHERE id=?", (version_id,)).fetchone()
        if row is None:
            raise NotFound(f"no version {version_id}")
        return Version(row["id"], row["item_id"], row["blob"], row["size"], row["created"])

    def content_path(self, item: Item) -> Path:
        """The blob file holding ``item``'s content (files only)."""
        return self.content_paths([item])[0]

    def content_paths(self, items: Sequence[Item]) -> list[Path]:
        """The blob files of these files, in order: one query for a ZIP's run of small files,
        where a query per file cost the portal a tenth of its work.  (Past ``database.IDS_PER_QUERY`` files,
        a query per so many, outside any transaction: a version's blob never changes.)"""
        version_ids = []
        for item in items:
            if item.is_folder or item.version_id is None:
                raise IsAFolder(f"{item.name!r} is a folder")
            version_ids.append(item.version_id)
        blobs: dict[int, str] = {}
        for marks, chunk in in_lists(version_ids):
            rows = self.db.execute(f"SELECT id, blob FROM versions WHERE id IN ({marks})", chunk)
            blobs.update((row[0], row[1]) for row in rows)
        try:
            return [self.blobs.path(blobs[version_id]) for version_id in version_ids]
        except KeyError as missing:
            raise NotFound(f"no version {missing.args[0]}") from None

    def path_of(self, item: Item) -> list[str]:
        """Names from the cloud folder root (included) down to ``item``."""
        names = [item.name]
        parent_id = item.parent_id
        while parent_id is not None:
            parent = self.item(parent_id) if item.snapshot_id is None else _snapshots.item(self, item.snapshot_id, parent_id)
            names.append(parent.name)
            parent_id = parent.parent_id
        return names[::-1]

    # ---------------------------------------------------------------- changes

    def _writable(self, item: Item, what: str) -> None:
        if item.snapshot_id is not None:
            raise PermissionDenied(f"{what}: snapshots are read-only")
        if item.is_deleted:
            raise NotFound(f"{what}: {item.name!r} is deleted")

    def _writable_folder(self, folder: Item) -> None:
        self._writable(folder, "write")
        if not folder.is_folder:
            raise NotAFolder(f"{folder.name!r} is not a folder")

    def _check_child_name(self, parent: Item, name: str) -> None:
        check_name(name, at_cloud_folder_top=parent.parent_id is None)

    def _touch(self, folder_id: int | None, now: float) -> None:
        if folder_id is not None:
            self.db.execute("UPDATE items SET mtime=? WHERE id=?", (now, folder_id))

    def make_folder(self, parent: Item, name: str) -> Item:
        self._writable_folder(parent)
        self._check_child_name(parent, name)
        with transaction(self.db):
            if self.child(parent, name) is not None:
                raise Exists(f"{name!r} already exists")
            now = time.time()
            new_id = self.db.execute(
                "INSERT INTO items (parent_id, cloud_folder_id, name, name_key, is_folder, mtime) VALUES (?, ?, ?, ?, 1, ?)",
                (parent.id, parent.cloud_folder_id, name, self.name_key(name), now),
            ).lastrowid
            self._touch(parent.id, now)
            self._changed(parent.cloud_folder_id)
            self._log([new_id])
            return self.item(new_id)

    def stage(self) -> StagedBlob:
        """Start receiving content; hand the committed blob to :meth:`put_file`."""
        return self.blobs.stage()

    def check_upload(self, parent: Item, name: str, size: int) -> Item | None:
        """Refuse an upload before its bytes arrive; returns the file it would replace."""
        self._writable_folder(parent)
        self._check_child_name(parent, name)
        existing = self.child(parent, name)
        if existing is not None and existing.is_folder:
            raise IsAFolder(f"{name!r} is a folder")
        used, quota = self.quota_of(parent.cloud_folder_id)
        growth = size - (existing.size if existing else 0)
        if quota is not None and growth > 0 and used + growth > quota:
            raise QuotaExceeded("User is out of quota")
        return existing

    def put_file(self, parent: Item, name: str, blob: str, size: int, *, mtime: float | None = None) -> Item:
        """Make ``blob`` the content of ``parent/name``: a new version of an existing
        file (same ``fileId``) or a new file."""
        with transaction(self.db):
            existing = self.check_upload(parent, name, size)
            now = time.time()
            when = now if mtime is None else mtime
            if existing is None:
                item_id = self.db.execute(
                    "INSERT INTO items (parent_id, cloud_folder_id, name, name_key, is_folder, size, mtime)"
                    " VALUES (?, ?, ?, ?, 0, ?, ?)",
                    (parent.id, parent.cloud_folder_id, name, self.name_key(name), size, when),
                ).lastrowid
                self._touch(parent.id, now)
            else:
                item_id = existing.id
            version_id = self.db.execute(
                "INSERT INTO versions (item_id, blob, size, created) VALUES (?, ?, ?, ?)",
                (item_id, blob, size, now),
            ).lastrowid
            self.db.execute(
                "UPDATE items SET version_id=?, size=?, mtime=? WHERE id=?", (version_id, size, when, item_id)
            )
            self._changed(parent.cloud_folder_id)
            self._log([item_id])
            return self.item(item_id)

    def _subtree_ids(self, root_id: int, *, delete_op: int | None = None) -> list[int]:
        op_filter = " AND i.delete_op=?" if delete_op is not None else " AND i.deleted_at IS NULL"
        args: tuple = (root_id, delete_op) if delete_op is not None else (root_id,)
        rows = self.db.execute(
            f"""WITH RECURSIVE tree(id) AS (
                    SELECT ?
                    UNION ALL
                    SELECT i.id FROM items i JOIN tree t ON i.parent_id = t.id WHERE 1{op_filter}
                ) SELECT id FROM tree""",
            args,
        ).fetchall()
        return [r["id"] for r in rows]

    def _subtree_size(self, item: Item) -> int:
        if not item.is_folder:
            return item.size
        ids = self._subtree_ids(item.id)
        total = 0
        for marks, chunk in in_lists(ids):
            row = self.db.execute(
                f"SELECT COALESCE(SUM(size), 0) AS s FROM items WHERE is_folder=0 AND id IN ({marks})", chunk
            ).fetchone()
            total += row["s"]
        return total
