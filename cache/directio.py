"""Writing around the page cache: ``O_DIRECT`` from a page-aligned copy.

Why.  What the mount writes to its own disk is seldom read back soon: a
cache block only after the memory tier lost it, a staged file once, by its
upload.  A buffered write of such data still costs a fresh page-cache page
per 4 KiB (allocated, filled, written back, reclaimed), and on the VMs the
benchmarks run on that was 2.7–4 s of CPU per GB, more than anything else
in a large copy or a cold read (docs/PERFORMANCE.md).  A direct write from
a reused aligned buffer costs one memory copy and the device's transfer.

Rules this module keeps for its callers (the disk tier's block files,
``blockfile``, and the staging area's data files, ``stagingdata``):

* Only whole pages at page-aligned file offsets go direct
  (:func:`whole_pages`); the caller writes an unaligned head or tail
  buffered.  The kernel keeps the two kinds coherent: a direct write first
  writes back and drops cached pages of its range.
* Below :data:`DIRECT_MIN` a direct write is a synchronous device write of
  little data and costs more than the copy it saves, so callers write small
  pieces buffered.
* A directory whose filesystem refuses ``O_DIRECT`` (``EINVAL``: tmpfs
  before Linux 6.6, some FUSE and network filesystems) is remembered and
  written buffered from then on, without asking again per write.
* The aligned buffer belongs to the calling thread (callers run in worker
  threads, several at once), and is grown on demand and kept.

Everything here blocks: callers run it in worker threads.
"""

from __future__ import annotations

import errno
import logging
import mmap
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["DIRECT_MIN", "PAGE", "aligned_buffer", "aligned_copy", "forget_refusal", "open_direct", "refused",
           "refuses", "remember_refusal", "whole_pages"]

log = logging.getLogger(__name__)

#: The alignment of direct writes (file offsets, lengths and memory).
PAGE = 4096
#: Pieces with fewer whole pages than this are written buffered.
DIRECT_MIN = 64 << 10


class _AlignedBuffer(threading.local):
    """A page-aligned buffer per thread (an anonymous mmap), grown on demand."""

    buffer: mmap.mmap | None = None

    def at_least(self, size: int) -> mmap.mmap:
        if self.buffer is None or len(self.buffer) < size:
            # The old buffer is dropped, not closed: a view of it may outlive
            # its use (one in the traceback of a failed write, say), and
            # closing an mmap with views raises BufferError.  It is freed
            # with its last view.
            self.buffer = mmap.mmap(-1, max(size, PAGE))
        return self.buffer


_aligned = _AlignedBuffer()

#: Directories whose filesystem refused ``O_DIRECT``: written buffered.
_refusing: set[Path] = set()


def refuses(directory: Path) -> bool:
    """Whether ``directory``'s filesystem is known to refuse ``O_DIRECT``."""
    return directory in _refusing


def remember_refusal(directory: Path) -> None:
    if directory not in _refusing:
        log.info("%s refuses O_DIRECT; writing and reading there through the page cache", directory)
    _refusing.add(directory)


def forget_refusal(directory: Path) -> None:
    """Ask ``directory``'s filesystem again next time (tests)."""
    _refusing.discard(directory)


def refused(exc: OSError, directory: Path) -> bool:
    """Whether ``exc``, raised by a direct transfer in ``directory``, is its
    filesystem refusing ``O_DIRECT`` after all (``EINVAL``); remembered if so."""
    if exc.errno != errno.EINVAL:
        return False
    remember_refusal(directory)
    return True


def open_direct(path: Path, flags: int, mode: int, directory: Path) -> int | None:
    """``path`` opened with ``flags | O_DIRECT``; None if ``directory``'s filesystem refuses it.

    A refusal is remembered.  With ``O_CREAT`` it may come after the file
    was created, so the caller's buffered open must not insist on ``O_EXCL``
    without removing it first.
    """
    if directory in _refusing:
        return None
    try:
        return os.open(path, flags | os.O_DIRECT, mode)
    except OSError as exc:
        if not refused(exc, directory):
            raise
        return None


def whole_pages(offset: int, length: int) -> tuple[int, int]:
    """``(start, end)``: the page-aligned span inside ``[offset, offset + length)``
    (empty, ``start == end``, when the range holds no whole page)."""
    start = offset + -offset % PAGE
    end = (offset + length) // PAGE * PAGE
    return (start, end) if end > start else (start, start)


@contextmanager
def aligned_buffer(length: int) -> Iterator[memoryview]:
    """``length`` bytes of this thread's aligned buffer (to read into), valid
    inside the ``with`` only."""
    with memoryview(_aligned.at_least(length)) as whole, whole[:length] as view:
        yield view


@contextmanager
def aligned_copy(*parts: bytes | memoryview) -> Iterator[memoryview]:
    """``parts`` one after another in this thread's aligned buffer, as one view.

    The view is valid inside the ``with`` only.  Its length is the parts'
    total; for a direct write that total must be a multiple of :data:`PAGE`.
    """
    with aligned_buffer(sum(len(part) for part in parts)) as view:
        position = 0
        for part in parts:
            view[position:position + len(part)] = part
            position += len(part)
        yield view
