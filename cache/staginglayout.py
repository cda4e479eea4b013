"""Where each byte of one staged file comes from, and what a change must write.

The problem: a file being written is staged as a *sparse* local copy of its
remote base version. Copying the whole base before the first write would make
a one-byte edit of a 10 GiB file download 10 GiB; so the content is a
patchwork, decided block by block:

* a *present* block (``present``) is in the data file, at its own offset;
* any other block reads its bytes below ``base_limit`` from the base version
  and zeros above it.

``base_limit`` starts at the base's size (0 for a new or truncated file) and
only ever shrinks: once the file was truncated below some offset, bytes there
are no longer the base's, even if the file grows again (they are zeros). So
after ``truncate(0)`` the base is never consulted again, and blocks past the
base's end are zeros without any fetch.

This module is pure arithmetic over that state (no I/O, no awaits): it plans
reads (``plan_read``), writes (``plan_write``) and truncations
(``plan_truncate``) and applies their outcome once the I/O succeeded, so a
failed write changes nothing here.

Subtleties:

* A block becomes present only by being written *whole*: a write covering
  part of a non-present block also writes the rest of the block's extent
  (up to the file size) — the base's bytes it did not overwrite (fetched
  first: only the span it does not cover) and zeros past ``base_limit``. A
  block the write covers whole needs no fetch.
* The data file may hold stale bytes where content says otherwise: past the
  size after a shrink (we keep the committed snapshot's length until the
  next commit, see ``committed_len``), or inside a block that left the
  present set. Reads never look there: non-present blocks never come from
  the file, and when the size grows from inside a present block, the bytes
  of that block between the old size and the new data are zeroed first
  (``zero_gap``, ``TruncatePlan.zero``).
* ``stale`` counts blocks that hold such bytes (so ``charge`` — this file's
  share of the disk budget — tells the truth); they stop counting when
  written again or when the file is cut below them.
* ``committed_len`` is the length the last commit's present blocks need; the
  file is never cut below it before the next commit, so a crash at any point
  still finds the committed blocks whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from .blockmap import BlockMap


class Source(Enum):
    FILE = "file"
    BASE = "base"
    ZERO = "zero"


@dataclass(frozen=True, slots=True)
class Segment:
    """Bytes ``[start, end)`` of the content and where to read them."""

    source: Source
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class WritePlan:
    """What ``write(offset, data)`` must fetch and write; see ``Layout.plan_write``."""

    offset: int
    end: int
    new_size: int
    first: int
    last: int
    fetches: tuple[tuple[int, int], ...]
    """Base spans ``[start, end)`` to fetch first (at most one per edge block)."""
    fills: tuple[tuple[int, int], ...]
    """Ranges around the data to write from the fetched base bytes and zeros."""
    file_end: int
    """The data file's length after the write."""

    @property
    def ranges(self) -> list[tuple[int, int]]:
        """Every range of the data file the write changes."""
        return [(self.offset, self.end), *self.fills]

    def pieces(self, data: bytes | memoryview, fetched: list[bytes]
               ) -> list[tuple[int, bytes | memoryview]]:
        """``(offset, bytes)`` to write, given the fetched spans (in ``fetches`` order)."""
        pieces: list[tuple[int, bytes | memoryview]] = []
        for start, end in self.fills:
            buffer = bytearray(end - start)  # zeros unless a base span covers it
            for (span_start, span_end), payload in zip(self.fetches, fetched):
                lo, hi = max(start, span_start), min(end, span_end)
                if lo < hi:
                    buffer[lo - start:hi - start] = payload[lo - span_start:hi - span_start]
            pieces.append((start, bytes(buffer)))
        pieces.append((self.offset, data))
        pieces.sort(key=lambda piece: piece[0])
        return pieces


@dataclass(frozen=True, slots=True)
class TruncatePlan:
    new_size: int
    zero: tuple[int, int] | None
    """Stale bytes of a present block to zero before growing over them."""
    cut_to: int | None
    """Shorten the data file to this length (after a shrink)."""


