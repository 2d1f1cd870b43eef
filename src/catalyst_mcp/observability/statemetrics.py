"""What the gateway *is*, read when ``/metrics`` is scraped: upstreams, packs, sessions, audit.

:class:`GatewayCollector` is a prometheus-client collector over a running gateway: nothing on the
request path counts any of this, it is read from the objects that already know it (each
provider's health report and circuit breaker, the session store, the pack set, the audit
writer). Counters here (restarts, breaker transitions, pack reloads, audit records) belong to
the objects that hold them, so they start again from zero when a reload replaces one; Prometheus
treats that as a counter reset.

In multiprocess mode these are per worker: :class:`StateMirror` writes them, every few seconds
and before each scrape, to gauges of prometheus-client's ``liveall`` mode (a ``pid`` label per
worker) so that any worker's ``/metrics`` shows every worker's state.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from catalyst_mcp import __version__

if TYPE_CHECKING:
    from catalyst_mcp.app import Gateway
    from catalyst_mcp.upstreams.breaker import CircuitBreaker

__all__ = ["SERVER_STATES", "GatewayCollector", "StateMirror", "breakers_of"]

SERVER_STATES = ("starting", "ready", "failed", "stopped")
CIRCUIT_STATES = ("closed", "open", "half-open")
MIRROR_SECONDS = 5.0


def breakers_of(provider: Any) -> list[CircuitBreaker]:
    """The circuit breakers of a provider: an upstream's own, a per-user upstream's instances'."""
    found = []
    breaker = getattr(provider, "breaker", None)
    if breaker is not None:
        found.append(breaker)
    shared = getattr(provider, "shared", None)
    if shared is not None and getattr(shared, "breaker", None) is not None:
        found.append(shared.breaker)
    for instance in getattr(provider, "users", {}).values():
        upstream = getattr(instance, "upstream", None)
        if upstream is not None and getattr(upstream, "breaker", None) is not None:
            found.append(upstream.breaker)
    return found


