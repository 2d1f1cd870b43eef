"""Rates and percentiles from the metrics registry's counters and histogram buckets."""

from __future__ import annotations

import math
import time

import pytest

from catalyst_mcp.observability.metrics import Metrics
from catalyst_mcp.web.metricsview import MetricsWindow, quantile


def test_quantiles_interpolate_within_a_bucket() -> None:
    buckets = ((0.001, 0.0), (0.01, 50.0), (0.1, 100.0), (math.inf, 100.0))
    assert quantile(0.5, buckets) == pytest.approx(0.01)
    assert quantile(0.25, buckets) == pytest.approx(0.001 + 0.009 * 0.5)
    assert quantile(0.95, buckets) == pytest.approx(0.01 + 0.09 * 0.9)
    assert quantile(0.5, ((0.1, 0.0), (math.inf, 0.0))) is None
    # beyond the last finite bound: that bound is all a histogram knows
    assert quantile(0.99, ((0.1, 1.0), (math.inf, 10.0))) == 0.1


def test_the_window_compares_now_with_the_reading_a_window_ago() -> None:
    now = [1000.0]
    metrics = Metrics()
    window = MetricsWindow(metrics.registry, clock=lambda: now[0], window=300.0)
    window.sample()  # at start: nothing counted

    def started() -> float:  # each call took about 4 ms (measured from now: load-proof)
        return time.perf_counter() - 0.004

    for _ in range(8):
        metrics.tool_call("a", "a__x", "ok", started())
    metrics.tool_call("a", "a__x", "tool_error", started())
    metrics.tool_call("b", "b__y", "error", started())
    metrics.tool_call("b", "b__y", "refused", started())
    now[0] += 120.0
    summary = window.summary()
    assert summary.seconds == 120.0
    assert summary.calls == 10 and summary.refused == 1
    assert summary.per_minute == pytest.approx(5.0)
    assert summary.error_rate == pytest.approx(0.2)
    assert summary.p50_ms is not None and 2.5 <= summary.p50_ms <= 5.0
    assert summary.p95_ms is not None and summary.p95_ms >= summary.p50_ms
    assert summary.servers["a"].calls == 9
    assert summary.servers["b"].error_rate == pytest.approx(1.0)
    # ten minutes later, with no calls since: the window holds none of them
    window.sample()
    now[0] += 600.0
    window.sample()
    later = window.summary()
    assert later.calls == 0 and later.error_rate is None and later.p50_ms is None


def test_without_metrics_the_summary_says_so() -> None:
    summary = MetricsWindow(None).summary()
    assert summary.enabled is False and summary.calls == 0
