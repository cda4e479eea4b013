"""The staging journal: one SQLite row per staged file, and recovery at open.

The problem: a file whose ``close()`` was acknowledged must be uploaded even
if the daemon is killed (``kill -9``) or the machine loses power a moment
later, and the next start must know exactly which bytes make up each staged
file. The data files alone cannot say that (which blocks were written, from
which base, to which path); the journal can.

What a row holds, in two groups changed by different calls:

* the *content snapshot* — ``size``, ``mtime``, ``dirty_since``,
  ``base_limit`` and ``blocks`` (the bitmap of present blocks, ``blockmap``
  format) — written only by ``save_content`` at a commit, after the data file
  was fsynced, together with ``committed = 1`` and ``rewriting = 0``;
* *bookkeeping* — ``path``, ``object_id``, ``base_version``, ``base_size``,
  ``state``, ``attempts``, ``last_error``, ``meta`` — written by
  ``save_fields`` whenever the store's owner changes them.

Durability: WAL with ``synchronous=FULL`` — every acknowledged transaction
has been fsynced, so it survives a power loss, not just a crash. Each call is
one transaction; a staging area sees a few per file, not per block. Two
kinds of transaction skip their own fsync (the next durable one covers them,
WAL keeps the order): inserting a row (not durable until its first commit
anyway) and deleting one whose content is safe elsewhere.

Small files: a commit may carry the whole content *inline* (the ``inline``
column), instead of fsyncing the data file and its directory — one fsync
per ``close()`` instead of three. Recovery then rebuilds the data file from
the row, so such a row is never damaged or held: the committed snapshot is
in the journal itself.

Recovery (``open_journal``), given that the data file and the row cannot
change together:

* a row never committed (``committed = 0``: created, maybe written, never
  acknowledged) is deleted with its data file — nothing was promised;
* a committed row in state ``open`` or ``uploading`` becomes ``pending``: the
  process that was writing or uploading it is gone;
* a data file longer than the committed blocks need loses its tail (bytes
  written after the last commit);
* a row flagged ``rewriting`` becomes ``held``: the store sets that flag
  (durably, *before* the first such write) when a write after a commit is
  about to overwrite committed blocks in place, and clears it at the next
  commit; after a crash in between the content may mix the committed
  version with later writes, which nobody should upload unasked. The flag is
  cleared as the row is held, so the owner can release it;
* a data file missing or shorter than the committed blocks need means the
  committed content is damaged: the row becomes ``held`` with ``last_error``
  saying so, and is never deleted here — that is the owner's call;
* files in ``data/`` without a row (a crash between a row's deletion and its
  file's, or anything else left there) are removed.

A journal SQLite cannot read, or of another schema, makes ``open_journal``
refuse (``CacheDirectoryError``) rather than start afresh: unlike the read
cache, this directory holds data that exists nowhere else.

The directory is created 0700 (an existing one is fixed, with a warning), must
belong to us, and is held with an exclusive ``flock`` on ``lock`` for as long
as the journal is open, so two daemons can never stage into one directory.

Everything here blocks; the store calls it from worker threads, one call at a
time (its journal lock), so one connection with ``check_same_thread=False``
is safe.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from . import stagingdata
from .blockmap import BlockMap
from .private_dir import CacheDirectoryError, claim

log = logging.getLogger(__name__)

SCHEMA_VERSION = "2"
_OLDER_SCHEMAS = {"1": ["ALTER TABLE staged ADD COLUMN inline BLOB"]}
JOURNAL_FILE = "journal.sqlite3"
_SQLITE_FULL = 13

_COLUMNS = ("id", "path", "object_id", "base_version", "base_size", "block_size", "size",
            "mtime", "dirty_since", "base_limit", "blocks", "committed", "rewriting", "state",
            "attempts", "last_error", "meta", "inline")
_FIELDS = frozenset({"path", "object_id", "base_version", "base_size", "state", "attempts",
                     "last_error", "meta"})


@dataclass(frozen=True, slots=True)
class JournalRow:
    """One staged file as the journal knows it (the last committed snapshot)."""

    id: int
    path: tuple[str, ...]
    object_id: str | None
    base_version: str | None
    base_size: int
    block_size: int
    size: int
    mtime: float
    dirty_since: float
    base_limit: int
    blocks: bytes
    committed: bool
    rewriting: bool
    """Committed blocks are being overwritten in place since the last commit."""
    state: str
    attempts: int
    last_error: str | None
    meta: dict[str, str]
    inline: bytes | None = None
    """The whole committed content, for a small file committed inline."""


@dataclass(frozen=True, slots=True)
class Recovered:
    """A row kept at open, with what recovery learned about its data file."""

    row: JournalRow
    file_len: int
    extents: list[tuple[int, int]]


def required_length(block_size: int, size: int, blocks: bytes) -> int:
    """The data file length the present blocks of a snapshot need."""
    top = BlockMap.from_bytes(blocks).last()
    return 0 if top is None else min((top + 1) * block_size, size)


def _encode(name: str, value: object) -> object:
    if name == "path":
        return json.dumps(list(value))  # type: ignore[call-overload]
    if name == "meta":
        return json.dumps(dict(value), sort_keys=True)  # type: ignore[call-overload]
    return value


def _as_os_error(exc: sqlite3.Error) -> OSError:
    """SQLite's failure as the errno a writer understands."""
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None and code & 0xFF == _SQLITE_FULL:
        return OSError(28, f"staging journal: disk full ({exc})")  # ENOSPC
    return OSError(5, f"staging journal: {exc}")  # EIO