class GatewayCollector(Collector):
    """The state metrics of ``gateway`` (see docs/observability.md for the list)."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> Iterable[Metric]:
        yield from self._gateway()
        yield from self._servers()
        yield from self._sessions()
        yield from self._packs()
        yield from self._audit()

    def _gateway(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("catalyst_info", "The gateway's version.", labels=["version"])
        info.add_metric([__version__], 1)
        yield info
        ready = GaugeMetricFamily(
            "catalyst_ready",
            "1 when /ready says ready, else 0 (starting, degraded or stopping).",
        )
        ready.add_metric([], 1 if self.gateway.readiness()["status"] == "ready" else 0)
        yield ready
        problems = GaugeMetricFamily(
            "catalyst_config_problems",
            "Problems of the config file's last edit (it is not applied while there are any).",
        )
        problems.add_metric([], len(self.gateway.config_problems))
        yield problems
        in_flight = GaugeMetricFamily(
            "catalyst_calls_in_flight",
            "Calls (tools, prompts, resource reads) waiting for a server or pack now.",
            labels=["server"],
        )
        for server, count in sorted(self.gateway.server.in_flight.items()):
            in_flight.add_metric([server], count)
        yield in_flight

    def _servers(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "catalyst_server_up",
            "1 when a server (kind=server) or pack (kind=pack) can serve calls.",
            labels=["server", "kind"],
        )
        state = GaugeMetricFamily(
            "catalyst_server_state",
            "A server's state: 1 for the state it is in (starting, ready, failed, stopped).",
            labels=["server", "state"],
        )
        tools = GaugeMetricFamily(
            "catalyst_server_tools", "Tools a server or pack offers.", labels=["server"]
        )
        restarts = CounterMetricFamily(
            "catalyst_server_restarts",
            "Reconnections and restarts of a server (per-user instances included).",
            labels=["server"],
        )
        users = GaugeMetricFamily(
            "catalyst_server_user_instances",
            "Per-user instances running of a server whose entry uses ${secret:...}.",
            labels=["server"],
        )
        circuit = GaugeMetricFamily(
            "catalyst_circuit_state",
            "A server's circuit breaker: 1 for the state it is in (closed, open, half-open).",
            labels=["server", "state"],
        )
        transitions = CounterMetricFamily(
            "catalyst_circuit_transitions",
            "Circuit breaker transitions, to open (after failures, or a failed trial) and to "
            "closed (a call succeeded).",
            labels=["server", "to"],
        )
        for provider in self.gateway.registry.providers:
            report = provider.health()
            name = provider.name
            kind = "pack" if report.get("kind") == "pack" else "server"
            status = str(report.get("status", ""))
            up.add_metric([name, kind], 1 if status == "ready" else 0)
            tools.add_metric([name], float(report.get("tools", 0) or 0))
            if kind == "pack":
                continue
            for one in SERVER_STATES:
                state.add_metric([name, one], 1 if status == one else 0)
            count = (report.get("restarts") or 0) + (report.get("per_user_restarts") or 0)
            restarts.add_metric([name], float(count))
            if "per_user_instances" in report:
                users.add_metric([name], float(report["per_user_instances"]))
            if "circuit" in report:
                for one in CIRCUIT_STATES:
                    circuit.add_metric([name, one], 1 if report["circuit"] == one else 0)
            breakers = breakers_of(provider)
            if breakers:
                transitions.add_metric([name, "open"], float(sum(b.opens for b in breakers)))
                transitions.add_metric([name, "closed"], float(sum(b.closes for b in breakers)))
        yield from (up, state, tools, restarts, users, circuit, transitions)

    def _sessions(self) -> Iterator[Metric]:
        store = self.gateway.sessions
        held = GaugeMetricFamily("catalyst_legacy_sessions", "Legacy-era sessions held now.")
        held.add_metric([], len(store))
        yield held
        evicted = CounterMetricFamily(
            "catalyst_legacy_sessions_evicted",
            "Idle legacy sessions closed to make room for a new one (a session cap reached).",
        )
        evicted.add_metric([], store.evicted)
        yield evicted
        refused = CounterMetricFamily(
            "catalyst_legacy_sessions_refused",
            "initialize requests refused because a session cap was reached and every session "
            "was busy.",
        )
        refused.add_metric([], store.refused)
        yield refused

    def _packs(self) -> Iterator[Metric]:
        packs = self.gateway.packs
        if packs is None:
            return
        served = GaugeMetricFamily("catalyst_packs_served", "Knowledge packs served.")
        served.add_metric([], len(packs.providers))
        yield served
        problems = GaugeMetricFamily(
            "catalyst_pack_problems", "Problems of pack files that are not served as written."
        )
        problems.add_metric([], len(packs.problems))
        yield problems
        reloads = CounterMetricFamily(
            "catalyst_pack_reloads",
            "Pack files reloaded after an edit, by outcome (ok; failed: the last good version "
            "keeps serving).",
            labels=["outcome"],
        )
        for outcome in ("ok", "failed"):
            reloads.add_metric([outcome], packs.reloads[outcome])
        yield reloads

    def _audit(self) -> Iterator[Metric]:
        audit = self.gateway.access.audit
        if audit is None:
            return
        queued = GaugeMetricFamily(
            "catalyst_audit_queue_depth", "Audit records waiting to be committed."
        )
        queued.add_metric([], audit.queued)
        yield queued
        dropped = CounterMetricFamily(
            "catalyst_audit_dropped_records",
            "Audit records lost (queue full while the database was down, or unwritten at stop).",
        )
        dropped.add_metric([], audit.dropped)
        yield dropped
        writable = GaugeMetricFamily(
            "catalyst_audit_writable", "0 while the audit trail cannot be written."
        )
        writable.add_metric([], 1 if audit.writable else 0)
        yield writable


class StateMirror:
    """Multiprocess mode: copies collectors' samples to ``liveall`` gauges (one series per
    worker, labelled ``pid``) that every worker's scrape reads from the shared folder."""

    def __init__(self, *collectors: Collector) -> None:
        self.collectors = collectors
        self._gauges: dict[str, Gauge] = {}
        self._task: asyncio.Task[None] | None = None

    def refresh(self) -> None:
        for family in (f for c in self.collectors for f in c.collect()):
            for sample in family.samples:
                labels = sorted(sample.labels)
                gauge = self._gauges.get(sample.name)
                if gauge is None:
                    gauge = Gauge(
                        sample.name,
                        family.documentation,
                        labels,
                        registry=None,
                        multiprocess_mode="liveall",
                    )
                    self._gauges[sample.name] = gauge
                target = gauge.labels(*(sample.labels[k] for k in labels)) if labels else gauge
                target.set(sample.value)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(Exception):  # a half-built gateway: the next round
                self.refresh()
            await asyncio.sleep(MIRROR_SECONDS)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
