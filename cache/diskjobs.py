"""The disk tier's writer jobs, and the worker-thread half that applies a batch of them.

The tier (``disk``) decides everything on the trio thread and queues jobs;
:func:`apply_jobs` only carries a batch out, in a worker thread, in the
order that keeps a crash harmless: files first (the batch's small blocks
all in one new pack), then every index change of the batch in one
transaction (``diskindex`` explains why that order suffices).  It reports
where each block went, or the ``OSError`` that kept it off the disk.
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from . import blockfile
from .diskindex import DiskIndex, IndexRow
from .keys import BlockKey

__all__ = ["Delete", "DeletePack", "Job", "Store", "Written", "apply_jobs"]

log = logging.getLogger(__name__)


class Stored(Protocol):
    """What the writer needs of the tier's entry for a block."""

    name: str
    file_size: int
    used: int
    packed: bool


@dataclass(slots=True)
class Store:
    """Write ``payload`` as the block of ``entry`` (a file, or a pack member) and insert its row."""

    key: BlockKey
    entry: Stored
    payload: bytes


@dataclass(slots=True)
class Delete:
    """Delete a block's row, and unlink its file if it has one (``name``)."""

    key: BlockKey
    name: str | None


@dataclass(slots=True)
class DeletePack:
    """Unlink a pack whose members are all gone (their rows went before)."""

    pack: str


@dataclass(slots=True)
class Written:
    """Where a block went: a file of its own, or ``pack`` at ``offset``."""

    pack: str | None = None
    offset: int = 0


Job = Store | Delete | DeletePack


def apply_jobs(root: Path, index: DiskIndex, jobs: list[Job], touched: dict[BlockKey, int]
               ) -> tuple[list[Written | OSError | None], sqlite3.Error | None]:
    """Carry out ``jobs`` and save the LRU stamps ``touched``.

    Returns an outcome per job (``Written`` or ``OSError`` for a store, None
    otherwise) and the index error, if SQLite could not save the batch.
    """
    outcomes: list[Written | OSError | None] = [None] * len(jobs)
    small = [(number, job) for number, job in enumerate(jobs) if isinstance(job, Store) and job.entry.packed]
    if small:
        try:
            pack, offsets = blockfile.write_pack(root, [(job.entry.name, job.payload) for _, job in small])
        except OSError as exc:
            for number, _ in small:
                outcomes[number] = exc
        else:
            for (number, _), offset in zip(small, offsets):
                outcomes[number] = Written(pack, offset)
    for number, job in enumerate(jobs):
        try:
            if isinstance(job, Store):
                if not job.entry.packed:
                    blockfile.write_block_file(root, job.entry.name, job.payload)
                    outcomes[number] = Written()
            elif isinstance(job, DeletePack):
                blockfile.remove_pack(root, job.pack)
            elif job.name is not None:
                blockfile.remove_block_file(root, job.name)
        except OSError as exc:
            if isinstance(job, Store):
                outcomes[number] = exc
            else:  # the next start's reconcile retries it
                log.debug("cache: cannot delete %s: %s", job, exc)
    try:
        index.begin()
        # Runs of inserts and of deletes, in job order: a block may be stored
        # again after its delete, or be deleted right after its store.
        inserts: list[IndexRow] = []
        deletes: list[BlockKey] = []
        for job, outcome in zip(jobs, outcomes):
            if isinstance(job, Delete):
                if inserts:
                    index.insert(inserts)
                    inserts = []
                deletes.append(job.key)
            elif isinstance(job, Store) and isinstance(outcome, Written):
                if deletes:
                    index.delete(deletes)
                    deletes = []
                inserts.append(IndexRow(job.key, job.entry.name, job.entry.file_size, job.entry.used,
                                        outcome.pack, outcome.offset))
        index.insert(inserts)
        index.delete(deletes)
        index.touch(touched)
        index.commit()
    except sqlite3.Error as exc:
        index.rollback()
        return outcomes, exc
    return outcomes, None
