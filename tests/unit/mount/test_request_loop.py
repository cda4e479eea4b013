"""The wait before each FUSE request (mount/request_loop.py), on a real pipe under trio.

A pipe stands in for ``/dev/fuse``: readable when a request is waiting.  Its
read end is non-blocking here, so a wait that said "readable" wrongly makes
the test's read fail instead of hanging the event loop as ``/dev/fuse`` would.
pyfuse3's own wait, which the fast path falls back on, watches pyfuse3's
private descriptor; the tests give one that does the same for the pipe.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Awaitable, Callable, Iterator

import pyfuse3
import pytest
import trio
import trio.testing

from mount.request_loop import FAIR_SHARE, RequestWait, fuse_descriptors, install_request_wait, remove_request_wait


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    reader, writer = os.pipe()
    os.set_blocking(reader, False)
    try:
        yield reader, writer
    finally:
        os.close(reader)
        os.close(writer)


def readable_wait(fd: int) -> Callable[[], Awaitable[bool]]:
    """What pyfuse3's wait does, for ``fd``: one task at a time, False once the descriptor is closing."""
    lock = trio.Lock()

    async def wait() -> bool:
        try:
            async with lock:
                await trio.lowlevel.wait_readable(fd)
        except trio.ClosedResourceError:
            return False
        return True

    return wait


class Wakes:
    """A fallback wait that returns when the test says so, as if epoll had reported the descriptor."""

    def __init__(self) -> None:
        self.calls = 0
        self._wake = trio.Event()

    async def wait(self) -> bool:
        self.calls += 1
        await self._wake.wait()
        self._wake = trio.Event()
        return True

    def wake(self) -> None:
        self._wake.set()


async def test_a_waiting_request_is_read_without_a_checkpoint(pipe: tuple[int, int]) -> None:
    reader, writer = pipe
    waiting = RequestWait(reader, readable_wait(reader))
    os.write(writer, b"r")
    with trio.testing.assert_no_checkpoints():
        assert await waiting.wait()
    assert os.read(reader, 1) == b"r"
    assert waiting.immediate == 1


async def test_with_nothing_waiting_it_waits_for_the_next_request(pipe: tuple[int, int]) -> None:
    reader, writer = pipe
    waiting = RequestWait(reader, readable_wait(reader))
    answered = trio.Event()

    async def request_task() -> None:
        assert await waiting.wait()
        answered.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(request_task)
        await trio.testing.wait_all_tasks_blocked()
        assert not answered.is_set()
        os.write(writer, b"r")
        await answered.wait()
    assert waiting.immediate == 0


async def test_a_long_run_of_waiting_requests_still_lets_other_tasks_run(pipe: tuple[int, int]) -> None:
    reader, writer = pipe
    waiting = RequestWait(reader, readable_wait(reader))
    os.write(writer, b"r" * (FAIR_SHARE + 1))
    for _ in range(FAIR_SHARE):
        with trio.testing.assert_no_checkpoints():
            assert await waiting.wait()
        os.read(reader, 1)
    with trio.testing.assert_checkpoints():
        assert await waiting.wait()
    assert os.read(reader, 1) == b"r"


async def test_a_woken_task_whose_request_was_taken_waits_again(pipe: tuple[int, int]) -> None:
    """The wake-up was on its way when a task that did not wait read the request."""
    reader, writer = pipe
    wakes = Wakes()
    waiting = RequestWait(reader, wakes.wait)
    got: list[bytes] = []

    async def request_task() -> None:
        assert await waiting.wait()
        got.append(os.read(reader, 1))  # fails, not hangs, if nothing is there

    async with trio.open_nursery() as nursery:
        nursery.start_soon(request_task)
        await trio.testing.wait_all_tasks_blocked()
        os.write(writer, b"1")
        assert await waiting.wait()  # another task, arriving: reads it at once
        assert os.read(reader, 1) == b"1"
        wakes.wake()
        await trio.testing.wait_all_tasks_blocked()
        assert got == [] and wakes.calls == 2  # found nothing, waiting again
        os.write(writer, b"2")
        wakes.wake()
    assert got == [b"2"]


async def test_a_closing_descriptor_ends_the_wait(pipe: tuple[int, int]) -> None:
    reader, _ = pipe
    waiting = RequestWait(reader, readable_wait(reader))
    results: list[bool] = []

    async def request_task() -> None:
        results.append(await waiting.wait())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(request_task)
        await trio.testing.wait_all_tasks_blocked()
        trio.lowlevel.notify_closing(reader)
    assert results == [False]


@pytest.fixture
def fuse_device() -> Iterator[int]:
    try:
        device = os.open("/dev/fuse", os.O_RDWR)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.EACCES, errno.EPERM):
            pytest.skip(f"cannot open /dev/fuse: {exc}")
        raise
    try:
        yield device
    finally:
        os.close(device)


def test_the_fuse_device_is_found_among_the_open_descriptors(pipe: tuple[int, int], fuse_device: int) -> None:
    assert fuse_descriptors() == [fuse_device]  # not the pipe, nor anything else open


def test_the_wait_is_put_where_pyfuse3_looks_for_it_and_taken_back(fuse_device: int) -> None:
    """The wait replaces ``pyfuse3._wait_fuse_readable`` and is put back (a hook pyfuse3 renamed
    would fail here; that its loop calls it is shown on a real mount, by ``requests_read_at_once``
    in tests/integration/test_request_economy.py)."""
    own = pyfuse3._wait_fuse_readable
    waiting = install_request_wait()
    try:
        assert waiting is not None and waiting.fd == fuse_device
        assert pyfuse3._wait_fuse_readable == waiting.wait
    finally:
        remove_request_wait()
    assert pyfuse3._wait_fuse_readable is own