class Journal:
    """The journal connection plus the directory lock.

    Guarded by: the caller — the store runs every method in a worker thread
    under its journal lock, never two at once.
    """

    def __init__(self, root: Path, db: sqlite3.Connection, lock_fd: int) -> None:
        self.root = root
        self._db = db
        self._lock_fd = lock_fd

    def _transaction(self, statements: list[tuple[str, tuple[object, ...]]], *, durable: bool = True) -> int | None:
        """Run ``statements`` atomically; ``durable=False`` skips the fsync of this commit
        (in WAL mode the next durable commit makes it durable too, in order)."""
        try:
            if not durable:
                self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("BEGIN IMMEDIATE")
            last_id = None
            for sql, args in statements:
                last_id = self._db.execute(sql, args).lastrowid
            self._db.execute("COMMIT")
            return last_id
        except sqlite3.Error as exc:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise _as_os_error(exc) from exc
        finally:
            if not durable:
                self._db.execute("PRAGMA synchronous=FULL")

    def insert(self, row: JournalRow) -> int:
        """Add ``row`` (its ``id`` is ignored); returns the new id, never reused."""
        names = _COLUMNS[1:]
        values = tuple(_encode(name, getattr(row, name)) for name in names)
        sql = (f"INSERT INTO staged ({', '.join(names)})"
               f" VALUES ({', '.join('?' * len(names))})")
        # Not durable yet: a record never committed is dropped at the next open anyway.
        new_id = self._transaction([(sql, values)], durable=False)
        assert new_id is not None
        return new_id

    def save_content(self, record_id: int, *, size: int, mtime: float, dirty_since: float,
                     base_limit: int, blocks: bytes, state: str, inline: bytes | None = None,
                     meta: dict[str, str] | None = None) -> None:
        """Record a committed snapshot: the data file is already fsynced, or ``inline``
        holds the whole content.  ``meta`` (if given) replaces the record's meta in the
        same transaction, so no crash can pair the new content with the old meta."""
        extra, values = ("", ()) if meta is None else (", meta = ?", (_encode("meta", meta),))
        self._transaction([(
            "UPDATE staged SET size = ?, mtime = ?, dirty_since = ?, base_limit = ?,"
            f" blocks = ?, committed = 1, rewriting = 0, state = ?, inline = ?{extra} WHERE id = ?",
            (size, mtime, dirty_since, base_limit, blocks, state, inline, *values, record_id))])

    def save_fields(self, record_id: int, fields: dict[str, object]) -> None:
        """Change bookkeeping columns (see the module docstring)."""
        unknown = set(fields) - _FIELDS
        if unknown:
            raise ValueError(f"not bookkeeping fields: {sorted(unknown)}")
        if not fields:
            return
        assignments = ", ".join(f"{name} = ?" for name in fields)
        values = tuple(_encode(name, value) for name, value in fields.items())
        self._transaction([(f"UPDATE staged SET {assignments} WHERE id = ?",
                            (*values, record_id))])

    def mark_rewriting(self, record_id: int) -> None:
        """Say, before it happens, that committed blocks are about to be overwritten."""
        self._transaction([("UPDATE staged SET rewriting = 1 WHERE id = ?", (record_id,))])

    def delete(self, record_id: int, *, durable: bool = True) -> None:
        """Forget a record.  ``durable=False`` suits a record whose content the portal
        has already: if the delete is lost, the upload queue recognises it."""
        self._transaction([("DELETE FROM staged WHERE id = ?", (record_id,))], durable=durable)

    def close(self) -> None:
        try:
            self._db.close()
        finally:
            os.close(self._lock_fd)  # releases the flock


