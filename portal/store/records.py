"""Plain records the store hands out: read-only views of database rows."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    friendly_name: str
    role: str  # "EndUser" or "ReadWriteAdmin"
    quota_bytes: int | None  # None: unlimited

    @property
    def is_admin(self) -> bool:
        return self.role != "EndUser"

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> User:
        return cls(row["id"], row["name"], row["friendly_name"], row["role"], row["quota_bytes"])


@dataclass(frozen=True, slots=True)
class CloudFolder:
    """A cloud drive folder ("volume"): the unit of ownership, upload and snapshot."""

    id: int  # the wire's cloudFolderInfo.uid
    name: str
    owner_id: int
    owner_name: str
    owner_friendly_name: str
    root_item_id: int
    group_uid: int

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> CloudFolder:
        return cls(
            row["id"],
            row["name"],
            row["owner_id"],
            row["owner_name"],
            row["owner_friendly_name"],
            row["root_item_id"],
            row["group_uid"],
        )


@dataclass(frozen=True, slots=True)
class Item:
    """A file or folder, live, deleted, or as recorded in a snapshot.

    ``id`` is the portal's ``fileId``: stable across renames, moves and new
    versions.  ``version_id`` names the current content (files only) and is what
    the ETag is made of.  ``snapshot_id`` is set for items read from a snapshot.
    """

    id: int
    parent_id: int | None
    cloud_folder_id: int
    name: str
    is_folder: bool
    size: int
    mtime: float
    version_id: int | None
    deleted_at: float | None = None
    snapshot_id: int | None = None

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None

    @classmethod
    def from_row(cls, row: sqlite3.Row, snapshot_id: int | None = None) -> Item:
        keys = row.keys()
        return cls(
            id=row["id"],
            parent_id=row["parent_id"],
            cloud_folder_id=row["cloud_folder_id"],
            name=row["name"],
            is_folder=bool(row["is_folder"]),
            size=row["size"],
            mtime=row["mtime"],
            version_id=row["version_id"],
            deleted_at=row["deleted_at"] if "deleted_at" in keys else None,
            snapshot_id=snapshot_id,
        )


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A point in time of one cloud folder, kept whole (names, tree and content)."""

    id: int
    cloud_folder_id: int
    taken_at: int  # whole seconds, UTC; unique per cloud folder

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Snapshot:
        return cls(row["id"], row["cloud_folder_id"], row["taken_at"])


@dataclass(frozen=True, slots=True)
class Version:
    id: int
    item_id: int
    blob: str
    size: int
    created: float
