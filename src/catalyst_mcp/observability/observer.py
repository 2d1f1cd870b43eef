"""The request path's one observability hook: metrics, a trace span and the log context.

The dispatcher opens a :class:`Watch` around every request it routes to the MCP server
(:meth:`Observer.begin`), tells it how the request ended, and closes it. While the watch is
open, log lines carry the request's fields (:data:`~catalyst_mcp.observability.logs.REQUEST`)
and, with tracing on, its span is the current one, so upstream calls become its children. When
it closes, the request is counted by method, era, transport and outcome, and timed.

Requests the dispatcher answers itself (``initialize``, ``ping``, ``logging/setLevel``,
subscriptions) are only counted (:meth:`Observer.count`).

Outcomes: ``ok``; ``tool_error`` (a tool result with ``isError``); ``refused`` (access control:
denied, rate-limited, unauthenticated); ``error`` (any other error answer); ``cancelled``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from catalyst_mcp.errors import AccessError
from catalyst_mcp.observability import tracing
from catalyst_mcp.observability.logs import REQUEST

if TYPE_CHECKING:
    from contextvars import Token

    from opentelemetry.trace import Span

    from catalyst_mcp.context import CallContext
    from catalyst_mcp.observability.logs import RequestLog
    from catalyst_mcp.observability.metrics import Metrics

__all__ = ["Observer", "Watch", "outcome_of"]

TARGETS = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}


def outcome_of(error: BaseException) -> str:
    """The ``outcome`` label of a request that failed with ``error``."""
    return "refused" if isinstance(error, AccessError) else "error"


class Observer:
    """Opens a :class:`Watch` per request; ``metrics`` None: nothing is counted."""

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics

    def begin(
        self,
        ctx: CallContext,
        params: Mapping[str, Any],
        transport: str,
        headers: Mapping[bytes, bytes] | None = None,
    ) -> Watch:
        """Start watching a request (``headers``: its HTTP headers, for a ``traceparent``)."""
        return Watch(self, ctx, params, transport, headers)

    def count(self, method: str, era: str, transport: str, outcome: str) -> None:
        """Count a request the dispatcher answered itself (no span, no timing)."""
        metrics = self.metrics
        if metrics is not None:
            metrics.count(method, era, transport, outcome)


class Watch:
    """One request being served; :meth:`end` must be called once, whatever happens."""

    __slots__ = (
        "ctx",
        "error",
        "log_token",
        "observer",
        "outcome",
        "span",
        "span_token",
        "started",
        "transport",
    )

    def __init__(
        self,
        observer: Observer,
        ctx: CallContext,
        params: Mapping[str, Any],
        transport: str,
        headers: Mapping[bytes, bytes] | None,
    ) -> None:
        self.observer = observer
        self.ctx = ctx
        self.transport = transport
        self.outcome = "ok"
        self.error: BaseException | None = None
        self.started = time.perf_counter() if observer.metrics is not None else 0.0
        tracer = tracing.active()
        self.span: Span | None = None
        self.span_token: object = None
        unsampled: tuple[int, int] | None = None
        if tracer is not None:
            self.span, self.span_token, unsampled = tracing.start_server_span(
                tracer, ctx, params, transport, headers
            )
        field = TARGETS.get(ctx.method)
        target = params.get(field) if field is not None else None
        served: RequestLog = (
            ctx,
            target if isinstance(target, str) else None,
            transport,
            unsampled,
        )
        self.log_token: Token[RequestLog | None] = REQUEST.set(served)

    def failed(self, error: BaseException) -> None:
        self.outcome = outcome_of(error)
        self.error = error

    def cancelled(self) -> None:
        self.outcome = "cancelled"

    def succeeded(self, result: Mapping[str, Any]) -> None:
        if result.get("isError") is True:
            self.outcome = "tool_error"

    def end(self) -> None:
        try:
            span = self.span
            if span is not None:
                tracing.end_server_span(
                    span, self.span_token, self.error, self.outcome == "tool_error"
                )
            metrics = self.observer.metrics
            if metrics is not None:
                ctx = self.ctx
                metrics.request(
                    ctx.method,
                    ctx.era,
                    self.transport,
                    self.outcome,
                    time.perf_counter() - self.started,
                )
        finally:
            REQUEST.reset(self.log_token)
