"""The store's operations: users, cloud folders, items, versions, recycle bin.

Every public method is synchronous and atomic (one SQLite transaction) and
raises only :class:`~portal.store.errors.StoreError` subclasses for refusals.
Snapshots live in :mod:`portal.store.snapshots`; this module answers for them
wherever an operation receives an item read from a snapshot (reads work,
changes are ``PermissionDenied``).  Every change also appends the affected
items to the change feed's log (:mod:`portal.store.changes`) in the same
transaction, so the feed can never report a change that did not happen.

Listing pages are O(page): the position after each page is remembered per
folder state, so the next page continues from that key instead of counting
``OFFSET`` rows from the start of the folder.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

from cachetools import LRUCache

from portal.store import changes as _changes
from portal.store import snapshots as _snapshots
from portal.store.blobs import BlobStore, StagedBlob
from portal.store.database import connect, transaction
from portal.store.errors import (
    Exists,
    InvalidName,
    IsAFolder,
    NotAFolder,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
)
from portal.store.names import check_name, name_key
from portal.store.records import CloudFolder, Item, Snapshot, User, Version

PERSONAL_FOLDER = "My Files"

#: Listing positions and page sizes are clamped to this (no folder holds more).
_MAX_POSITION = 1 << 62

_ITEM_COLUMNS = "id, parent_id, cloud_folder_id, name, is_folder, size, mtime, version_id, deleted_at"
_CLOUD_FOLDER_SELECT = """
    SELECT c.id, c.name, c.owner_id, c.root_item_id, c.group_uid,
           u.name AS owner_name, u.friendly_name AS owner_friendly_name
    FROM cloud_folders c JOIN users u ON u.id = c.owner_id
