"""One staged file: the snapshot callers see, and the record the store keeps in memory.

The problem: the store hands out records to a filesystem that runs many
requests at once on one trio thread, while their content changes in worker
threads. Callers therefore get immutable snapshots (``StagedFile``), and the
mutable ``Record`` documents which lock guards which field.

``Record`` fields and their guards:

* ``lock`` (a ``trio.Lock`` per staged file) guards ``layout``, ``mtime``,
  ``dirty_since``, ``generation``, ``committed``, ``committed_present``,
  ``rewriting``, ``dir_synced`` and the data file itself. Write, truncate,
  commit and discard hold it from start to end — including a write's base
  fetch, so the fill of a block can never race another write to it; reads
  hold it only while they read the data file.
* ``generation`` is bumped by every change of content (and by a discard),
  so a reader that fetched base bytes without the lock can tell whether its
  plan still holds, and ``content()`` can tell that what it streamed is no
  longer one version of the file.
* The bookkeeping fields (``path``, ``object_id``, ``base_version``,
  ``base_size``, ``state``, ``attempts``, ``last_error``, ``meta``) change
  under the store's journal lock, right after their journal transaction, so
  memory and disk see changes in the same order.
* Every field changes only in synchronous stretches between awaits, so any
  task may read any field without a lock and never see a half-made change.
"""

from __future__ import annotations

import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio

from .blockmap import BlockMap
from .stagingjournal import Recovered, required_length
from .staginglayout import Layout

BaseFetch = Callable[[int, int], Awaitable[bytes]]
"""``fetch(offset, length)`` of the remote base version; may return more than asked."""

STATES = frozenset({"open", "pending", "uploading", "held"})
"""``open``: being written; ``pending``: durable, to upload; ``uploading``;
``held``: kept but not retried automatically (conflict, quota, damage)."""


class ContentChanged(Exception):
    """The staged file was written, truncated or discarded while ``content()`` streamed it."""


class ChangeWatch:
    """Whether what a reader took from a staged file, in order from its start, is still its content.

    For a reader that sends a file's prefix somewhere before the file is
    finished (an upload started while it is still being written).  The store
    moves ``covered`` to the end of each read with no await since it checked
    the read against the record's generation (or under the record's lock), so
    a write racing a read is either in the bytes read or after them;
    any change after that below ``covered`` sets ``broken``.  A discard counts
    as a change at offset 0.
    """

    __slots__ = ("covered", "broken", "__weakref__")

    def __init__(self) -> None:
        self.covered = 0
        self.broken = False

    def changed_at(self, offset: int) -> None:
        if offset < self.covered:
            self.broken = True


def check_state(state: str) -> None:
    if state not in STATES:
        raise ValueError(f"unknown staging state {state!r}; expected one of {sorted(STATES)}")


@dataclass(frozen=True)
class StagedFile:
    """One journal record, as of the moment it was taken (re-read after changes)."""

    id: int
    path: tuple[str, ...]
    """Where it goes (the filesystem updates it on renames)."""
    object_id: str | None
    """The remote identity it becomes a new version of (``None``: a new file)."""
    base_version: str | None
    base_size: int
    size: int
    mtime: float
    state: str
    dirty_since: float
    """Wall-clock time of the last change (for upload delays)."""
    attempts: int
    last_error: str | None
    meta: dict[str, str]
    """Free-form small metadata of the filesystem's (mode, conflict name…)."""
    from_base: int = 0
    """Bytes of the content still read from the base (0: ``fetch_base`` is never called)."""
    generation: int = 0
    """Bumped by every change of content: equal generations, equal content."""


@dataclass(eq=False)
class Record:
    """A staged file in memory; the module docstring says what guards what."""

    id: int
    path: tuple[str, ...]
    object_id: str | None
    base_version: str | None
    base_size: int
    state: str
    attempts: int
    last_error: str | None
    meta: dict[str, str]
    mtime: float
    dirty_since: float
    layout: Layout
    committed: bool
    """Whether any commit happened (a record never committed dies with the process)."""
    dir_synced: bool
    """Whether the data file's name is known to be durable."""
    committed_present: BlockMap
    """The present blocks of the last commit: overwriting one needs ``rewriting`` first."""
    rewriting: bool = False
    generation: int = 0
    discarded: bool = False
    lock: trio.Lock = field(default_factory=trio.Lock)
    watches: weakref.WeakSet[ChangeWatch] = field(default_factory=weakref.WeakSet)
    """Told of every change of content (alive while their holder keeps them)."""

    def changed_at(self, offset: int) -> None:
        """Bump ``generation`` for a change of content at ``offset`` and up; tell the watches."""
        self.generation += 1
        if self.watches:  # on every write: iterating even an empty WeakSet costs a guard
            for watch in self.watches:
                watch.changed_at(offset)

    def snapshot(self) -> StagedFile:
        return StagedFile(self.id, self.path, self.object_id, self.base_version,
                          self.base_size, self.layout.size, self.mtime, self.state,
                          self.dirty_since, self.attempts, self.last_error, dict(self.meta),
                          self.layout.missing_bytes(), self.generation)


def record_from_row(item: Recovered) -> Record:
    """The in-memory record of a row kept by recovery.

    A row committed inline is recovered as an inline commit leaves a record
    at runtime: the journal row holds the committed content and recovery
    rebuilds the data file from it at every open, so no block of the data
    file is precious (``committed_present`` is empty: overwriting one needs
    no ``rewriting`` flag) and the file's name was never made durable
    (``dir_synced`` is False: the first commit through the data file fsyncs
    its directory too).
    """
    row = item.row
    inline = row.inline is not None
    bs = row.block_size
    layout = Layout(bs, row.size, row.base_limit, present=BlockMap.from_bytes(row.blocks),
                    file_len=item.file_len,
                    committed_len=required_length(bs, row.size, row.blocks))
    for start, end in item.extents:
        for index in range(start // bs, (end - 1) // bs + 1):
            if index not in layout.present:
                # Bytes written after the last commit, or kept past a shrink:
                # never read, but they occupy the disk.
                layout.stale.add(index)
    return Record(row.id, row.path, row.object_id, row.base_version, row.base_size,
                  row.state, row.attempts, row.last_error, dict(row.meta), row.mtime,
                  row.dirty_since, layout, committed=True, dir_synced=not inline,
                  committed_present=BlockMap() if inline else BlockMap.from_bytes(row.blocks))
