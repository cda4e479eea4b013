"""Modification times the portal cannot keep, kept here.

The portal stamps every upload with its own clock and has no call to set a
file's time, yet ``touch -d``, ``cp -p``, ``rsync -t``, ``tar x`` and make
rely on the times they set.  So a time set through the mount is recorded
here against the file's identity *and version*: it is shown while the
portal still holds that version.  Once the file changes elsewhere (a newer
version from another device brings its own time) the row no longer matches
and is ignored; it is not deleted, only overwritten when a time is next set
for that file (one row per object id, so the table never grows past the
files whose time was ever set).

The table is small (one row per file whose time was set) and lives in a
SQLite file beside the staging journal, in WAL mode without fsync per
change: a time lost to a power cut is an inconvenience, not lost data, and
``utimens`` must not cost a disk flush.  It is read into memory once.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

FILE_NAME = "mtimes.db"


class MtimeStore:
    """(object id, version) → mtime, mirrored in memory; one row per object id."""

    def __init__(self, directory: Path) -> None:
        self._db = sqlite3.connect(directory / FILE_NAME, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS mtimes (object_id TEXT PRIMARY KEY, version TEXT NOT NULL,"
                         " mtime REAL NOT NULL)")
        self._known: dict[str, tuple[str, float]] = {
            object_id: (version, mtime)
            for object_id, version, mtime in self._db.execute("SELECT object_id, version, mtime FROM mtimes")
        }

    def get(self, object_id: str, version: str) -> float | None:
        """The time set for this version of the object, or None."""
        known = self._known.get(object_id)
        return known[1] if known is not None and known[0] == version else None

    def put(self, object_id: str, version: str, mtime: float) -> None:
        if self._known.get(object_id) == (version, mtime):
            return
        self._known[object_id] = (version, mtime)
        self._db.execute("INSERT OR REPLACE INTO mtimes VALUES (?, ?, ?)", (object_id, version, mtime))

    def close(self) -> None:
        self._db.close()
