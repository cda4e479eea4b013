"""The one retry policy of the project: bounded exponential backoff with full jitter.

Every backend call that may fail transiently (a timeout, a reset connection,
a 502/503/504) runs through :meth:`RetryPolicy.run`.  Having exactly one
policy means one place decides how hard we lean on a struggling portal, and
one set of tests proves the bounds.

Subtleties:

* **Only** :class:`~vfs.backends.base.Transient` errors are retried.  Anything
  else (``NotFound``, ``PermissionDenied``, a ``ProtocolError``…) is an answer,
  and asking again would give the same answer.
* Full jitter (a delay drawn uniformly from ``[0, cap]`` with ``cap`` doubling
  per attempt) spreads the retries of many parallel readers, so a portal that
  hiccups is not hit by a synchronised wave a moment later.
* A server that says when to come back (``Retry-After`` on 503/429) is
  believed: that delay replaces the jittered one.  If it asks for longer than
  the remaining budget we give up at once instead of sleeping past it.
* The total time is bounded (``budget``, counted from the first attempt on
  trio's clock, so tests use ``MockClock(autojump_threshold=0)`` and run
  instantly), and so is the number of attempts.  Worst case a caller waits
  ``budget`` plus the timeout of one last attempt.
* Non-idempotent operations (an upload, a move) must not run twice by
  accident: with ``idempotent=False`` only failures that prove the request
  never took effect are retried: :class:`~vfs.backends.base.Unreachable` (no
  connection was made) and :class:`RetryLater` (the server refused it with a
  503/429 and said when to return).
* Giving up re-raises the last error itself (its class is the answer the
  filesystem maps to an errno), with a note saying how many attempts were
  made over how long.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import trio

from vfs.backends.base import Transient, Unreachable

__all__ = ["RetryLater", "RetryPolicy"]

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Called before each retry with the error and the delay about to be slept.
RetryHook = Callable[[Transient, float], None]


class RetryLater(Transient):
    """The server refused for now and said when to come back (``Retry-After``)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """How often, how fast and for how long transient failures are retried.

    ``max_attempts`` counts the first try; ``budget`` is the wall time (trio
    clock) after which no new attempt starts; ``first_delay`` is the jitter cap
    of the first retry, doubled per retry up to ``max_delay``.
    """

    max_attempts: int = 8
    budget: float = 30.0
    first_delay: float = 0.25
    max_delay: float = 8.0
    rng: random.Random = field(default_factory=random.Random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.budget < 0 or self.first_delay < 0 or self.max_delay < 0:
            raise ValueError("budget and delays must not be negative")

    @classmethod
    def never(cls) -> RetryPolicy:
        """One attempt, no retry (for calls whose caller wants a fast verdict)."""
        return cls(max_attempts=1, budget=0.0)

    def backoff(self, retry_number: int) -> float:
        """The jittered delay before retry ``retry_number`` (1 for the first retry)."""
        cap = min(self.max_delay, self.first_delay * 2 ** (retry_number - 1))
        return self.rng.uniform(0.0, cap)

    async def run(
        self,
        operation: Callable[[], Awaitable[T]],
        *,
        idempotent: bool = True,
        on_retry: RetryHook | None = None,
    ) -> T:
        """Await ``operation()`` until it succeeds, fails for good, or the bounds are reached."""
        started = trio.current_time()
        deadline = started + self.budget
        attempt = 0
        while True:
            attempt += 1
            try:
                return await operation()
            except Transient as exc:
                if not idempotent and not isinstance(exc, (Unreachable, RetryLater)):
                    raise
                delay = self._delay(exc, attempt, deadline)
                if delay is None:
                    elapsed = trio.current_time() - started
                    exc.add_note(f"gave up after {attempt} attempt(s) in {elapsed:.1f}s")
                    raise
                log.info("retrying in %.2fs (attempt %d of %d failed: %s)", delay, attempt, self.max_attempts, exc)
                if on_retry is not None:
                    on_retry(exc, delay)
                await trio.sleep(delay)

    def _delay(self, exc: Transient, attempt: int, deadline: float) -> float | None:
        """How long to wait before the next attempt, or None to give up."""
        if attempt >= self.max_attempts:
            return None
        remaining = deadline - trio.current_time()
        if remaining <= 0:
            return None
        if isinstance(exc, RetryLater) and math.isfinite(exc.retry_after):
            delay = max(0.0, exc.retry_after)
            return delay if delay <= remaining else None
        return min(self.backoff(attempt), remaining)
