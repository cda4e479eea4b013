"""The data files of the staging area: one sparse file per staged file, ``data/<id>``.

The problem: the bytes of a file being written must reach the disk in the
cheapest way that can still be made durable on demand, must fail cleanly when
the disk is full, and must never be read past what was written.

Choices and subtleties:

* Each staged file is one regular file whose bytes sit at their own offsets,
  so a block is written with one ``pwrite`` and read with one ``pread``, and
  the blocks nobody wrote stay holes (a one-block edit of a large file costs
  one block of disk). Writes are left to the page cache; durability comes
  from ``sync_file`` (``fsync``) at commit, plus ``sync_dir`` once after the
  file was created, since a file's name is only durable once its directory
  was synced.
* ``write_at`` is the single low-level write (tests replace it to inject
  ``ENOSPC``). A write that fails part-way cuts the file back to the length
  it had before, so a failed append leaves no tail; the bytes it did write
  inside the old length are the caller's to account for.
* A read that finds the file missing or shorter than the layout promises
  raises ``OSError(EIO)``: zeros would silently fabricate content.
* Files are opened per call rather than kept open: a staging area may hold
  thousands of pending files, and an open-per-call costs microseconds next
  to the thread hop that carries it.
* ``data_extents`` (``SEEK_DATA``/``SEEK_HOLE``) tells recovery which parts
  of a file hold bytes, so disk accounting after a restart counts what is
  allocated rather than the file's apparent length.

Everything here blocks: callers run it in worker threads.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence
from pathlib import Path

DATA_DIR = "data"


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
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            for offset, data in pieces:
                _write_all(fd, data, offset)
        except BaseException:
            try:
                if os.fstat(fd).st_size > length_before:
                    os.ftruncate(fd, length_before)
            except OSError:
                pass  # the original error matters more; the next start trims the tail
            raise
    finally:
        os.close(fd)


def read_ranges(path: Path, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
    """The bytes of each ``[start, end)``; ``OSError(EIO)`` if any is not all there."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise OSError(errno.EIO, f"staged data file {path} is missing") from None
    try:
        result: list[bytes] = []
        for start, end in ranges:
            parts: list[bytes] = []
            position = start
            while position < end:
                chunk = os.pread(fd, end - position, position)
                if not chunk:
                    raise OSError(errno.EIO, f"staged data file {path} ends at {position}, "
                                  f"expected bytes up to {end}")
                parts.append(chunk)
                position += len(chunk)
            result.append(b"".join(parts))
        return result
    finally:
        os.close(fd)


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
