"""Drive the async ``Filesystem`` from synchronous hypothesis code.

Hypothesis runs examples (and stateful rules) as plain functions; the graph
under test lives in the trio loop of a pytest-trio test, with its sockets,
nursery and clock.  So the test hands its hypothesis run to a worker thread
(``trio.to_thread.run_sync``) and each step calls back into the *same* loop
with ``trio.from_thread.run``.  Why this shape and not another:

* one trio loop for the whole run: the backend logs in once, the block
  cache and its nursery persist across examples and rules, which is both
  fast and what a mount does;
* no event loop is nested or re-entered: the loop keeps running
  (httpx's connections, the cache's flights) while the worker thread waits;
* an exception in a step propagates as itself to hypothesis, which can
  shrink it; trio cancellation of the test (a timeout) reaches the worker at
  its next call back.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import trio

P = ParamSpec("P")
T = TypeVar("T")


def call(function: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``await function(*args)`` in the trio loop this worker thread came from."""
    return trio.from_thread.run(lambda: function(*args, **kwargs))


def call_sync(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run a synchronous ``function`` on the trio thread (the filesystem is single-threaded)."""
    return trio.from_thread.run_sync(lambda: function(*args, **kwargs))


async def run_in_worker(body: Callable[[], None]) -> None:
    """Run the synchronous hypothesis ``body`` in a worker thread that may call back."""
    await trio.to_thread.run_sync(body)
