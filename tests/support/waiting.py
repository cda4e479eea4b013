"""Waiting for something that happens in another process: poll, with a deadline.

Uploads run after a delay, daemons exit in their own time, a log line comes
when it comes: a test polls for the state it expects and fails, naming what
it waited for, when the deadline passes.

``wait_for`` blocks (a test without an event loop); ``until`` is the same poll
inside a trio test, for work done in worker threads or other processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import trio

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 30.0, what: str = "the expected state", *,
             interval: float = 0.05, ignoring: tuple[type[BaseException], ...] = (),
             detail: Callable[[], str] | None = None) -> T:
    """Poll ``condition`` until it returns something true, and return that value.

    ``ignoring``: exceptions of the condition that count as "not yet".  On timeout an
    ``AssertionError`` names ``what``, followed by ``detail()`` if given (a log's tail …).
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except ignoring:
            value = None  # type: ignore[assignment]
        if value:
            return value
        if time.monotonic() > deadline:
            message = f"timed out after {timeout} s waiting for {what}"
            raise AssertionError(f"{message}\n{detail()}" if detail is not None else message)
        time.sleep(interval)


async def until(condition: Callable[[], bool], timeout: float = 10.0, *, interval: float = 0.005) -> None:
    """Poll ``condition`` from a trio test (on its real clock) until it is true;
    ``trio.TooSlowError`` after ``timeout``."""
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(interval)
