"""One block file: the format round-trips with and without O_DIRECT, and a refusal is remembered."""

from __future__ import annotations

import errno
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from cache import blockfile, directio
from cache.keys import BlockKey

from .fakes import refuse_direct_opens

SIZES = [1, 100, blockfile.PAGE - 1, blockfile.PAGE, blockfile.PAGE + 1, 3 * blockfile.PAGE, 1 << 20,
         (1 << 20) - 123]


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / blockfile.BLOCKS_DIR).mkdir()
    (tmp_path / blockfile.TMP_DIR).mkdir()
    yield tmp_path
    directio.forget_refusal(tmp_path)


def name(index: int) -> str:
    return blockfile.block_name(BlockKey("ctera:1", "v1", index))


def check_round_trip(root: Path) -> None:
    for index, size in enumerate(SIZES):
        payload = os.urandom(size)
        assert blockfile.write_block_file(root, name(index), payload) == blockfile.file_size(size)
        path = blockfile.block_path(root, name(index))
        assert path.stat().st_size == blockfile.HEADER_SIZE + size
        assert blockfile.read_block_file(root, name(index), size) == payload
    assert list((root / blockfile.TMP_DIR).iterdir()) == []


def test_blocks_of_every_shape_round_trip(root: Path) -> None:
    check_round_trip(root)
    # The fan-out folder made on the first rename into it is reused.
    payload = b"x" * 10
    blockfile.write_block_file(root, name(0), payload)
    assert blockfile.read_block_file(root, name(0), 10) == payload


def test_a_filesystem_refusing_o_direct_at_open_is_asked_once(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    direct_opens = refuse_direct_opens(monkeypatch, after_creating=True)
    check_round_trip(root)
    assert len(direct_opens) == 1


def test_a_filesystem_refusing_the_direct_write_gets_a_buffered_one(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write_all = blockfile._write_all
    refused: list[int] = []

    def refuse_direct(fd: int, data: bytes | memoryview) -> None:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            refused.append(fd)
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        real_write_all(fd, data)

    monkeypatch.setattr(blockfile, "_write_all", refuse_direct)
    check_round_trip(root)
    assert len(refused) == 1
