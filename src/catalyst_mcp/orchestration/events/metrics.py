"""What the event bus counts, and the metrics consumer.

:class:`EventStats` keeps plain counts (for tests, the API and the bench) and, when the gateway
counts metrics, the Prometheus families below, registered with the gateway's
:class:`~catalyst_mcp.observability.metrics.Metrics` registry (or its multiprocess folder).
Every label value is bounded: event types are a fixed set, consumers are ``audit``,
``metrics``, ``workflows`` and ``webhook.<name>`` of the configuration, reasons and outcomes
fixed words.

* ``catalyst_events{type}``: events seen by the metrics consumer (with Redis, each event is
  counted once by one instance: add the instances up);
* ``catalyst_events_dropped{type, reason}``: events lost on purpose: ``queue_full`` (the
  bus's queue, or an in-process consumer's, was full: nothing ever waits for room),
  ``stopped`` (still queued when the gateway stopped), ``undeliverable`` (Redis: given up after
  ``events.max_deliveries`` deliveries);
* ``catalyst_event_deliveries{consumer, outcome}``: events handed to a consumer: ``ok``,
  ``failed`` (it raised; with Redis the entry is delivered again later), ``redelivered``
  (Redis: claimed from a consumer that did not acknowledge it);
* ``catalyst_webhook_requests{webhook, outcome}``: webhook POST attempts: ``ok`` (2xx),
  ``retry`` (failed, tried again), ``failed`` (failed for good), ``refused`` (the SSRF guard).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from catalyst_mcp.orchestration.events.types import Envelope

if TYPE_CHECKING:
    from prometheus_client import Counter as PromCounter

    from catalyst_mcp.observability.metrics import Metrics

__all__ = ["EventStats", "MetricsConsumer"]


class EventStats:
    """Counts of one bus (``metrics``: also as Prometheus counters)."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.events: Counter[str] = Counter()
        self.dropped: Counter[tuple[str, str]] = Counter()
        self.deliveries: Counter[tuple[str, str]] = Counter()
        self.webhooks: Counter[tuple[str, str]] = Counter()
        self._prom: tuple[PromCounter, PromCounter, PromCounter, PromCounter] | None = None
        self._children: dict[tuple[int, tuple[str, ...]], PromCounter] = {}
        self.bind(metrics)

    def bind(self, metrics: Metrics | None) -> None:
        """Count as Prometheus metrics too, from now on (None: not)."""
        if metrics is None or self._prom is not None:
            return
        from prometheus_client import Counter as PromCounter

        into = None if metrics.multiprocess else metrics.registry
        self._prom = (
            PromCounter(
                "catalyst_events",
                "Events seen by the metrics consumer, by type (with Redis, each event is "
                "counted by one instance).",
                ["type"],
                registry=into,
            ),
            PromCounter(
                "catalyst_events_dropped",
                "Events dropped, by type and reason (queue_full, stopped, undeliverable).",
                ["type", "reason"],
                registry=into,
            ),
            PromCounter(
                "catalyst_event_deliveries",
                "Events handed to a consumer, by consumer and outcome (ok, failed, redelivered).",
                ["consumer", "outcome"],
                registry=into,
            ),
            PromCounter(
                "catalyst_webhook_requests",
                "Webhook POST attempts, by webhook and outcome (ok, retry, failed, refused).",
                ["webhook", "outcome"],
                registry=into,
            ),
        )

    def _inc(self, family: int, labels: tuple[str, ...], count: int = 1) -> None:
        if self._prom is None:
            return
        child = self._children.get((family, labels))
        if child is None:  # bound once per label set (the sets are small and fixed)
            child = self._children[(family, labels)] = self._prom[family].labels(*labels)
        child.inc(count)

    def event(self, event_type: str, count: int = 1) -> None:
        self.events[event_type] += count
        self._inc(0, (event_type,), count)

    def drop(self, event_type: str, reason: str, count: int = 1) -> None:
        self.dropped[(event_type, reason)] += count
        self._inc(1, (event_type, reason), count)

    def delivery(self, consumer: str, outcome: str, count: int = 1) -> None:
        self.deliveries[(consumer, outcome)] += count
        self._inc(2, (consumer, outcome), count)

    def webhook(self, name: str, outcome: str) -> None:
        self.webhooks[(name, outcome)] += 1
        self._inc(3, (name, outcome))


class MetricsConsumer:
    """Counts every event by type (``catalyst_events``)."""

    name = "metrics"

    def __init__(self, stats: EventStats) -> None:
        self.stats = stats

    def accepts(self, event_type: str) -> bool:
        return True

    async def handle(self, envelope: Envelope) -> None:
        self.stats.event(envelope.type)

    async def handle_many(self, envelopes: list[Envelope]) -> None:
        counts: dict[str, int] = {}
        for envelope in envelopes:
            counts[envelope.type] = counts.get(envelope.type, 0) + 1
        for event_type, count in counts.items():
            self.stats.event(event_type, count)
