"""The data files of the staging area: one sparse file per staged file, ``data/<id>``.

The problem: the bytes of a file being written must reach the disk in the
cheapest way that can still be made durable on demand, must fail cleanly when
the disk is full, and must never be read past what was written.

Choices and subtleties:

* Each staged file is one regular file whose bytes sit at their own offsets,
  so a block is written and read in place (a ``pwrite``/``pread`` each for
  its unaligned edges and its whole pages), and the blocks nobody wrote stay
  holes (a one-block edit of a large file costs
  one block of disk). Durability comes from ``sync_file`` (``fsync``) at
  commit, plus ``sync_dir`` once after the file was created, since a file's
  name is only durable once its directory was synced.
* The whole pages of a large write or read go around the page cache
  (``O_DIRECT``, the rules in ``directio``); unaligned edges and small
  pieces are buffered.  Staged bytes are read back about once, by the
  upload, so caching them bought nothing, while a buffered copy of a large
  file cost more CPU than everything else in writing it
  (docs/PERFORMANCE.md), and made ``fsync`` at close write it all out then.
* ``write_at`` is the single low-level write (tests replace it to inject
  ``ENOSPC``). A write that fails part-way cuts the file back to the length
  it had before, so a failed append leaves no tail; the bytes it did write
  inside the old length are the caller's to account for.
* A read that finds the file missing or shorter than the layout promises
  raises ``OSError(EIO)``: zeros would silently fabricate content.
* Files are opened per call (once buffered, once direct if needed) rather
  than kept open: a staging area may hold thousands of pending files, and an
  open-per-call costs microseconds next to the thread hop that carries it.
* ``data_extents`` (``SEEK_DATA``/``SEEK_HOLE``) tells recovery which parts
  of a file hold bytes, so disk accounting after a restart counts what is
  allocated rather than the file's apparent length.

Everything here blocks: callers run it in worker threads.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from . import directio

DATA_DIR = "data"

T = TypeVar("T")


def data_path(root: Path, record_id: int) -> Path:
    return root / DATA_DIR / str(record_id)


def write_at(fd: int, data: bytes | memoryview, offset: int) -> int:
    """One positional write; returns how much was written (may be short)."""
    return os.pwrite(fd, data, offset)


def _write_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    view = memoryview(data)
    while view:
        written = write_at(fd, view, offset)
        if written <= 0:  # a regular file never does this; do not spin if it does
            raise OSError(errno.EIO, "short write to staged data")
        view = view[written:]
        offset += written


def write_pieces(path: Path, pieces: Sequence[tuple[int, bytes | memoryview]],
                 length_before: int) -> None:
    """Write each ``(offset, bytes)``; on failure cut the file back to ``length_before``."""
    data_file = _DataFile(path, writing=True)
    try:
        try:
            for offset, data in pieces:
                data_file.write(offset, data)
        except BaseException:
            try:
                if os.fstat(data_file.fd()).st_size > length_before:
                    os.ftruncate(data_file.fd(), length_before)
            except OSError:
                pass  # the original error matters more; the next start trims the tail
            raise
    finally:
        data_file.close()


def read_ranges(path: Path, ranges: Sequence[tuple[int, int]]) -> list[bytearray]:
    """The bytes of each ``[start, end)``; ``OSError(EIO)`` if any is not all there."""
    data_file = _DataFile(path, writing=False)
    try:
        return [data_file.read(start, end) for start, end in ranges]
    finally:
        data_file.close()


class _DataFile:
    """One data file open for a batch of reads or writes: buffered, and also
    direct once a range holds enough whole pages (see the module docstring)."""

    def __init__(self, path: Path, *, writing: bool) -> None:
        self._path = path
        self._writing = writing
        self._flags = (os.O_RDWR | os.O_CREAT if writing else os.O_RDONLY) | os.O_CLOEXEC
        self._buffered: int | None = None
        self._direct: int | None = None

    def fd(self) -> int:
        """The buffered descriptor, opened (for writing: the file created) on first use."""
        if self._buffered is None:
            self._buffered = self._open(lambda: os.open(self._path, self._flags, 0o600))
        return self._buffered

    def write(self, offset: int, data: bytes | memoryview) -> None:
        view = memoryview(data)
        for start, end, direct in self._spans(offset, len(view)):
            piece = view[start - offset:end - offset]
            if direct is not None:
                try:
                    with directio.aligned_copy(piece) as copy:
                        _write_all(direct, copy, start)
                    continue
                except OSError as exc:
                    if not self._refused(exc):
                        raise
            _write_all(self.fd(), piece, start)

    def read(self, start: int, end: int) -> bytearray:
        """The bytes of ``[start, end)``, in a buffer of their own (the caller's join is the one copy)."""
        into = bytearray(end - start)
        view = memoryview(into)
        for low, high, direct in self._spans(start, end - start):
            piece = view[low - start:high - start]
            if direct is not None:
                try:
                    with directio.aligned_buffer(high - low) as aligned:
                        self._read_into(direct, aligned, low)
                        piece[:] = aligned
                    continue
                except OSError as exc:
                    if not self._refused(exc):
                        raise
            self._read_into(self.fd(), piece, low)
        return into

    def _spans(self, offset: int, length: int) -> list[tuple[int, int, int | None]]:
        """``[start, end)`` pieces of the range with the direct descriptor for its
        whole pages (if they are worth it and allowed), None for the buffered edges."""
        first, last = directio.whole_pages(offset, length)
        direct = self._direct_fd() if last - first >= directio.DIRECT_MIN else None
        if direct is None:
            return [(offset, offset + length, None)]
        spans = [(offset, first, None), (first, last, direct), (last, offset + length, None)]
        return [span for span in spans if span[1] > span[0]]

    def _read_into(self, fd: int, view: memoryview, position: int) -> None:
        done = 0
        while done < len(view):
            count = os.preadv(fd, [view[done:]], position + done)
            if not count:
                raise OSError(errno.EIO, f"staged data file {self._path} ends at {position + done}, "
                              f"expected bytes up to {position + len(view)}")
            done += count

    def _refused(self, exc: OSError) -> bool:
        """Whether ``exc`` was the filesystem refusing a direct transfer (then
        buffered, here and from now on)."""
        if not directio.refused(exc, self._path.parent):
            return False
        if self._direct is not None:
            os.close(self._direct)
            self._direct = None
        return True

    def _direct_fd(self) -> int | None:
        if self._direct is None:
            self._direct = self._open(
                lambda: directio.open_direct(self._path, self._flags, 0o600, self._path.parent))
        return self._direct

    def _open(self, opener: Callable[[], T]) -> T:
        """``opener()``; for a read, a missing file is ``EIO`` (zeros would fabricate content)."""
        try:
            return opener()
        except FileNotFoundError:
            if self._writing:
                raise
            raise OSError(errno.EIO, f"staged data file {self._path} is missing") from None

    def close(self) -> None:
        for fd in (self._buffered, self._direct):
            if fd is not None:
                os.close(fd)
        self._buffered = self._direct = None


def cut_file(path: Path, length: int) -> None:
    """Shorten the file to ``length`` (a missing file is left missing)."""
    try:
        os.truncate(path, length)
    except FileNotFoundError:
        pass


def sync_file(path: Path) -> bool:
    """``fsync`` the file; returns whether it exists."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    return True


def sync_dir(path: Path) -> None:
    """Make the names in directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_file(path: Path) -> None:
    path.unlink(missing_ok=True)


def file_length(path: Path) -> int | None:
    """The file's length, or ``None`` if it does not exist."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return None


def data_extents(path: Path, length: int) -> list[tuple[int, int]]:
    """The ranges of the first ``length`` bytes that are allocated (not holes).

    On a filesystem without ``SEEK_DATA`` the whole length counts as data.
    """
    if length <= 0:
        return []
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return []
    try:
        extents: list[tuple[int, int]] = []
        position = 0
        while position < length:
            try:
                start = os.lseek(fd, position, os.SEEK_DATA)
            except OSError as exc:
                if exc.errno == errno.ENXIO:  # only holes from here on
                    break
                if exc.errno == errno.EINVAL:
                    return [(0, length)]
                raise
            if start >= length:
                break
            end = min(os.lseek(fd, start, os.SEEK_HOLE), length)
            extents.append((start, end))
            position = end
        return extents
    finally:
        os.close(fd)