"""


class Store:
    """The portal's state under one data directory."""

    def __init__(self, data_dir: Path, *, case_sensitive: bool = False) -> None:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir = data_dir
        self.case_sensitive = case_sensitive
        self.db = connect(data_dir / "portal.sqlite3")
        self.blobs = BlobStore(data_dir)
        self.blobs.recover(self._blob_is_referenced)
        # (parent key, include_deleted, change_seq, start) -> (name_key, id) of the row before `start`
        self._page_cursors: LRUCache[tuple, tuple[str, int]] = LRUCache(maxsize=1024)
        #: Called (synchronously, possibly before the change commits) after every
        #: logged change: the change feed's long polls wake on it and re-check.
        self.change_listeners: list[Callable[[], None]] = []

    def close(self) -> None:
        self.db.close()

    def name_key(self, name: str) -> str:
        """The form names are compared in (see :func:`portal.store.names.name_key`)."""
        return name_key(name, case_sensitive=self.case_sensitive)

    def _blob_is_referenced(self, blob: str) -> bool:
        return self.db.execute("SELECT 1 FROM versions WHERE blob=? LIMIT 1", (blob,)).fetchone() is not None

    # ------------------------------------------------------------------ users

    def set_user(
        self,
        name: str,
        password: str,
        *,
        role: str = "EndUser",
        friendly_name: str | None = None,
        quota_bytes: int | None = None,
    ) -> User:
        """Create or update a user; an end user gets a personal cloud folder."""
        check_name(name)
        friendly = friendly_name or name
        check_name(friendly)
        with transaction(self.db):
            self.db.execute(
                """INSERT INTO users (name, friendly_name, role, password_hash, quota_bytes)
                   VALUES (?, ?, ?, ?, ?)
                   ON CONFLICT (name) DO UPDATE SET friendly_name=excluded.friendly_name,
                       role=excluded.role, password_hash=excluded.password_hash,
                       quota_bytes=excluded.quota_bytes""",
                (name, friendly, role, _hash_password(password), quota_bytes),
            )
            user = self.user(name)
            assert user is not None
            if not user.is_admin and not self.cloud_folders(user.id):
                self._create_cloud_folder(user, PERSONAL_FOLDER)
        return user

    def _create_cloud_folder(self, owner: User, name: str) -> CloudFolder:
        check_name(name)
        now = time.time()
        cursor = self.db.execute(
            "INSERT INTO items (parent_id, cloud_folder_id, name, name_key, is_folder, mtime) VALUES (NULL, 0, ?, ?, 1, ?)",
            (name, self.name_key(name), now),
        )
        root_id = cursor.lastrowid
        folder_id = self.db.execute(
            "INSERT INTO cloud_folders (name, owner_id, root_item_id, group_uid) VALUES (?, ?, ?, ?)",
            (name, owner.id, root_id, owner.id),
        ).lastrowid
        self.db.execute("UPDATE items SET cloud_folder_id=? WHERE id=?", (folder_id, root_id))
        self._log([root_id])
        return self.cloud_folder(folder_id)

    def authenticate(self, name: str, password: str) -> User | None:
        row = self.db.execute("SELECT * FROM users WHERE name=?", (name,)).fetchone()
        if row is None:
            _hash_password(password)  # spend the same time whether or not the user exists
            return None
        if not _check_password(password, row["password_hash"]):
            return None
        return User.from_row(row)

    def user(self, name: str) -> User | None:
        row = self.db.execute("SELECT * FROM users WHERE name=?", (name,)).fetchone()
        return User.from_row(row) if row else None

    def user_by_id(self, user_id: int) -> User:
        return User.from_row(self.db.execute("SELECT * FROM users WHERE id=?", (user_id,)).fetchone())

    def users(self) -> list[User]:
        return [User.from_row(r) for r in self.db.execute("SELECT * FROM users ORDER BY name")]

    def end_user_by_friendly_name(self, friendly: str) -> User | None:
        for row in self.db.execute("SELECT * FROM users WHERE role='EndUser'"):
            if self.name_key(row["friendly_name"]) == self.name_key(friendly):
                return User.from_row(row)
        return None

    # ---------------------------------------------------------- cloud folders

    def cloud_folders(self, owner_id: int) -> list[CloudFolder]:
        rows = self.db.execute(_CLOUD_FOLDER_SELECT + " WHERE c.owner_id=? ORDER BY c.name", (owner_id,))
        return [CloudFolder.from_row(r) for r in rows]

    def all_cloud_folders(self) -> list[CloudFolder]:
        return [CloudFolder.from_row(r) for r in self.db.execute(_CLOUD_FOLDER_SELECT + " ORDER BY c.id")]

    def cloud_folder(self, folder_id: int) -> CloudFolder:
        row = self.db.execute(_CLOUD_FOLDER_SELECT + " WHERE c.id=?", (folder_id,)).fetchone()
        if row is None:
            raise NotFound(f"no cloud folder {folder_id}")
        return CloudFolder.from_row(row)

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
        row = self.db.execute(f"SELECT {_ITEM_COLUMNS} FROM items WHERE id=?", (item_id,)).fetchone()
        if row is None:
            raise NotFound(f"no item {item_id}")
        return Item.from_row(row)

    def child(self, parent: Item, name: str, *, include_deleted: bool = False) -> Item | None:
        """The child called ``name`` (live first; else the latest deleted one if asked)."""
        if parent.snapshot_id is not None:
            return _snapshots.child(self, parent, name)
        rows = self.db.execute(
            f"""SELECT {_ITEM_COLUMNS} FROM items WHERE parent_id=? AND name_key=?
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
            f"""SELECT {_ITEM_COLUMNS} FROM items WHERE parent_id=? AND name_key=? AND deleted_at IS NOT NULL
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
            columns = _ITEM_COLUMNS
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
        if item.is_folder or item.version_id is None:
            raise IsAFolder(f"{item.name!r} is a folder")
        return self.blobs.path(self.version(item.version_id).blob)

    def usage(self, owner_id: int) -> int:
        """Bytes of live file content in the cloud folders ``owner_id`` owns."""
        row = self.db.execute(
            """SELECT COALESCE(SUM(i.size), 0) AS used FROM items i
               JOIN cloud_folders c ON c.id = i.cloud_folder_id
               WHERE c.owner_id=? AND i.deleted_at IS NULL AND i.is_folder=0""",
            (owner_id,),
        ).fetchone()
        return int(row["used"])

    def quota_of(self, cloud_folder_id: int) -> tuple[int, int | None]:
        """(used bytes, quota bytes or None) of the owner of a cloud folder."""
        folder = self.cloud_folder(cloud_folder_id)
        return self.usage(folder.owner_id), self.user_by_id(folder.owner_id).quota_bytes

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
        for chunk_start in range(0, len(ids), 500):
            chunk = ids[chunk_start : chunk_start + 500]
            marks = ",".join("?" * len(chunk))
            row = self.db.execute(
                f"SELECT COALESCE(SUM(size), 0) AS s FROM items WHERE is_folder=0 AND id IN ({marks})", chunk
            ).fetchone()
            total += row["s"]
        return total

    def _check_growth(self, cloud_folder_id: int, growth: int) -> None:
        used, quota = self.quota_of(cloud_folder_id)
        if quota is not None and growth > 0 and used + growth > quota:
            raise QuotaExceeded("User is out of quota")

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
        for chunk_start in range(0, len(ids), 500):
            chunk = ids[chunk_start : chunk_start + 500]
            marks = ",".join("?" * len(chunk))
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

    # -------------------------------------------------------------- snapshots

    def take_snapshot(self, cloud_folder_id: int, *, when: float | None = None, force: bool = False) -> Snapshot | None:
        return _snapshots.take(self, cloud_folder_id, when=when, force=force)

    def snapshots(self, cloud_folder_id: int) -> list[Snapshot]:
        return _snapshots.list_for(self, cloud_folder_id)

    def snapshot_root(self, snapshot: Snapshot) -> Item:
        return _snapshots.root(self, snapshot)


# ------------------------------------------------------------------ passwords

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def _hash_password(password: str, salt: bytes | None = None) -> str:
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, **_SCRYPT)
    return f"scrypt${salt.hex()}${digest.hex()}"


def _check_password(password: str, stored: str) -> bool:
    try:
        scheme, salt_hex, digest_hex = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    expected = _hash_password(password, bytes.fromhex(salt_hex)).split("$")[2]
    return hmac.compare_digest(expected, digest_hex)
