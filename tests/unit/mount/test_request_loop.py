"""The wait before each FUSE request (mount/request_loop.py), on a real pipe under trio.

A pipe stands in for ``/dev/fuse``: readable when a request is waiting.  Its
read end is non-blocking here, so a wait that said "readable" wrongly makes
the test's read fail instead of hanging the event loop as ``/dev/fuse`` would.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import trio
import trio.testing

from mount.request_loop import FAIR_SHARE, RequestWait, fuse_descriptors


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    reader, writer = os.pipe()
    os.set_blocking(reader, False)
    try:
        yield reader, writer
    finally:
        os.close(reader)
        os.close(writer)


async def test_a_waiting_request_is_read_without_a_checkpoint(pipe: tuple[int, int]) -> None:
    reader, writer = pipe
    waiting = RequestWait(reader)
    os.write(writer, b"r")
    with trio.testing.assert_no_checkpoints():
        assert await waiting.wait()
    assert os.read(reader, 1) == b"r"
    assert waiting.immediate == 1


async def test_with_nothing_waiting_it_waits_for_the_next_request(pipe: tuple[int, int]) -> None:
    reader, writer = pipe
    waiting = RequestWait(reader)
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
    waiting = RequestWait(reader)
    os.write(writer, b"r" * (FAIR_SHARE + 1))
    for _ in range(FAIR_SHARE):
        with trio.testing.assert_no_checkpoints():
            assert await waiting.wait()
        os.read(reader, 1)
    with trio.testing.assert_checkpoints():
        assert await waiting.wait()
    assert os.read(reader, 1) == b"r"


@pytest.mark.parametrize("attempt", range(20))  # trio runs woken tasks in either order: try both
async def test_of_two_tasks_one_reads_the_request_and_the_other_keeps_waiting(
        pipe: tuple[int, int], attempt: int) -> None:
    reader, writer = pipe
    waiting = RequestWait(reader)
    got: list[str] = []

    async def request_task(name: str) -> None:
        assert await waiting.wait()
        got.append(name + ":" + os.read(reader, 1).decode())  # fails, not hangs, if nothing is there

    async with trio.open_nursery() as nursery:
        nursery.start_soon(request_task, "waiting")
        await trio.testing.wait_all_tasks_blocked()
        os.write(writer, b"1")
        nursery.start_soon(request_task, "arriving")
        await trio.testing.wait_all_tasks_blocked()
        assert len(got) == 1 and got[0].endswith(":1")
        os.write(writer, b"2")
    assert sorted(name for name, _ in (entry.split(":") for entry in got)) == ["arriving", "waiting"]


async def test_a_closing_descriptor_ends_the_wait(pipe: tuple[int, int]) -> None:
    reader, _ = pipe
    waiting = RequestWait(reader)
    results: list[bool] = []

    async def request_task() -> None:
        results.append(await waiting.wait())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(request_task)
        await trio.testing.wait_all_tasks_blocked()
        trio.lowlevel.notify_closing(reader)
    assert results == [False]


@pytest.mark.skipif(not os.path.exists("/dev/fuse"), reason="no /dev/fuse")
def test_the_fuse_device_is_found_among_the_open_descriptors() -> None:
    before = fuse_descriptors()
    device = os.open("/dev/fuse", os.O_RDWR)
    try:
        assert sorted(fuse_descriptors()) == sorted([*before, device])
    finally:
        os.close(device)