def open_journal(root: Path) -> tuple[Journal, list[Recovered]]:
    """Prepare and lock ``root``, open the journal and recover (module docstring).

    Returns the journal and the kept rows, oldest first.
    """
    lock_fd = claim(root, what="staging", subdirs=(stagingdata.DATA_DIR,))
    try:
        db = sqlite3.connect(root / JOURNAL_FILE, isolation_level=None, check_same_thread=False)
        try:
            rows = _load(root, db)
            # SQLite syncs the directory for the WAL it creates, not for the
            # database file itself, nor for data/: make those names durable.
            stagingdata.sync_dir(root)
            recovered = _recover(root, db, rows)
        except sqlite3.DatabaseError as exc:
            db.close()
            raise CacheDirectoryError(
                f"staging journal {root / JOURNAL_FILE} is unusable ({exc}); it may list "
                "unsent files, so it is left alone") from exc
        except BaseException:
            db.close()
            raise
    except BaseException:
        os.close(lock_fd)
        raise
    return Journal(root, db, lock_fd), recovered


def _load(root: Path, db: sqlite3.Connection) -> list[JournalRow]:
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    found = dict(db.execute("SELECT key, value FROM meta").fetchall())
    if not found:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO meta (key, value) VALUES ('schema', ?)", (SCHEMA_VERSION,))
        db.execute(
            "CREATE TABLE staged ("
            " id INTEGER PRIMARY KEY AUTOINCREMENT, path TEXT NOT NULL, object_id TEXT,"
            " base_version TEXT, base_size INTEGER NOT NULL, block_size INTEGER NOT NULL,"
            " size INTEGER NOT NULL, mtime REAL NOT NULL, dirty_since REAL NOT NULL,"
            " base_limit INTEGER NOT NULL, blocks BLOB NOT NULL, committed INTEGER NOT NULL,"
            " rewriting INTEGER NOT NULL,"
            " state TEXT NOT NULL, attempts INTEGER NOT NULL, last_error TEXT,"
            " meta TEXT NOT NULL, inline BLOB)")
        db.execute("COMMIT")
    elif found.get("schema") in _OLDER_SCHEMAS:
        db.execute("BEGIN IMMEDIATE")
        for statement in _OLDER_SCHEMAS[found["schema"]]:
            db.execute(statement)
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema'", (SCHEMA_VERSION,))
        db.execute("COMMIT")
    elif found.get("schema") != SCHEMA_VERSION:
        raise CacheDirectoryError(
            f"staging journal in {root} has schema {found.get('schema')!r}, this program "
            f"knows {SCHEMA_VERSION!r}; it may list unsent files, so it is left alone")
    rows = []
    for values in db.execute(f"SELECT {', '.join(_COLUMNS)} FROM staged ORDER BY id"):
        raw = dict(zip(_COLUMNS, values))
        raw["path"] = tuple(json.loads(raw["path"]))
        raw["meta"] = json.loads(raw["meta"])
        raw["committed"] = bool(raw["committed"])
        raw["rewriting"] = bool(raw["rewriting"])
        raw["blocks"] = bytes(raw["blocks"])
        raw["inline"] = None if raw["inline"] is None else bytes(raw["inline"])
        rows.append(JournalRow(**raw))
    return rows


