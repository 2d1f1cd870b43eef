"""Ratio sampling decided before the SDK is asked, so that a request left out costs no span.

With ``telemetry.sample_ratio`` below 1 most requests are not recorded, yet the SDK builds
something for each: a trace id, the sampler's verdict (a ``SamplingResult``), a span context and
a non-recording span, attached as the current context and detached again; about 50,000
instructions, more than the rest of the hooks together (decision 017). The gateway's own
provider (:func:`new_provider`) therefore lets :mod:`~catalyst_mcp.observability.tracing`
decide first, the way the SDK's sampler would (:class:`FastPath`):

* a request without a caller's trace context gets a random trace id, and the ratio's test on it
  (``TraceIdRatioBased``: its low 64 bits under the bound). Left out, the request keeps only
  the trace id and a span id, for its log lines; kept, the SDK makes the span with *that* trace
  id (:class:`PrimedIds` hands it over), and its sampler, which tests the same bits, keeps it
  too;
* a caller's context that is not sampled is followed as ``ParentBased`` does (not recorded),
  without asking the SDK; a sampled one goes to the SDK.

What is recorded and exported is therefore what the SDK alone would record. Providers made
elsewhere (an embedding application's, ``OTEL_TRACES_SAMPLER``) are asked for every request.
"""

from __future__ import annotations

import threading
from random import getrandbits
from typing import TYPE_CHECKING

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

if TYPE_CHECKING:
    from opentelemetry.sdk.resources import Resource

__all__ = ["LOW_BITS", "FastPath", "PrimedIds", "RatioSampler", "fast_path", "new_provider"]

LOW_BITS = (1 << 64) - 1  # what TraceIdRatioBased tests of a trace id


class RatioSampler(ParentBased):
    """``ParentBased(TraceIdRatioBased(ratio))``, its root sampler at hand (:attr:`root`)."""

    def __init__(self, ratio: float) -> None:
        self.root = TraceIdRatioBased(ratio)
        super().__init__(self.root)


class PrimedIds(RandomIdGenerator):
    """Random ids, except that the next trace id of this thread may be handed in."""

    def __init__(self) -> None:
        self._next = threading.local()

    def prime(self, trace_id: int) -> None:
        """The next :meth:`generate_trace_id` of this thread returns ``trace_id`` (0: none)."""
        self._next.trace_id = trace_id

    def generate_trace_id(self) -> int:
        primed: int = getattr(self._next, "trace_id", 0)
        if primed:
            self._next.trace_id = 0
            return primed
        return self.fresh_trace_id()

    def fresh_trace_id(self) -> int:
        return super().generate_trace_id()


class FastPath:
    """The ratio test of a provider made by :func:`new_provider`."""

    __slots__ = ("bound", "ids")

    def __init__(self, bound: int, ids: PrimedIds) -> None:
        self.bound = bound
        self.ids = ids

    def root(self) -> tuple[int, int] | None:
        """A new trace: its (trace id, span id) if the ratio leaves it out, else None (its trace
        id primed: the SDK makes the span with it). Ids as the SDK's ``RandomIdGenerator``
        draws them (``random.getrandbits``, never 0)."""
        trace_id = getrandbits(128) or self.ids.fresh_trace_id()
        if trace_id & LOW_BITS < self.bound:
            self.ids.prime(trace_id)
            return None
        return trace_id, getrandbits(64) or self.ids.generate_span_id()

    def follow(self, trace_id: int) -> tuple[int, int]:
        """The (trace id, span id) of a request whose caller's context is not sampled."""
        return trace_id, getrandbits(64) or self.ids.generate_span_id()


def new_provider(ratio: float, resource: Resource | None = None) -> TracerProvider:
    """A provider sampling ``ratio`` of new traces, parent-based, that :func:`fast_path` knows."""
    return TracerProvider(sampler=RatioSampler(ratio), resource=resource, id_generator=PrimedIds())


def fast_path(provider: TracerProvider) -> FastPath | None:
    """The fast path of ``provider``, if :func:`new_provider` made it."""
    sampler, ids = provider.sampler, provider.id_generator
    if isinstance(sampler, RatioSampler) and isinstance(ids, PrimedIds):
        return FastPath(sampler.root.bound, ids)
    return None
