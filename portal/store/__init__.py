"""The portal's storage: versioned items, recycle bin, snapshots, users, quotas.

Metadata lives in one SQLite database and content in immutable blob files, so
a version, a copy and a snapshot of a file all share one blob, and a crash at
any instant leaves either the old or the new version visible, never a mix.

The store is synchronous and is driven from the server's single trio thread:
every method runs to completion without yielding, so a transaction can never
interleave with another request.  Only blob I/O (large, slow) happens off the
loop, and it never touches the database.
"""

from portal.store.errors import (
    Exists,
    InvalidName,
    IsAFolder,
    NotAFolder,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    ReservedName,
    StoreError,
)
from portal.store.records import CloudFolder, Item, Snapshot, User
from portal.store.store import Store

__all__ = [
    "CloudFolder",
    "Exists",
    "InvalidName",
    "IsAFolder",
    "Item",
    "NotAFolder",
    "NotFound",
    "PermissionDenied",
    "QuotaExceeded",
    "ReservedName",
    "Snapshot",
    "Store",
    "StoreError",
    "User",
]