def _restore_inline(root: Path, row: JournalRow) -> None:
    """Rewrite an inline-committed row's data file: its present blocks, from the row.

    Not fsynced: the row stays the durable copy of the content until a commit
    replaces it, and a crash before then restores the file again at the next
    open. A later commit through the data file fsyncs the file, and its
    directory too, since the recovered record is not marked ``dir_synced``
    (``stagedfile.record_from_row``).
    """
    assert row.inline is not None
    bs = row.block_size
    pieces = []
    for index in BlockMap.from_bytes(row.blocks):
        start = index * bs
        piece = row.inline[start:min(start + bs, row.size)]
        if piece:
            pieces.append((start, piece))
    path = stagingdata.data_path(root, row.id)
    stagingdata.remove_file(path)
    stagingdata.write_pieces(path, pieces, 0)


def _recover(root: Path, db: sqlite3.Connection, rows: list[JournalRow]) -> list[Recovered]:
    data_dir = root / stagingdata.DATA_DIR
    kept: list[Recovered] = []
    dropped: list[int] = []
    changes: list[tuple[str, str | None, int]] = []
    for row in rows:
        path = stagingdata.data_path(root, row.id)
        if not row.committed:
            dropped.append(row.id)
            continue
        state, error = row.state, row.last_error
        if state in ("open", "uploading"):
            state = "pending"
        if row.inline is not None:
            _restore_inline(root, row)  # the journal has the committed content itself
        elif row.rewriting:
            state = "held"
            error = ("interrupted while committed data was being overwritten: the content "
                     "may mix the committed version with later writes")
            log.warning("staging: record %d: %s", row.id, error)
        needed = required_length(row.block_size, row.size, row.blocks)
        length = stagingdata.file_length(path)
        if (length or 0) < needed:
            state = "held"
            error = (f"staged data damaged: data file is missing, needs {needed} bytes"
                     if length is None else
                     f"staged data damaged: data file has {length} bytes, needs {needed}")
            log.warning("staging: record %d: %s", row.id, error)
        elif length is not None and length > needed:
            stagingdata.cut_file(path, needed)  # bytes written after the last commit
            length = needed
        if (state, error, row.rewriting) != (row.state, row.last_error, False):
            changes.append((state, error, row.id))
            row = JournalRow(**{**{name: getattr(row, name) for name in _COLUMNS},
                                "state": state, "last_error": error, "rewriting": False})
        length = length or 0
        kept.append(Recovered(row, length, stagingdata.data_extents(path, length)))
    if dropped or changes:
        db.execute("BEGIN IMMEDIATE")
        db.executemany("DELETE FROM staged WHERE id = ?", [(i,) for i in dropped])
        db.executemany("UPDATE staged SET state = ?, last_error = ?, rewriting = 0"
                       " WHERE id = ?", changes)
        db.execute("COMMIT")
    if dropped:
        log.info("staging: dropped %d records that were never committed", len(dropped))
    # Only now that the rows are gone: a file without a row is unreachable.
    live = {str(item.row.id) for item in kept}
    for entry in os.scandir(data_dir):
        if entry.name not in live:
            if entry.is_dir(follow_symlinks=False):
                log.warning("staging: unexpected directory %s left alone", entry.path)
                continue
            os.unlink(entry.path)
    return kept
