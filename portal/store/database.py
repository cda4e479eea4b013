"""The SQLite schema and connection settings of the store.

Durability: WAL journal with ``synchronous=NORMAL`` survives a kill -9 of the
server at any point (a committed transaction is in the WAL before ``commit``
returns); the blob a version points at is fsynced and renamed into place before
the transaction that references it commits, so the database never names a
missing or partial blob.

Items:

* ``items`` holds live and deleted items.  A live name is unique per folder
  (partial unique index on the folding key); any number of deleted items may
  share a name.  Deleting a folder marks its whole subtree with one
  ``delete_op`` so that restoring it brings back exactly that subtree.
* ``versions`` is append-only: every upload or copy adds a row; snapshots and
  deleted items keep pointing at old rows, which is what makes them genuine.
* ``snapshot_items`` is a copy of a cloud folder's live rows at snapshot time.
* ``cloud_folders.change_seq`` counts changes, so the scheduler can skip a
  snapshot of a folder that did not change, and listing cursors can tell when
  a folder moved under them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);

CREATE TABLE IF NOT EXISTS users (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    friendly_name TEXT NOT NULL,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    quota_bytes   INTEGER
);

CREATE TABLE IF NOT EXISTS cloud_folders (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    owner_id     INTEGER NOT NULL REFERENCES users(id),
    root_item_id INTEGER NOT NULL,
    group_uid    INTEGER NOT NULL,
    change_seq   INTEGER NOT NULL DEFAULT 0,
    UNIQUE (owner_id, name)
);

CREATE TABLE IF NOT EXISTS items (
    id              INTEGER PRIMARY KEY,
    parent_id       INTEGER REFERENCES items(id),
    cloud_folder_id INTEGER NOT NULL,
    name            TEXT NOT NULL,
    name_key        TEXT NOT NULL,
    is_folder       INTEGER NOT NULL,
    size            INTEGER NOT NULL DEFAULT 0,
    mtime           REAL NOT NULL,
    version_id      INTEGER,
    deleted_at      REAL,
    delete_op       INTEGER
);
CREATE UNIQUE INDEX IF NOT EXISTS items_live_name
    ON items (parent_id, name_key) WHERE deleted_at IS NULL;
CREATE INDEX IF NOT EXISTS items_children ON items (parent_id, name_key, id);
CREATE INDEX IF NOT EXISTS items_by_folder ON items (cloud_folder_id, deleted_at);
CREATE INDEX IF NOT EXISTS items_by_delete_op ON items (delete_op);

CREATE TABLE IF NOT EXISTS versions (
    id      INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL,
    blob    TEXT NOT NULL,
    size    INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS versions_by_blob ON versions (blob);

CREATE TABLE IF NOT EXISTS snapshots (
    id              INTEGER PRIMARY KEY,
    cloud_folder_id INTEGER NOT NULL,
    taken_at        INTEGER NOT NULL,
    change_seq      INTEGER NOT NULL,
    UNIQUE (cloud_folder_id, taken_at)
);

CREATE TABLE IF NOT EXISTS snapshot_items (
    snapshot_id     INTEGER NOT NULL,
    id              INTEGER NOT NULL,
    parent_id       INTEGER,
    cloud_folder_id INTEGER NOT NULL,
    name            TEXT NOT NULL,
    name_key        TEXT NOT NULL,
    is_folder       INTEGER NOT NULL,
    size            INTEGER NOT NULL,
    mtime           REAL NOT NULL,
    version_id      INTEGER,
    PRIMARY KEY (snapshot_id, id)
);
CREATE INDEX IF NOT EXISTS snapshot_children
    ON snapshot_items (snapshot_id, parent_id, name_key, id);
"""


def connect(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the metadata database at ``path``."""
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.row_factory = sqlite3.Row
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("PRAGMA busy_timeout=5000")
    with transaction(db):
        _create_schema(db)
        row = db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            db.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        elif int(row["value"]) != SCHEMA_VERSION:
            raise RuntimeError(
                f"{path} has schema version {row['value']}, this portal knows {SCHEMA_VERSION}"
            )
    return db


def _create_schema(db: sqlite3.Connection) -> None:
    # executescript() would COMMIT the surrounding transaction; run statements one by one.
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception; nests as a no-op."""
    if db.in_transaction:
        yield db
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
