"""Calls per minute, error rate and latency percentiles, from the gateway's own metrics.

The counters of ``/metrics`` (``catalyst_tool_calls``, ``catalyst_tool_call_duration_seconds``)
only ever grow, so a rate needs two readings. :class:`MetricsWindow` reads the registry in
process (never over HTTP) every ``SAMPLE_SECONDS`` while the gateway runs, keeps readings for
``KEEP_SECONDS``, and compares the newest with the one from ``WINDOW_SECONDS`` ago: calls per
minute and the error rate over that window, and p50/p95 from the histogram's buckets (linear
within a bucket, as Prometheus' ``histogram_quantile`` does). A gateway younger than the window
reports since it started. In multiprocess mode the registry adds every worker's values up, so
the figures are the whole gateway's.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["MetricsWindow", "Reading", "Summary", "quantile"]

SAMPLE_SECONDS = 15.0
WINDOW_SECONDS = 300.0
KEEP_SECONDS = 900.0
CALLS = "catalyst_tool_calls"
SECONDS = "catalyst_tool_call_duration_seconds"
ERRORS = frozenset({"error", "tool_error"})


@dataclass(frozen=True, slots=True)
class Reading:
    """The tool-call counters at one moment, summed over tools."""

    at: float
    calls: float = 0.0
    errors: float = 0.0
    refused: float = 0.0
    buckets: tuple[tuple[float, float], ...] = ()
    """(upper bound, cumulative count), the last bound +Inf."""
    servers: dict[str, tuple[float, float]] = field(default_factory=dict)
    """server -> (calls, errors)."""


@dataclass(frozen=True, slots=True)
class ServerRate:
    calls: int
    per_minute: float
    error_rate: float | None


@dataclass(frozen=True, slots=True)
class Summary:
    """What the overview shows, over the last ``seconds``."""

    seconds: float
    calls: int
    per_minute: float
    errors: int
    error_rate: float | None
    refused: int
    p50_ms: float | None
    p95_ms: float | None
    servers: dict[str, ServerRate]
    enabled: bool = True


def quantile(q: float, buckets: tuple[tuple[float, float], ...]) -> float | None:
    """The ``q`` quantile of a cumulative histogram (None when it is empty)."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower  # beyond the last finite bound: its value is all we know
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return lower


def read(registry: CollectorRegistry, clock: Callable[[], float] = time.monotonic) -> Reading:
    """The tool-call counters now."""
    calls = errors = refused = 0.0
    bounds: dict[float, float] = {}
    servers: dict[str, list[float]] = {}
    for family in registry.collect():
        if family.name == CALLS:
            for sample in family.samples:
                if not sample.name.endswith("_total"):
                    continue
                value = sample.value
                outcome = sample.labels.get("outcome", "")
                mine = servers.setdefault(sample.labels.get("server", ""), [0.0, 0.0])
                if outcome == "refused":
                    refused += value
                    continue
                calls += value
                mine[0] += value
                if outcome in ERRORS:
                    errors += value
                    mine[1] += value
        elif family.name == SECONDS:
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    bound = float(sample.labels["le"])
                    bounds[bound] = bounds.get(bound, 0.0) + sample.value
    return Reading(
        clock(),
        calls,
        errors,
        refused,
        tuple(sorted(bounds.items())),
        {name: (pair[0], pair[1]) for name, pair in servers.items()},
    )


def _minus(
    new: tuple[tuple[float, float], ...], old: tuple[tuple[float, float], ...]
) -> tuple[tuple[float, float], ...]:
    before = dict(old)
    return tuple((bound, count - before.get(bound, 0.0)) for bound, count in new)


class MetricsWindow:
    """Readings of one registry over time (None: metrics are off)."""

    def __init__(
        self,
        registry: CollectorRegistry | None,
        *,
        clock: Callable[[], float] = time.monotonic,
        window: float = WINDOW_SECONDS,
    ) -> None:
        self.registry = registry
        self.clock = clock
        self.window = window
        self.readings: deque[Reading] = deque()
        self._task: asyncio.Task[None] | None = None

    def sample(self) -> Reading | None:
        """Take a reading now and keep it (older ones beyond KEEP_SECONDS are dropped)."""
        if self.registry is None:
            return None
        reading = read(self.registry, self.clock)
        self.readings.append(reading)
        while self.readings and reading.at - self.readings[0].at > KEEP_SECONDS:
            self.readings.popleft()
        return reading

    def start(self) -> None:
        """Read every SAMPLE_SECONDS in the background (the first reading at once)."""
        if self.registry is None or self._task is not None:
            return
        self.sample()
        self._task = asyncio.get_running_loop().create_task(self._every())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _every(self) -> None:
        while True:
            await asyncio.sleep(SAMPLE_SECONDS)
            self.sample()

    def summary(self) -> Summary:
        """Now against the oldest reading within the window (or the first one taken)."""
        if self.registry is None:
            return Summary(0.0, 0, 0.0, 0, None, 0, None, None, {}, enabled=False)
        now = read(self.registry, self.clock)
        base = Reading(now.at)  # nothing counted yet: a gateway that just started
        for reading in self.readings:
            if now.at - reading.at <= self.window:
                base = reading
                break
        if not self.readings or self.readings[-1].at < now.at - SAMPLE_SECONDS:
            self.readings.append(now)
        seconds = max(now.at - base.at, 1.0)
        calls = now.calls - base.calls
        errors = now.errors - base.errors
        latency = _minus(now.buckets, base.buckets)
        p50, p95 = quantile(0.5, latency), quantile(0.95, latency)
        servers = {}
        for name, (total, failed) in now.servers.items():
            old = base.servers.get(name, (0.0, 0.0))
            made, bad = total - old[0], failed - old[1]
            servers[name] = ServerRate(int(made), made * 60 / seconds, bad / made if made else None)
        return Summary(
            seconds=seconds,
            calls=int(calls),
            per_minute=calls * 60 / seconds,
            errors=int(errors),
            error_rate=errors / calls if calls else None,
            refused=int(now.refused - base.refused),
            p50_ms=p50 * 1000 if p50 is not None else None,
            p95_ms=p95 * 1000 if p95 is not None else None,
            servers=servers,
        )
