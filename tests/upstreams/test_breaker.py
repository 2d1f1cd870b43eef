"""The circuit breaker: closed → open → half-open → closed (or open again)."""

from __future__ import annotations

import pytest

from catalyst_mcp.upstreams import breaker as breaker_module
from catalyst_mcp.upstreams.breaker import CircuitBreaker


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    now = [100.0]
    monkeypatch.setattr(breaker_module.time, "monotonic", lambda: now[0])
    return now


def test_closed_until_the_threshold(clock: list[float]) -> None:
    breaker = CircuitBreaker(failures=3, reset_seconds=10)
    assert breaker.state == "closed" and breaker.allow()
    breaker.failure()
    breaker.failure()
    assert breaker.state == "closed" and breaker.allow()
    assert breaker.retry_after() == 0.0
    breaker.failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    assert breaker.retry_after() == 10.0


def test_success_resets_the_count(clock: list[float]) -> None:
    breaker = CircuitBreaker(failures=2, reset_seconds=10)
    breaker.failure()
    breaker.success()
    breaker.failure()
    assert breaker.state == "closed"
    assert breaker.failures == 1


def test_half_open_allows_one_trial_at_a_time(clock: list[float]) -> None:
    breaker = CircuitBreaker(failures=1, reset_seconds=10)
    breaker.failure()
    clock[0] += 4
    assert breaker.state == "open"
    assert breaker.retry_after() == 6.0
    clock[0] += 6
    assert breaker.state == "half-open"
    assert breaker.allow() is True
    assert breaker.allow() is False  # a second caller waits for the trial
    breaker.success()
    assert breaker.state == "closed"
    assert breaker.allow() and breaker.allow()


def test_failed_trial_opens_again_for_a_full_period(clock: list[float]) -> None:
    breaker = CircuitBreaker(failures=5, reset_seconds=10)
    for _ in range(5):
        breaker.failure()
    clock[0] += 10
    assert breaker.allow()
    breaker.failure()
    assert breaker.state == "open"
    assert breaker.retry_after() == 10.0
    clock[0] += 10
    assert breaker.state == "half-open"


def test_reset(clock: list[float]) -> None:
    breaker = CircuitBreaker(failures=1)
    breaker.failure()
    breaker.reset()
    assert (breaker.state, breaker.failures, breaker.opened_at) == ("closed", 0, None)
