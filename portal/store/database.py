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
* ``change_log`` (schema 2) is the change feed: one row per item change, with
  the item's state after it; ``seq`` only grows (AUTOINCREMENT never reuses a
  value), which is what makes it a cursor (:mod:`portal.store.changes`).
* ``shares`` and ``share_settings`` (schema 2) are public links and
  collaboration recipients (:mod:`portal.store.shares`); ``api_keys`` (schema
  2) the users' S3-style key pairs (:mod:`portal.store.api_keys`).

Upgrades: a data directory of an older schema is migrated in place when
opened (every new table is ``CREATE … IF NOT EXISTS``; :data:`_MIGRATIONS`
fills what the new tables need); a newer one is refused.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

SCHEMA_VERSION = 2

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

CREATE TABLE IF NOT EXISTS change_log (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    cloud_folder_id INTEGER NOT NULL,
    item_id         INTEGER NOT NULL,
    parent_id       INTEGER,
    name            TEXT NOT NULL,
    is_folder       INTEGER NOT NULL,
    size            INTEGER NOT NULL,
    mtime           REAL NOT NULL,
    deleted         INTEGER NOT NULL,
    logged_at       REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS change_log_by_folder ON change_log (cloud_folder_id, seq);
CREATE INDEX IF NOT EXISTS change_log_by_item ON change_log (item_id, seq);

CREATE TABLE IF NOT EXISTS shares (
    id              INTEGER PRIMARY KEY,
    item_id         INTEGER NOT NULL,
    owner_id        INTEGER NOT NULL REFERENCES users(id),
    invite          TEXT UNIQUE,
    access          TEXT NOT NULL,
    expires         TEXT,
    protection      TEXT,
    invitee_type    TEXT NOT NULL,
    invitee_user_id INTEGER REFERENCES users(id),
    invitee_email   TEXT,
    created         REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS shares_by_item ON shares (item_id);
CREATE INDEX IF NOT EXISTS shares_by_invitee ON shares (invitee_user_id);

CREATE TABLE IF NOT EXISTS api_keys (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id),
    access_key  TEXT NOT NULL UNIQUE,
    secret_hash TEXT NOT NULL,
    created     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS api_keys_by_user ON api_keys (user_id);

CREATE TABLE IF NOT EXISTS share_settings (
    item_id       INTEGER PRIMARY KEY,
    team_project  INTEGER NOT NULL,
    allow_reshare INTEGER NOT NULL,
    should_sync   INTEGER NOT NULL
);
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
        else:
            found = int(row["value"])
            if found > SCHEMA_VERSION:
                raise RuntimeError(f"{path} has schema version {found}, this portal knows {SCHEMA_VERSION}")
            for version in range(found, SCHEMA_VERSION):
                _MIGRATIONS[version](db)
            db.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
    return db


def _seed_change_log(db: sqlite3.Connection) -> None:
    """1 → 2: the change feed starts with one event per live item, so that every
    item has a version stamp (``gvsn``) and a cursor taken now misses nothing."""
    db.execute(
        """INSERT INTO change_log (cloud_folder_id, item_id, parent_id, name, is_folder, size, mtime, deleted, logged_at)
           SELECT cloud_folder_id, id, parent_id, name, is_folder, size, mtime, 0, mtime
           FROM items WHERE deleted_at IS NULL ORDER BY id"""
    )


#: ``_MIGRATIONS[n]`` turns a schema-``n`` database into schema ``n + 1`` (the tables exist already).
_MIGRATIONS: dict[int, Callable[[sqlite3.Connection], None]] = {1: _seed_change_log}


def _create_schema(db: sqlite3.Connection) -> None:
    # executescript() would COMMIT the surrounding transaction; run statements one by one.
    for statement in _SCHEMA.split(";"):
        if statement.strip():
            db.execute(statement)


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, rolled back on any exception, a failed ``COMMIT``'s
    included (SQLite may leave the transaction open then); nests as a no-op."""
    if db.in_transaction:
        yield db
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


#: Bound parameters per ``IN (…)`` list, well under SQLite's limit (999 before 3.32).
IDS_PER_QUERY = 500


def in_lists(ids: Sequence[int]) -> Iterator[tuple[str, Sequence[int]]]:
    """``ids`` in pieces small enough for one ``IN (…)`` each: the placeholders and the piece."""
    for first in range(0, len(ids), IDS_PER_QUERY):
        piece = ids[first:first + IDS_PER_QUERY]
        yield ",".join("?" * len(piece)), piece
