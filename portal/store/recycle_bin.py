"""The recycle bin: deleting sends a whole subtree away at once, restoring brings exactly it back.

Deleting a folder marks every live item below it with one ``delete_op``, so
restoring the folder restores that subtree and nothing deleted before or
after; restoring an item inside a deleted folder also restores the deleted
folders above it (only them, not their other contents).
"""

from __future__ import annotations

import time

from portal.store.database import in_lists, transaction
from portal.store.errors import (
    Exists,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
)
from portal.store.records import Item
from portal.store.tree import Tree


class RecycleBin(Tree):
    """Delete to, and restore from, the recycle bin."""

    def delete(self, item: Item) -> None:
        """Send an item (a folder with its whole subtree) to the recycle bin."""
        self._writable(item, "delete")
        if item.parent_id is None:
            raise PermissionDenied("a cloud folder cannot be deleted")
        with transaction(self.db):
            self._delete(item, time.time())

    def _delete(self, item: Item, now: float) -> None:
        op = self.db.execute("SELECT COALESCE(MAX(delete_op), 0) + 1 AS op FROM items").fetchone()["op"]
        ids = self._subtree_ids(item.id)
        for marks, chunk in in_lists(ids):
            self.db.execute(f"UPDATE items SET deleted_at=?, delete_op=? WHERE id IN ({marks})", (now, op, *chunk))
        self._touch(item.parent_id, now)
        self._changed(item.cloud_folder_id)
        self._log(ids)

    def restore(self, item: Item, *, replace: bool = False, new_name: str | None = None) -> Item:
        """Bring a deleted item back (with the subtree deleted with it, and any
        deleted folders above it).  A live item of the same name is a conflict
        unless ``replace`` (it goes to the recycle bin) or ``new_name`` is given."""
        if item.snapshot_id is not None:
            raise PermissionDenied("snapshots are read-only")
        if not item.is_deleted:
            raise NotFound(f"{item.name!r} is not deleted")
        if new_name is not None and item.parent_id is not None:
            self._check_child_name(self.item(item.parent_id), new_name)
        with transaction(self.db):
            used_before, _ = self.quota_of(item.cloud_folder_id)
            now = time.time()
            chain: list[Item] = []
            parent_id = item.parent_id
            while parent_id is not None:
                parent = self.item(parent_id)
                if not parent.is_deleted:
                    break
                chain.append(parent)
                parent_id = parent.parent_id
            op = self.db.execute("SELECT delete_op FROM items WHERE id=?", (item.id,)).fetchone()["delete_op"]
            for folder in reversed(chain):  # outermost first
                self._undelete_one(folder, replace=replace, new_name=None, now=now)
            self._undelete_one(item, replace=replace, new_name=new_name, now=now)
            descendants = self._subtree_ids(item.id, delete_op=op)[1:]
            for descendant in descendants:
                self.db.execute("UPDATE items SET deleted_at=NULL, delete_op=NULL WHERE id=?", (descendant,))
            self._touch(item.parent_id, now)
            self._changed(item.cloud_folder_id)
            self._log([*(f.id for f in reversed(chain)), item.id, *descendants])
            # Restored content counts again: without this, delete-upload-restore
            # would grow a user past any quota.  Raising rolls the restore back.
            used, quota = self.quota_of(item.cloud_folder_id)
            if quota is not None and used > max(quota, used_before):
                raise QuotaExceeded("User is out of quota")
            return self.item(item.id)

    def _undelete_one(self, item: Item, *, replace: bool, new_name: str | None, now: float) -> str:
        name = new_name or item.name
        parent = self.item(item.parent_id) if item.parent_id is not None else None
        if parent is not None:
            occupant = self.child(parent, name)
            if occupant is not None:
                if not replace:
                    raise Exists(f"{name!r} already exists")
                self._delete(occupant, now)
        self.db.execute(
            "UPDATE items SET deleted_at=NULL, delete_op=NULL, name=?, name_key=? WHERE id=?",
            (name, self.name_key(name), item.id),
        )
        return name
