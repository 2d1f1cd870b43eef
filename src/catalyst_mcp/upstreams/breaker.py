"""A circuit breaker per upstream: stop sending calls to a server that keeps failing.

closed ──N consecutive failures──► open ──reset time passed──► half-open
  ▲                                  ▲                            │ one trial call
  └──────────── trial succeeds ──────┼──────── trial fails ───────┘
"""

from __future__ import annotations

import time
from typing import Literal

__all__ = ["CircuitBreaker"]

State = Literal["closed", "open", "half-open"]


class CircuitBreaker:
    def __init__(self, failures: int = 5, reset_seconds: float = 30.0) -> None:
        self.threshold = failures
        self.reset_seconds = reset_seconds
        self.failures = 0
        self.opened_at: float | None = None
        self._trial_running = False
        # transitions so far, for metrics: to open (from closed or a failed trial), to closed
        self.opens = 0
        self.closes = 0

    @property
    def state(self) -> State:
        if self.opened_at is None:
            return "closed"
        if time.monotonic() - self.opened_at >= self.reset_seconds:
            return "half-open"
        return "open"

    def allow(self) -> bool:
        """Whether a call may go through now (in half-open state: only one trial at a time)."""
        state = self.state
        if state == "closed":
            return True
        if state == "half-open" and not self._trial_running:
            self._trial_running = True
            return True
        return False

    def retry_after(self) -> float:
        if self.opened_at is None:
            return 0.0
        return max(0.0, self.reset_seconds - (time.monotonic() - self.opened_at))

    def success(self) -> None:
        if self.opened_at is not None:
            self.closes += 1
        self.failures = 0
        self.opened_at = None
        self._trial_running = False

    def failure(self) -> None:
        self._trial_running = False
        self.failures += 1
        if self.failures >= self.threshold or self.opened_at is not None:
            if self.state != "open":
                self.opens += 1
            self.opened_at = time.monotonic()

    def reset(self) -> None:
        self.success()
