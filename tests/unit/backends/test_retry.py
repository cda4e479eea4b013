"""The retry policy: what is retried, how long it waits, and that it always stops.

All timing runs on trio's ``MockClock`` with autojump, so "30 seconds of
backoff" takes no real time and elapsed times are exact.
"""

from __future__ import annotations

import random

import pytest
import trio
from trio.testing import MockClock

from vfs.backends.base import NotFound, Transient, Unreachable
from vfs.backends.retry import RetryLater, RetryPolicy


class Flaky:
    """An operation that raises the given errors in turn, then returns ``"ok"``."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0
        self.times: list[float] = []

    async def __call__(self) -> str:
        self.calls += 1
        self.times.append(trio.current_time())
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


async def test_success_needs_no_retry(autojump_clock: MockClock) -> None:
    operation = Flaky()
    assert await RetryPolicy().run(operation) == "ok"
    assert operation.calls == 1


async def test_transient_errors_are_retried_until_success(autojump_clock: MockClock) -> None:
    operation = Flaky(Transient("503"), Unreachable("refused"), Transient("reset"))
    retried: list[float] = []
    result = await RetryPolicy().run(operation, on_retry=lambda error, delay: retried.append(delay))
    assert result == "ok"
    assert operation.calls == 4
    assert len(retried) == 3


async def test_answers_are_not_retried(autojump_clock: MockClock) -> None:
    operation = Flaky(NotFound("gone"))
    with pytest.raises(NotFound):
        await RetryPolicy().run(operation)
    assert operation.calls == 1


async def test_attempts_are_bounded_and_the_last_error_is_raised(autojump_clock: MockClock) -> None:
    errors = [Transient(f"failure {n}") for n in range(10)]
    operation = Flaky(*errors)
    with pytest.raises(Transient) as caught:
        await RetryPolicy(max_attempts=4, budget=1000).run(operation)
    assert operation.calls == 4
    assert caught.value is errors[3]
    assert any("gave up after 4 attempt(s)" in note for note in caught.value.__notes__)


async def test_total_time_is_bounded(autojump_clock: MockClock) -> None:
    operation = Flaky(*[Transient("timeout") for _ in range(1000)])
    started = trio.current_time()
    with pytest.raises(Transient):
        await RetryPolicy(max_attempts=1000, budget=30.0, max_delay=8.0).run(operation)
    elapsed = trio.current_time() - started
    assert elapsed <= 30.0
    assert operation.calls > 3  # it did keep trying within the budget


async def test_backoff_is_full_jitter_with_doubling_caps(autojump_clock: MockClock) -> None:
    policy = RetryPolicy(first_delay=0.5, max_delay=4.0, rng=random.Random(7))
    caps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    samples = {n: [policy.backoff(n) for _ in range(200)] for n in range(1, 7)}
    for retry_number, cap in enumerate(caps, 1):
        values = samples[retry_number]
        assert all(0.0 <= value <= cap for value in values)
        # full jitter: the whole interval is used, not just its top
        assert min(values) < cap * 0.2 and max(values) > cap * 0.8


async def test_retry_after_is_honoured_exactly(autojump_clock: MockClock) -> None:
    operation = Flaky(RetryLater("503", retry_after=7.0))
    assert await RetryPolicy().run(operation) == "ok"
    assert operation.times[1] - operation.times[0] == pytest.approx(7.0)


async def test_retry_after_beyond_the_budget_gives_up_at_once(autojump_clock: MockClock) -> None:
    operation = Flaky(RetryLater("503", retry_after=3600.0))
    started = trio.current_time()
    with pytest.raises(RetryLater):
        await RetryPolicy(budget=30.0).run(operation)
    assert trio.current_time() - started == 0
    assert operation.calls == 1


async def test_non_idempotent_operations_retry_only_what_never_took_effect(
    autojump_clock: MockClock,
) -> None:
    ambiguous = Flaky(Transient("reset after the request was sent"))
    with pytest.raises(Transient):
        await RetryPolicy().run(ambiguous, idempotent=False)
    assert ambiguous.calls == 1

    never_sent = Flaky(Unreachable("refused"), RetryLater("busy", retry_after=1.0))
    assert await RetryPolicy().run(never_sent, idempotent=False) == "ok"
    assert never_sent.calls == 3


def test_policy_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(budget=-1)
    assert RetryPolicy.never().max_attempts == 1
