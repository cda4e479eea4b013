"""Moving, renaming and copying items within and across cloud folders.

A move keeps the item (its ``fileId``, versions and history); a copy makes
new items that share the content blobs, so no bytes are duplicated.  A taken
target is a conflict unless the caller asks to replace it, in which case the
occupant goes to the recycle bin.  Moving between cloud folders re-homes the
subtree and charges it to the new owner's quota.
"""

from __future__ import annotations

import time

from portal.store.database import transaction
from portal.store.errors import (
    Exists,
    InvalidName,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
)
from portal.store.records import Item
from portal.store.recycle_bin import RecycleBin


class Moves(RecycleBin):
    """Rename, move and copy."""

    def _is_inside(self, folder: Item, ancestor: Item) -> bool:
        node: Item | None = folder
        while node is not None:
            if node.id == ancestor.id:
                return True
            node = self.item(node.parent_id) if node.parent_id is not None else None
        return False

    def _prepare_target(self, source: Item, new_parent: Item, new_name: str, replace: bool, *, moving: bool) -> bool:
        """Check a move/copy destination; with ``replace``, send its occupant to the recycle bin.

        Returns False when there is nothing to do: an item copied over itself
        with ``replace`` already is what was asked for (and deleting the
        occupant would delete the source).  Moving an item onto its own name
        is a rename in place (for example a change of case), not a conflict.
        """
        self._writable_folder(new_parent)
        self._check_child_name(new_parent, new_name)
        # A snapshot's items carry their live items' ids, yet are never the live item:
        # copying one out of a snapshot (a restore) may land inside or onto its live self.
        live_source = source.snapshot_id is None
        if source.is_folder and live_source and self._is_inside(new_parent, source):
            raise InvalidName(f"cannot put {source.name!r} inside itself")
        occupant = self.child(new_parent, new_name)
        if occupant is None or (moving and occupant.id == source.id):
            return True
        if not replace:
            raise Exists(f"{new_name!r} already exists")
        if occupant.id == source.id and live_source:
            return False
        self._delete(occupant, time.time())
        return True

    def move(self, item: Item, new_parent: Item, new_name: str, *, replace: bool = False) -> Item:
        """Rename and/or move; ``fileId`` and content stay (it is the same item)."""
        self._writable(item, "move")
        if item.parent_id is None:
            raise PermissionDenied("a cloud folder cannot be moved")
        with transaction(self.db):
            self._prepare_target(item, new_parent, new_name, replace, moving=True)
            now = time.time()
            crossing = new_parent.cloud_folder_id != item.cloud_folder_id
            subtree = self._subtree_ids(item.id) if crossing else [item.id]
            if crossing:  # logged as it was there, before the rows change
                self._log(subtree, gone_from=item.cloud_folder_id)
            self.db.execute(
                "UPDATE items SET parent_id=?, name=?, name_key=? WHERE id=?",
                (new_parent.id, new_name, self.name_key(new_name), item.id),
            )
            if crossing:
                self._check_growth(new_parent.cloud_folder_id, self._subtree_size(item))
                for descendant in subtree:
                    self.db.execute(
                        "UPDATE items SET cloud_folder_id=? WHERE id=?", (new_parent.cloud_folder_id, descendant)
                    )
            self._touch(item.parent_id, now)
            self._touch(new_parent.id, now)
            self._changed(item.cloud_folder_id, new_parent.cloud_folder_id)
            self._log(subtree)
            return self.item(item.id)

    def copy(self, item: Item, new_parent: Item, new_name: str, *, replace: bool = False) -> Item:
        """Copy a file or a whole folder; new items, sharing the content blobs."""
        if item.is_deleted:
            raise NotFound(f"{item.name!r} is deleted")
        with transaction(self.db):
            if not self._prepare_target(item, new_parent, new_name, replace, moving=False):
                return item
            self._check_growth(new_parent.cloud_folder_id, self._subtree_size(item))
            now = time.time()
            new_id = self._copy_into(item, new_parent, new_name, now)
            self._touch(new_parent.id, now)
            self._changed(new_parent.cloud_folder_id)
            self._log(self._subtree_ids(new_id))
            return self.item(new_id)

    def _copy_into(self, item: Item, parent: Item, name: str, now: float) -> int:
        new_id = self.db.execute(
            "INSERT INTO items (parent_id, cloud_folder_id, name, name_key, is_folder, size, mtime)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (parent.id, parent.cloud_folder_id, name, self.name_key(name), item.is_folder, item.size, item.mtime),
        ).lastrowid
        if item.is_folder:
            copy_parent = self.item(new_id)
            for child in list(self.iter_children(item)):
                self._copy_into(child, copy_parent, child.name, now)
        elif item.version_id is not None:
            source = self.version(item.version_id)
            version_id = self.db.execute(
                "INSERT INTO versions (item_id, blob, size, created) VALUES (?, ?, ?, ?)",
                (new_id, source.blob, source.size, now),
            ).lastrowid
            self.db.execute("UPDATE items SET version_id=? WHERE id=?", (version_id, new_id))
        return new_id

    def _check_growth(self, cloud_folder_id: int, growth: int) -> None:
        used, quota = self.quota_of(cloud_folder_id)
        if quota is not None and growth > 0 and used + growth > quota:
            raise QuotaExceeded("User is out of quota")
