"""The store: one data directory's metadata and content, assembled from its parts.

:class:`Store` opens the database and the blob directory, recovers from an
interrupted write, and combines the concepts, each in its own module:
accounts (:mod:`~portal.store.accounts`), reading and writing items
(:mod:`~portal.store.tree`), the recycle bin
(:mod:`~portal.store.recycle_bin`), moves and copies
(:mod:`~portal.store.moves`), snapshots (:mod:`~portal.store.snapshots`).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from cachetools import LRUCache

from portal.store import snapshots as _snapshots
from portal.store.blobs import BlobStore
from portal.store.database import connect
from portal.store.moves import Moves
from portal.store.records import Item, Snapshot


class Store(Moves):
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

    def _blob_is_referenced(self, blob: str) -> bool:
        return self.db.execute("SELECT 1 FROM versions WHERE blob=? LIMIT 1", (blob,)).fetchone() is not None

    # -------------------------------------------------------------- snapshots

    def take_snapshot(self, cloud_folder_id: int, *, when: float | None = None, force: bool = False) -> Snapshot | None:
        return _snapshots.take(self, cloud_folder_id, when=when, force=force)

    def snapshots(self, cloud_folder_id: int) -> list[Snapshot]:
        return _snapshots.list_for(self, cloud_folder_id)

    def snapshot_root(self, snapshot: Snapshot) -> Item:
        return _snapshots.root(self, snapshot)
