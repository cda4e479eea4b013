"""Staged data files: large writes go around the page cache in whole pages, their
unaligned edges and small writes buffered, and every byte lands where it belongs."""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cache import directio, stagingdata

from .fakes import refuse_direct_opens

PAGE = directio.PAGE
BIG = directio.DIRECT_MIN

#: (offset, length): aligned and not, below and above DIRECT_MIN, crossing page edges.
WRITES = [(0, BIG), (BIG, 1), (3 * PAGE + 5, BIG + 2 * PAGE), (7, 100), (1 << 20, (1 << 20) - 123),
          (5 * PAGE - 1, BIG + 2), (0, PAGE), (PAGE * 1000 + 17, BIG - 17 + PAGE)]


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / stagingdata.DATA_DIR).mkdir()
    yield tmp_path / stagingdata.DATA_DIR
    directio.forget_refusal(tmp_path / stagingdata.DATA_DIR)


def apply_all(path: Path) -> bytearray:
    """Write WRITES one call at a time; the bytes the file must hold afterwards."""
    expected = bytearray()
    for number, (offset, length) in enumerate(WRITES):
        data = bytes([number + 1]) * length
        stagingdata.write_pieces(path, [(offset, data)], len(expected))
        if len(expected) < offset + length:
            expected.extend(bytes(offset + length - len(expected)))
        expected[offset:offset + length] = data
    return expected


def check(path: Path, expected: bytearray) -> None:
    assert path.stat().st_size == len(expected)
    assert stagingdata.read_ranges(path, [(0, len(expected))]) == [bytes(expected)]


def spy_on_writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, int, int]]:
    """Every low-level write as (direct?, offset, length)."""
    seen: list[tuple[bool, int, int]] = []
    real = stagingdata.write_at

    def spy(fd: int, data: bytes | memoryview, offset: int) -> int:
        seen.append((bool(fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT), offset, len(data)))
        return real(fd, data, offset)

    monkeypatch.setattr(stagingdata, "write_at", spy)
    return seen


def fail_direct(monkeypatch: pytest.MonkeyPatch, owner: object, call: str, error: int) -> list[int]:
    """Make ``owner.call(fd, data, offset)`` fail with ``error`` on ``O_DIRECT``
    descriptors (others go through); the offsets it refused."""
    real = getattr(owner, call)
    refused: list[int] = []

    def failing(fd: int, data: object, offset: int) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(offset)
            raise OSError(error, os.strerror(error))
        return real(fd, data, offset)

    monkeypatch.setattr(owner, call, failing)
    return refused


def test_writes_of_every_shape_land_in_place(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen = spy_on_writes(monkeypatch)
    path = stagingdata.data_path(data_dir.parent, 1)
    check(path, apply_all(path))
    direct = [(offset, length) for is_direct, offset, length in seen if is_direct]
    # Only whole pages at page offsets, and only spans of DIRECT_MIN or more.
    assert direct and all(offset % PAGE == 0 and length % PAGE == 0 and length >= BIG
                          for offset, length in direct)
    # The edges around them were written too, buffered.
    assert (False, 3 * PAGE + 5, PAGE - 5) in seen
    assert (False, (2 << 20) - PAGE, PAGE - 123) in seen
    # Small writes never go direct.
    assert (False, 7, 100) in seen and (False, BIG, 1) in seen


def test_a_filesystem_refusing_o_direct_at_open_is_asked_once(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    direct_opens = refuse_direct_opens(monkeypatch)
    path = stagingdata.data_path(data_dir.parent, 2)
    check(path, apply_all(path))
    assert len(direct_opens) == 1


def test_a_refused_direct_write_is_written_buffered(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    refused = fail_direct(monkeypatch, stagingdata, "write_at", errno.EINVAL)
    path = stagingdata.data_path(data_dir.parent, 3)
    check(path, apply_all(path))
    assert refused == [0]  # the first direct write; none asked after it
    assert directio.refuses(data_dir)


def test_a_direct_write_failing_cuts_the_file_back(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = stagingdata.data_path(data_dir.parent, 4)
    stagingdata.write_pieces(path, [(0, b"kept" * 100)], 0)
    fail_direct(monkeypatch, stagingdata, "write_at", errno.ENOSPC)
    with pytest.raises(OSError) as excinfo:
        stagingdata.write_pieces(path, [(400, b"h" * 10), (400 + PAGE * 20, b"x" * 2 * BIG)], 400)
    assert excinfo.value.errno == errno.ENOSPC
    # What the failed call wrote past the old length is cut off again.
    assert stagingdata.read_ranges(path, [(0, 400)]) == [b"kept" * 100]
    assert path.stat().st_size == 400


def test_reads_of_every_shape_return_the_bytes_written(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = stagingdata.data_path(data_dir.parent, 5)
    expected = apply_all(path)
    real = os.preadv
    direct_reads: list[tuple[int, int]] = []

    def spy(fd: int, buffers: list[memoryview], offset: int) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            direct_reads.append((offset, len(buffers[0])))
        return real(fd, buffers, offset)

    monkeypatch.setattr(os, "preadv", spy)
    ranges = [(0, len(expected)), (1, 2), (PAGE - 1, PAGE + 1), (5, 5 + BIG + PAGE), (3 * PAGE, 3 * PAGE + BIG),
              (len(expected) - BIG - 1, len(expected))]
    assert stagingdata.read_ranges(path, ranges) == [bytes(expected[start:end]) for start, end in ranges]
    assert direct_reads and all(offset % PAGE == 0 and length % PAGE == 0 and length >= BIG
                                for offset, length in direct_reads)
    assert (3 * PAGE, BIG) in direct_reads
    with pytest.raises(OSError) as excinfo:  # never zeros for bytes that are not there
        stagingdata.read_ranges(path, [(len(expected) - PAGE, len(expected) + BIG)])
    assert excinfo.value.errno == errno.EIO
    with pytest.raises(OSError) as excinfo:
        stagingdata.read_ranges(stagingdata.data_path(data_dir.parent, 99), [(0, BIG)])
    assert excinfo.value.errno == errno.EIO


def test_a_refused_direct_read_is_read_buffered(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = stagingdata.data_path(data_dir.parent, 6)
    expected = apply_all(path)
    refused = fail_direct(monkeypatch, os, "preadv", errno.EINVAL)
    assert stagingdata.read_ranges(path, [(0, len(expected)), (PAGE, PAGE + BIG)]) == \
        [bytes(expected), bytes(expected[PAGE:PAGE + BIG])]
    assert refused == [0]


def test_a_failed_direct_write_does_not_break_the_next_larger_one(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The failure's traceback keeps a view of the thread's aligned buffer alive;
    growing the buffer for the next write must not trip over it."""
    path = stagingdata.data_path(data_dir.parent, 7)
    with monkeypatch.context() as patched:
        fail_direct(patched, stagingdata, "write_at", errno.ENOSPC)
        with pytest.raises(OSError) as excinfo:
            stagingdata.write_pieces(path, [(0, b"a" * BIG)], 0)
    assert excinfo.value.errno == errno.ENOSPC  # still alive, with its traceback
    bigger = os.urandom(8 << 20)
    stagingdata.write_pieces(path, [(0, bigger)], 0)
    assert stagingdata.read_ranges(path, [(0, len(bigger))]) == [bigger]