@dataclass(slots=True)
class Layout:
    """The content map of one staged file (see the module docstring)."""

    block_size: int
    size: int
    base_limit: int
    present: BlockMap = field(default_factory=BlockMap)
    stale: BlockMap = field(default_factory=BlockMap)
    file_len: int = 0
    committed_len: int = 0

    def _blocks(self, length: int) -> int:
        return -(-length // self.block_size)

    # -- reads ----------------------------------------------------------------

    def plan_read(self, offset: int, length: int) -> list[Segment]:
        """Where the bytes ``[offset, offset + length)`` (clipped to the size) come from."""
        end = min(offset + length, self.size)
        if offset >= end:
            return []
        bs = self.block_size
        segments: list[Segment] = []
        for first, stop, present in self.present.runs(offset // bs, (end - 1) // bs + 1):
            lo, hi = max(offset, first * bs), min(end, stop * bs)
            if present:
                parts = [(Source.FILE, lo, hi)]
            else:
                split = min(max(lo, self.base_limit), hi)
                parts = [(Source.BASE, lo, split), (Source.ZERO, split, hi)]
            for source, start, stop_ in parts:
                if start >= stop_:
                    continue
                if segments and segments[-1].source is source and segments[-1].end == start:
                    segments[-1] = Segment(source, segments[-1].start, stop_)
                else:
                    segments.append(Segment(source, start, stop_))
        return segments

    # -- writes ---------------------------------------------------------------

    def plan_write(self, offset: int, length: int) -> WritePlan:
        """Plan writing ``length > 0`` bytes at ``offset``."""
        bs = self.block_size
        end = offset + length
        new_size = max(self.size, end)
        first, last = offset // bs, (end - 1) // bs
        fetches: list[tuple[int, int]] = []
        fills: list[tuple[int, int]] = []
        for index in sorted({first, last}):
            if index in self.present:
                continue
            block_start = index * bs
            extent_end = min(block_start + bs, new_size)
            head = (block_start, offset) if index == first and offset > block_start else None
            tail = (end, extent_end) if index == last and end < extent_end else None
            if head is None and tail is None:
                continue  # overwritten whole: nothing to keep, nothing to fetch
            fills.extend(part for part in (head, tail) if part is not None)
            # One span of the base from the first byte to keep to the last:
            # a write inside one block fetches its two ends in one request.
            span_start = (head or tail)[0]  # type: ignore[index]
            span_end = min((tail or head)[1], block_start + bs, self.base_limit)  # type: ignore[index]
            if span_start < span_end:
                fetches.append((span_start, span_end))
        # Growing from inside a present block: its bytes past the old size may
        # be stale (left by a shrink); the gap up to the new data reads as zeros.
        old_last = self.size // bs
        if offset > self.size and self.size % bs and old_last in self.present:
            fills.append((self.size, min(offset, (old_last + 1) * bs)))
        file_end = max([self.file_len, end, *(stop for _, stop in fills)])
        return WritePlan(offset, end, new_size, first, last, tuple(fetches), tuple(fills),
                         file_end)

    def charge_after_write(self, plan: WritePlan) -> int:
        """What ``charge`` would be once ``plan`` is applied."""
        span = plan.last + 1 - plan.first
        added = (span - self.present.count_range(plan.first, plan.last + 1)
                 - self.stale.count_range(plan.first, plan.last + 1))
        last_block = (plan.file_end - 1) // self.block_size
        last_allocated = plan.first <= last_block <= plan.last or self._allocated(last_block)
        return self._charge(self.present.count + self.stale.count + added, plan.file_end,
                            last_allocated)

    def overwrites(self, ranges: list[tuple[int, int]], committed: BlockMap) -> bool:
        """Whether writing ``ranges`` would change bytes of the last commit, given
        its present blocks (the bytes past ``committed_len`` are not part of it)."""
        bs = self.block_size
        for start, end in ranges:
            end = min(end, self.committed_len)
            if start < end and committed.count_range(start // bs, (end - 1) // bs + 1):
                return True
        return False

    def apply_write(self, plan: WritePlan) -> None:
        self.present.set_range(plan.first, plan.last + 1)
        self.stale.set_range(plan.first, plan.last + 1, False)
        self.size = plan.new_size
        self.file_len = plan.file_end

    def apply_failed_write(self, plan: WritePlan) -> None:
        """After a failed write (the file cut back to ``file_len``): blocks it may
        have scribbled on count as stale."""
        reachable = self._blocks(self.file_len)
        for index in range(plan.first, min(plan.last + 1, reachable)):
            if index not in self.present:
                self.stale.add(index)

    # -- truncation -----------------------------------------------------------

    def plan_truncate(self, new_size: int) -> TruncatePlan:
        bs = self.block_size
        if new_size < self.size:
            # Keep what the committed snapshot needs until the next commit.
            keep = max(new_size, self.committed_len)
            return TruncatePlan(new_size, None, keep if self.file_len > keep else None)
        old_last = self.size // bs
        if new_size > self.size and self.size % bs and old_last in self.present:
            return TruncatePlan(new_size, (self.size, min(new_size, (old_last + 1) * bs)), None)
        return TruncatePlan(new_size, None, None)

    def charge_after_truncate(self, plan: TruncatePlan) -> int:
        if plan.zero is None:
            return self.charge()  # a shrink frees space (or nothing)
        file_end = max(self.file_len, plan.zero[1])
        return self._charge(self.present.count + self.stale.count, file_end,
                            self._allocated((file_end - 1) // self.block_size))

    def apply_truncate(self, plan: TruncatePlan) -> None:
        if plan.new_size < self.size:
            if plan.cut_to is not None:
                self.cut(plan.cut_to)
            keep_blocks = self._blocks(plan.new_size)
            file_blocks = self._blocks(self.file_len)
            top = self.present.last()
            if top is not None:
                for index in range(keep_blocks, min(top + 1, file_blocks)):
                    if index in self.present:
                        self.stale.add(index)
            self.present.truncate(keep_blocks)
            self.base_limit = min(self.base_limit, plan.new_size)
        elif plan.zero is not None:
            self.file_len = max(self.file_len, plan.zero[1])
        self.size = plan.new_size

    def cut(self, length: int) -> None:
        """The data file was shortened to ``length``."""
        self.file_len = length
        self.stale.truncate(self._blocks(length))

    # -- commit and accounting ---------------------------------------------------

    def required_len(self) -> int:
        """The data file length the present blocks need."""
        top = self.present.last()
        return 0 if top is None else min((top + 1) * self.block_size, self.size)

    def missing_bytes(self) -> int:
        """Bytes of the content that still come from the base version."""
        bs = self.block_size
        base_blocks = self._blocks(self.base_limit)
        missing = (base_blocks - self.present.count_range(0, base_blocks)) * bs
        if base_blocks and (base_blocks - 1) not in self.present:
            missing -= base_blocks * bs - self.base_limit  # the base's last block is short
        return missing

    def charge(self) -> int:
        """Bytes of the data file this layout accounts for."""
        return self._charge(self.present.count + self.stale.count, self.file_len,
                            self._allocated((self.file_len - 1) // self.block_size))

    def _allocated(self, index: int) -> bool:
        return index >= 0 and (index in self.present or index in self.stale)

    def _charge(self, blocks: int, file_len: int, last_allocated: bool) -> int:
        # Every allocated block counts whole, except the file's last block,
        # which holds only up to the end of the file.
        charge = blocks * self.block_size
        if last_allocated and file_len % self.block_size:
            charge -= self.block_size - file_len % self.block_size
        return charge
