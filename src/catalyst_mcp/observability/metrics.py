"""The metrics the request path counts, on ``prometheus-client``, with bounded label sets.

One :class:`Metrics` per gateway. What happens on the request path is counted here as it
happens (requests, tool calls and their latency, refusals, failed authentications, audit
writes); what the gateway *is* (calls in flight, upstream states, restarts, circuit breakers,
sessions, packs, the audit queue) is read when ``/metrics`` is scraped
(:mod:`catalyst_mcp.observability.statemetrics`), so it costs the request path nothing.

Label values are bounded: ``method`` is one of the MCP methods the gateway serves (anything
else is ``other``), ``server`` a configured server or pack, ``tool`` one of the first
``metrics.max_tool_labels`` tool names called (later ones are ``other``; only names that
resolved to a tool count, so a client cannot make labels up), ``outcome``, ``era``,
``transport`` and ``reason`` fixed sets.

The request path's four families (requests and their duration, tool calls and theirs) are
counted first in plain Python objects, one :class:`Tally` per label combination, found with one
dictionary lookup per call: an addition per counter, an addition and a bucket's increment per
histogram, no locks (the request path runs on one event loop). They are written into
prometheus-client's values whenever the registry is read (``/metrics``, the dashboard), so
every scrape sees every call served before it. That costs a call a fraction of
prometheus-client's own ``inc``/``observe`` (three method calls and a lock per value, and a
walk through the buckets; decision 017). In multiprocess mode (below) calls go to
prometheus-client at once, since another worker's scrape may read this one's file any time.

Several worker processes: with ``PROMETHEUS_MULTIPROC_DIR`` set (before the gateway starts),
prometheus-client's multiprocess mode keeps every process's values in files in that folder and
any worker's ``/metrics`` adds them up (docs/observability.md).
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.metrics_core import Metric

__all__ = [
    "KNOWN_METHODS",
    "LATENCY_BUCKETS",
    "MULTIPROCESS_ENV",
    "OTHER",
    "Metrics",
    "Tally",
    "TimeTally",
    "multiprocess_dir",
]

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
OTHER = "other"
MAX_RULE_LABELS = 200  # rule ids with a label of their own (rules are few and the admin's)
# Every method a client may send that the gateway serves (both eras); others count as "other".
KNOWN_METHODS = frozenset(
    {
        "initialize",
        "ping",
        "logging/setLevel",
        "resources/subscribe",
        "resources/unsubscribe",
        "subscriptions/listen",
        "server/discover",
        "tools/list",
        "tools/call",
        "prompts/list",
        "prompts/get",
        "resources/list",
        "resources/read",
        "resources/templates/list",
        "completion/complete",
    }
)
# Seconds: a relayed call takes a fraction of a millisecond to a minute (the call timeout).
LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
AUDIT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_dir() -> str | None:
    """The multiprocess folder of prometheus-client, if this process runs in that mode."""
    return os.environ.get(MULTIPROCESS_ENV) or None


class Tally:
    """The count of one label combination of a counter, added to on the request path and
    written into ``child`` (prometheus-client's) by :meth:`publish`."""

    __slots__ = ("child", "published", "value")

    def __init__(self, child: Counter) -> None:
        self.child = child
        self.value = 0.0
        self.published = 0.0

    def publish(self) -> None:
        """Set the child's value to the count (prometheus-client's public API only adds; only
        this tally writes to its child, so setting the value it keeps is exact)."""
        if self.value != self.published:
            self.published = self.value
            self.child._value.set(self.value)


class TimeTally:
    """The observations of one label combination of a histogram: their ``sum`` and one count
    per bucket of :data:`LATENCY_BUCKETS`, then +Inf (``buckets``); see :class:`Tally`."""

    __slots__ = ("buckets", "child", "published", "sum")

    def __init__(self, child: Histogram) -> None:
        self.child = child
        self.sum = 0.0
        self.buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self.published = 0

    def publish(self) -> None:
        """Set the child's sum and bucket counts (each bucket counted apart, as
        prometheus-client keeps them until it collects) to the tally's."""
        count = sum(self.buckets)
        if count != self.published:
            self.published = count
            child = self.child
            child._sum.set(self.sum)
            for held, n in zip(child._buckets, self.buckets, strict=True):
                held.set(n)


class _Registry(CollectorRegistry):
    """A registry that has the request path's tallies published before every read."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(auto_describe=False)
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        self._metrics.publish()
        yield from super().collect()


class Metrics:
    """The counted metrics of one gateway, registered in :attr:`registry` (single process) or
    written to the multiprocess folder (then :attr:`registry` gathers every process's files)."""

    def __init__(self, max_tool_labels: int = 500) -> None:
        self.max_tool_labels = max_tool_labels
        self.registry: CollectorRegistry = _Registry(self)
        self.multiprocess = multiprocess_dir() is not None
        into = None if self.multiprocess else self.registry
        self.requests = Counter(
            "catalyst_requests",
            "Client requests served, by MCP method, protocol era, transport and outcome "
            "(ok, error, tool_error, refused, cancelled).",
            ["method", "era", "transport", "outcome"],
            registry=into,
        )
        self.request_seconds = Histogram(
            "catalyst_request_duration_seconds",
            "Time to serve a client request, by MCP method and transport.",
            ["method", "transport"],
            buckets=LATENCY_BUCKETS,
            registry=into,
        )
        self.tool_calls = Counter(
            "catalyst_tool_calls",
            "tools/call requests that reached a server or pack, by server, tool and outcome "
            "(ok, tool_error, error, refused).",
            ["server", "tool", "outcome"],
            registry=into,
        )
        self.tool_seconds = Histogram(
            "catalyst_tool_call_duration_seconds",
            "Time a tools/call took, access checks and the server's answer included, by "
            "server and tool.",
            ["server", "tool"],
            buckets=LATENCY_BUCKETS,
            registry=into,
        )
        self.refusals = Counter(
            "catalyst_refusals",
            "Requests refused by access control: denied (RBAC or key scopes), rate_limited, "
            "unauthenticated.",
            ["reason"],
            registry=into,
        )
        self.auth_failures = Counter(
            "catalyst_auth_failures",
            "Failed authentications, by reason: missing, malformed, api_key (unknown, revoked "
            "or expired key), token_expired, token (another invalid bearer token), "
            "not_accepted (a kind of credential this gateway does not take).",
            ["reason"],
            registry=into,
        )
        self.audit_write_seconds = Histogram(
            "catalyst_audit_write_seconds",
            "Time to commit one batch of audit records.",
            buckets=AUDIT_BUCKETS,
            registry=into,
        )
        self.audit_batch_records = Counter(
            "catalyst_audit_written_records", "Audit records committed.", registry=into
        )
        self.rule_matches = Counter(
            "catalyst_rule_matches",
            "Policy rules that applied to a tools/call, by rule id (the first "
            f"{MAX_RULE_LABELS} ids seen; later ones are 'other') and action.",
            ["rule", "action"],
            registry=into,
        )
        self.cache_lookups = Counter(
            "catalyst_cache_lookups",
            "Result cache lookups of tools/call (tools whose results are cached), by server "
            "and result: hit (with the layer that had it: memory, redis; flight: an identical call "
            "in flight) or miss (layer none).",
            ["server", "result", "layer"],
            registry=into,
        )
        if self.multiprocess:
            from prometheus_client import multiprocess

            multiprocess.MultiProcessCollector(self.registry)  # type: ignore[no-untyped-call]
        # the request path's tallies: by what a call names (method, tool...), and by the label
        # values of their child (names folded into "other" share one)
        self._requests: dict[tuple[str, str, str, str], tuple[Tally, TimeTally]] = {}
        self._tools: dict[str, str] = {}  # tool name -> its label (itself, or "other")
        self._calls: dict[tuple[str, str, str], tuple[Tally, TimeTally]] = {}
        self._counts: dict[tuple[Counter, tuple[str, ...]], Tally] = {}
        self._times: dict[tuple[Histogram, tuple[str, ...]], TimeTally] = {}
        self._reasons: dict[tuple[int, str], Counter] = {}
        self._rules: dict[tuple[str, str], Counter] = {}
        self._cache: dict[tuple[str, str | None], Counter] = {}

    # ---- the request path --------------------------------------------------------------------

    def request(self, method: str, era: str, transport: str, outcome: str, seconds: float) -> None:
        """One client request served."""
        key = (method, era, transport, outcome)
        tallies = self._requests.get(key)
        if tallies is None:
            tallies = self._bind_request(key)
        counted, timed = tallies
        if self.multiprocess:  # another worker's scrape may read this process's file any time
            counted.child.inc()
            timed.child.observe(seconds)
            return
        counted.value += 1
        timed.sum += seconds
        timed.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def count(self, method: str, era: str, transport: str, outcome: str) -> None:
        """One client request the dispatcher answered itself (counted, not timed)."""
        key = (method, era, transport, outcome)
        tallies = self._requests.get(key)
        if tallies is None:
            tallies = self._bind_request(key)
        if self.multiprocess:
            tallies[0].child.inc()
        else:
            tallies[0].value += 1

    def _bind_request(self, key: tuple[str, str, str, str]) -> tuple[Tally, TimeTally]:
        method, era, transport, outcome = key
        label = method if method in KNOWN_METHODS else OTHER
        tallies = (
            self._count(self.requests, (label, era, transport, outcome)),
            self._time(self.request_seconds, (label, transport)),
        )
        if label == method:  # made-up method names are not remembered
            self._requests[key] = tallies
        return tallies

    def _count(self, family: Counter, labels: tuple[str, ...]) -> Tally:
        """The tally of ``family``'s child with ``labels`` (one per child), made on first use."""
        tally = self._counts.get((family, labels))
        if tally is None:
            tally = self._counts[(family, labels)] = Tally(family.labels(*labels))
        return tally

    def _time(self, family: Histogram, labels: tuple[str, ...]) -> TimeTally:
        tally = self._times.get((family, labels))
        if tally is None:
            tally = self._times[(family, labels)] = TimeTally(family.labels(*labels))
        return tally

    def publish(self) -> None:
        """Write every tally into prometheus-client's values (done before the registry is read;
        in multiprocess mode calls are written at once instead)."""
        if self.multiprocess:
            return
        for counted in list(self._counts.values()):
            counted.publish()
        for timed in list(self._times.values()):
            timed.publish()

    def tool_call(self, server: str, tool: str, outcome: str, started: float) -> None:
        """One ``tools/call`` of ``tool`` (public name) on ``server`` ended with ``outcome``
        (``started``: its ``time.perf_counter()`` at the start)."""
        seconds = time.perf_counter() - started
        tallies = self._calls.get((server, tool, outcome))
        if tallies is None:
            tallies = self._bind_call(server, tool, outcome)
        counted, timed = tallies
        if self.multiprocess:
            counted.child.inc()
            timed.child.observe(seconds)
            return
        counted.value += 1
        timed.sum += seconds
        timed.buckets[bisect_left(LATENCY_BUCKETS, seconds)] += 1

    def tool_label(self, tool: str) -> str:
        """The ``tool`` label of ``tool``: itself while fewer than the cap are known."""
        label = self._tools.get(tool)
        if label is None and tool != OTHER:
            label = tool if len(self._tools) < self.max_tool_labels else OTHER
            if label != OTHER:
                self._tools[tool] = label
        return label or OTHER

    def _bind_call(self, server: str, tool: str, outcome: str) -> tuple[Tally, TimeTally]:
        label = self.tool_label(tool)
        tallies = (
            self._count(self.tool_calls, (server, label, outcome)),
            self._time(self.tool_seconds, (server, label)),
        )
        if label != OTHER or tool == OTHER:  # (names beyond the cap are not kept)
            self._calls[(server, tool, outcome)] = tallies
        return tallies

    def refusal(self, reason: str) -> None:
        self._reason(0, self.refusals, reason).inc()

    def auth_failure(self, reason: str) -> None:
        self._reason(1, self.auth_failures, reason).inc()

    def _reason(self, kind: int, family: Counter, reason: str) -> Counter:
        child = self._reasons.get((kind, reason))
        if child is None:
            child = self._reasons[(kind, reason)] = family.labels(reason)
        return child

    def rule_match(self, rule: str, action: str) -> None:
        """A policy rule (by id) applied to a call with ``action``."""
        child = self._rules.get((rule, action))
        if child is None:
            known = len({r for r, _ in self._rules})
            label = rule if known < MAX_RULE_LABELS else OTHER
            child = self.rule_matches.labels(label, action)
            if label == rule:
                self._rules[(rule, action)] = child
        child.inc()

    def cache_lookup(self, server: str, layer: str | None) -> None:
        """A result cache lookup for a call to ``server``: a hit in ``layer`` (``memory``,
        ``redis``, ``flight``) or a miss (None)."""
        child = self._cache.get((server, layer))
        if child is None:
            result = "miss" if layer is None else "hit"
            child = self._cache[(server, layer)] = self.cache_lookups.labels(
                server, result, layer or "none"
            )
        child.inc()

    # ---- the audit writer --------------------------------------------------------------------

    def audit_written(self, records: int, seconds: float) -> None:
        """One batch of ``records`` audit records committed in ``seconds``."""
        self.audit_write_seconds.observe(seconds)
        self.audit_batch_records.inc(records)
