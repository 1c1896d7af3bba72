"""The retry policy in-process (realtime/retry.py): what is retried, how soon, how often.

The black-box behaviour (the real server, the simulator's faults) is test_upstream_faults.py.
"""

from __future__ import annotations

import random

import pytest

from wyoming_realtime_text.realtime.retry import (
    JITTER,
    MIN_ATTEMPT_SECONDS,
    RetryBudget,
    backoff_seconds,
)


@pytest.mark.parametrize("step", range(5))
def test_backoff_doubles_per_step_with_bounded_jitter(step: int) -> None:
    nominal = 0.5 * 2**step
    assert backoff_seconds(0.5, step, 0.0) == pytest.approx(nominal * (1 - JITTER))
    assert backoff_seconds(0.5, step, 0.5) == pytest.approx(nominal)
    assert backoff_seconds(0.5, step, 1.0) == pytest.approx(nominal * (1 + JITTER))
    rng = random.Random(step)
    waits = [backoff_seconds(0.5, step, rng.random()) for _ in range(1000)]
    assert all(nominal * (1 - JITTER) <= w < nominal * (1 + JITTER) for w in waits)
    assert max(waits) - min(waits) > nominal * JITTER, "the jitter really spreads them"


def test_budget_doubles_the_wait_until_max_retries() -> None:
    budget = RetryBudget(max_retries=3, backoff=0.5, rand=lambda: 0.5)
    waits = [budget.wait("rate_limit_exceeded"), budget.wait("server_error")]
    assert waits == [0.5, 1.0]
    assert budget.wait("http_503") == 2.0
    assert budget.wait("rate_limit_exceeded") is None
    assert budget.retries == 3


def test_budget_reconnects_at_once_and_only_once() -> None:
    budget = RetryBudget(max_retries=5, backoff=0.5, rand=lambda: 0.5)
    assert budget.wait("closed") == 0.0
    assert budget.wait("session_expired") is None
    assert budget.wait("rate_limit_exceeded") == 0.5, "the first backoff wait is not doubled"
    single = RetryBudget(max_retries=1, backoff=0.5)
    assert single.wait("rate_limit_exceeded") is not None
    assert single.wait("closed") is None, "a reconnect counts against max_retries too"


@pytest.mark.parametrize(
    "code",
    [
        "invalid_api_key",
        "insufficient_quota",
        "account_deactivated",
        "http_401",
        "http_403",
        "connect_timeout",
        "invalid_value",
        "failed",
    ],
)
def test_refusals_and_unknown_failures_are_not_retried(code: str) -> None:
    assert RetryBudget(max_retries=5, backoff=0.5).wait(code) is None


def test_max_retries_zero_retries_nothing() -> None:
    budget = RetryBudget(max_retries=0, backoff=0.5)
    assert budget.wait("closed") is None and budget.wait("rate_limit_exceeded") is None


def test_the_wait_is_capped_by_the_time_left() -> None:
    budget = RetryBudget(max_retries=5, backoff=4.0, rand=lambda: 0.5)
    assert budget.wait("rate_limit_exceeded", remaining=2.5) == 2.5 - MIN_ATTEMPT_SECONDS
    assert budget.wait("rate_limit_exceeded", remaining=100.0) == 8.0, "the cap is not a step"
    assert budget.wait("rate_limit_exceeded", remaining=MIN_ATTEMPT_SECONDS - 0.01) is None
    assert budget.wait("closed", remaining=MIN_ATTEMPT_SECONDS - 0.01) is None
    assert budget.retries == 2, "a retry that does not fit is not counted"
