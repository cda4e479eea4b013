"""The persistent index of the disk tier: which block files exist, their sizes
and their LRU order, in a small SQLite database inside the cache directory.

Why an index rather than a scan of the block files at start: the file names
are hashes (any object id is a safe name), so a scan would have to open every
file to learn which block it holds, and it could not recover the LRU order
(atime is usually ``noatime``/``relatime``). A ``WITHOUT ROWID`` table of a
few hundred bytes per block loads 10 GiB of 1 MiB blocks in milliseconds,
commits batches atomically, and is in the standard library.

Crash consistency, given that files and rows cannot change together: the
writer changes the files of a batch first and then commits the batch's rows
in one transaction. A crash in between leaves files without rows (new
blocks) or rows without files (deleted blocks); ``open_index`` reconciles
both ways: files and packs without a row (and leftovers in ``tmp/``) are
deleted, rows without a file or with a file of the wrong size, and rows of
packs that are missing or too short to hold them, are dropped. Damage inside a
file is left to the checksum on read. WAL with ``synchronous=NORMAL`` may
lose the last commits on a power loss, which only leaves more of the same
mismatches.

The directory is created mode 0700 (an existing one with group/other bits is
fixed, with a warning) and must belong to us: block files are only as
trustworthy as the directory that holds them. An exclusive ``flock`` on
``lock`` keeps a second process from sharing the directory, which would
corrupt both budgets.

A change of ``block_size`` or of the schema, or an index SQLite cannot
read, empties the cache instead of migrating or repairing it: blocks are
cheap to refetch, and block files without rows are swept by the reconcile.

Everything here blocks; the disk tier calls it from worker threads, one call
at a time, so one connection with ``check_same_thread=False`` is safe.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from .blockfile import BLOCKS_DIR, PACKS_DIR, TMP_DIR, block_path, pack_path
from .keys import BlockKey
from .private_dir import claim

log = logging.getLogger(__name__)

SCHEMA_VERSION = "3"  # 2: block files with a header page; 3: small blocks in packs (blockfile.py)
INDEX_FILE = "index.sqlite3"


@dataclass(frozen=True, slots=True)
class IndexRow:
    """One block known to the index: a file of its own, or a member of ``pack`` at ``offset``."""

    key: BlockKey
    name: str
    file_size: int
    used: int
    pack: str | None = None
    offset: int = 0


class DiskIndex:
    """The SQLite index plus the directory lock.

    Guarded by: the caller — ``DiskTier`` runs every method in a worker
    thread and never two at once.
    """

    def __init__(self, root: Path, connection: sqlite3.Connection, lock_fd: int) -> None:
        self.root = root
        self._db = connection
        self._lock_fd = lock_fd

    # -- changes, applied in one transaction per batch (each call one statement
    #    over many rows: a statement per row was a tenth of a small file's CPU)

    def begin(self) -> None:
        self._db.execute("BEGIN")

    def insert(self, rows: list[IndexRow]) -> None:
        self._db.executemany(
            "INSERT OR REPLACE INTO blocks (object_id, version, idx, name, file_size, used, pack, offset)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(*row.key, row.name, row.file_size, row.used, row.pack, row.offset) for row in rows],
        )

    def delete(self, keys: list[BlockKey]) -> None:
        self._db.executemany(
            "DELETE FROM blocks WHERE object_id = ? AND version = ? AND idx = ?", [tuple(key) for key in keys]
        )

    def touch(self, stamps: dict[BlockKey, int]) -> None:
        self._db.executemany(
            "UPDATE blocks SET used = ? WHERE object_id = ? AND version = ? AND idx = ?",
            [(used, *key) for key, used in stamps.items()],
        )

    def commit(self) -> None:
        self._db.execute("COMMIT")

    def rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def close(self) -> None:
        try:
            self._db.close()
        finally:
            os.close(self._lock_fd)  # releases the flock


def open_index(root: Path, block_size: int) -> tuple[DiskIndex, list[IndexRow], dict[str, int]]:
    """Prepare ``root``, lock it, open the index, reconcile it with the files.

    Returns the index, its rows (least recently used first) and the size
    of every pack they use.
    """
    lock_fd = claim(root, what="cache", subdirs=(BLOCKS_DIR, TMP_DIR, PACKS_DIR))
    try:
        try:
            db, rows, packs = _connect(root, block_size)
        except sqlite3.DatabaseError as exc:
            # A damaged index is no reason to refuse to mount: start afresh.
            log.warning("cache index in %s is unusable (%s); emptying the cache", root, exc)
            for suffix in ("", "-wal", "-shm", "-journal"):
                (root / (INDEX_FILE + suffix)).unlink(missing_ok=True)
            db, rows, packs = _connect(root, block_size)
    except BaseException:
        os.close(lock_fd)
        raise
    return DiskIndex(root, db, lock_fd), rows, packs


def _connect(root: Path, block_size: int) -> tuple[sqlite3.Connection, list[IndexRow], dict[str, int]]:
    db = sqlite3.connect(root / INDEX_FILE, isolation_level=None, check_same_thread=False)
    try:
        return (db, *_load(root, db, block_size))
    except BaseException:
        db.close()
        raise


def _load(root: Path, db: sqlite3.Connection, block_size: int) -> tuple[list[IndexRow], dict[str, int]]:
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    wanted = {"schema": SCHEMA_VERSION, "block_size": str(block_size)}
    found = dict(db.execute("SELECT key, value FROM meta").fetchall())
    if found != wanted:
        if found:
            log.info("cache directory %s was made with %s; emptying it", root, found)
        db.execute("DROP TABLE IF EXISTS blocks")
        for folder in (BLOCKS_DIR, PACKS_DIR):
            shutil.rmtree(root / folder, ignore_errors=True)
            (root / folder).mkdir(mode=0o700, exist_ok=True)
        db.execute("BEGIN")
        db.execute("DELETE FROM meta")
        db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", wanted.items())
        db.execute("COMMIT")
    db.execute(
        "CREATE TABLE IF NOT EXISTS blocks ("
        " object_id TEXT NOT NULL, version TEXT NOT NULL, idx INTEGER NOT NULL,"
        " name TEXT NOT NULL, file_size INTEGER NOT NULL, used INTEGER NOT NULL,"
        " pack TEXT, offset INTEGER NOT NULL,"
        " PRIMARY KEY (object_id, version, idx)) WITHOUT ROWID"
    )
    rows = [
        IndexRow(BlockKey(object_id, version, idx), name, size, used, pack, offset)
        for object_id, version, idx, name, size, used, pack, offset in db.execute(
            "SELECT object_id, version, idx, name, file_size, used, pack, offset FROM blocks ORDER BY used"
        )
    ]
    return _reconcile(root, db, rows)


def _reconcile(root: Path, db: sqlite3.Connection, rows: list[IndexRow]) -> tuple[list[IndexRow], dict[str, int]]:
    """Make files and rows agree; see the module docstring.  A pack must hold
    each of its rows' bytes; one that no row uses is deleted."""
    for leftover in os.scandir(root / TMP_DIR):
        os.unlink(leftover.path)
    on_disk: dict[str, tuple[str, int]] = {}
    for fan in os.scandir(root / BLOCKS_DIR):
        if not fan.is_dir(follow_symlinks=False):
            os.unlink(fan.path)
            continue
        for entry in os.scandir(fan.path):
            on_disk[entry.name] = (entry.path, entry.stat(follow_symlinks=False).st_size)
    packs = {entry.name: entry.stat(follow_symlinks=False).st_size for entry in os.scandir(root / PACKS_DIR)}
    used_packs: dict[str, int] = {}
    kept: list[IndexRow] = []
    stale: list[BlockKey] = []
    for row in rows:
        if row.pack is not None:
            size = packs.get(row.pack)
            if size is not None and row.offset + row.file_size <= size:
                kept.append(row)
                used_packs[row.pack] = size
            else:
                stale.append(row.key)
            continue
        found = on_disk.pop(row.name, None)
        if found is not None and found[0] == str(block_path(root, row.name)) \
                and found[1] == row.file_size:
            kept.append(row)
        else:
            stale.append(row.key)
            if found is not None:
                os.unlink(found[0])
    for orphan_path, _ in on_disk.values():
        os.unlink(orphan_path)
    for pack in packs.keys() - used_packs.keys():
        os.unlink(pack_path(root, pack))
    if stale:
        log.info("cache index: dropping %d rows whose block file is missing or resized", len(stale))
        db.execute("BEGIN")
        db.executemany(
            "DELETE FROM blocks WHERE object_id = ? AND version = ? AND idx = ?",
            [tuple(key) for key in stale],
        )
        db.execute("COMMIT")
    if on_disk:
        log.info("cache index: deleted %d block files without an index row", len(on_disk))
    return kept, used_packs
