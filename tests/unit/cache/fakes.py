"""A fake block source: an in-memory object behind a ``Fetch``, observable and faulty on demand."""

from __future__ import annotations

import errno
import os
import random

import pytest
import trio

from cache import ObjectKey


def make_bytes(size: int, seed: int = 0) -> bytes:
    """Deterministic pseudo-random content (no two blocks alike)."""
    return random.Random(seed).randbytes(size)


class FakeSource:
    """One object version served by ``fetch(offset, length)``.

    Records every call's range, tracks how many calls are in the air at once,
    and can be told to wait (``gate``), to sleep (``delay``, for a MockClock),
    to fail the next calls (``failures``) or the next call at an offset
    (``fail_at``), to return more than asked
    (``extra``: a server that ignored a Range) or to end early (``truncate_at``).
    """

    def __init__(self, data: bytes, *, object_id: str = "ctera:1", version: str = "v1",
                 delay: float = 0.0) -> None:
        self.data = data
        self.key = ObjectKey(object_id, version, len(data))
        self.delay = delay
        self.calls: list[tuple[int, int]] = []
        self.failures: list[BaseException] = []
        self.fail_at: dict[int, BaseException] = {}
        self.gate: trio.Event | None = None
        self.extra = 0
        self.truncate_at: int | None = None
        self.in_flight = 0
        self.max_in_flight = 0
        self.started = trio.Event()

    async def fetch(self, offset: int, length: int) -> bytes:
        assert offset >= 0 and length > 0, (offset, length)
        assert offset < len(self.data), "the cache never asks for bytes past the end"
        self.calls.append((offset, length))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.started.set()
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.delay:
                await trio.sleep(self.delay)
            else:
                await trio.lowlevel.checkpoint()  # a real fetch always yields
            if self.failures:
                raise self.failures.pop(0)
            if offset in self.fail_at:
                raise self.fail_at.pop(offset)
            data = self.data if self.truncate_at is None else self.data[:self.truncate_at]
            return data[offset:offset + length + self.extra]
        finally:
            self.in_flight -= 1

    @property
    def fetched_bytes(self) -> int:
        return sum(length for _, length in self.calls)

    def fetch_count_of(self, offset: int, block_size: int) -> int:
        """How many calls covered the block containing ``offset``."""
        start = offset // block_size * block_size
        return sum(1 for o, n in self.calls if o <= start < o + n)


def small_files(count: int, size: int, first: int = 0) -> list[FakeSource]:
    """One-block objects of ``size`` bytes, like the small files of a folder."""
    return [FakeSource(make_bytes(size, seed=n), object_id=f"ctera:{n}") for n in range(first, first + count)]


def refuse_direct_opens(monkeypatch: pytest.MonkeyPatch, *, after_creating: bool = False) -> list[str]:
    """``os.open`` refuses ``O_DIRECT`` with ``EINVAL`` (``after_creating`` the file,
    as some filesystems do); the paths it refused."""
    real_open = os.open
    refused: list[str] = []

    def no_direct(path: str, flags: int, mode: int = 0o777) -> int:
        if flags & os.O_DIRECT:
            refused.append(path)
            if after_creating:
                os.close(real_open(path, flags & ~os.O_DIRECT, mode))
            raise OSError(errno.EINVAL, os.strerror(errno.EINVAL))
        return real_open(path, flags, mode)

    monkeypatch.setattr(os, "open", no_direct)
    return refused


class SourceError(Exception):
    """What a fake backend raises."""
