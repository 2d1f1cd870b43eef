"""OpenTelemetry traces: a span per client request and per upstream call, one trace end to end.

Off unless an OTLP endpoint is configured (``telemetry.otlp_endpoint`` or the standard
``OTEL_EXPORTER_OTLP_*`` variables): :func:`build_provider` makes the SDK's ``TracerProvider``
(OTLP/HTTP exporter behind a batching processor, sampler parent-based with
``telemetry.sample_ratio`` or the ``OTEL_TRACES_SAMPLER*`` variables, resource from
``OTEL_SERVICE_NAME``/``OTEL_RESOURCE_ATTRIBUTES``, else ``service.name=catalyst``), and
:func:`activate` makes it the tracer the request path uses. While nothing is active every hook
here is one ``None`` check.

Names and attributes follow the OpenTelemetry semantic conventions for MCP (``mcp.method.name``,
``mcp.protocol.version``, ``mcp.session.id``, ``jsonrpc.request.id``, ``gen_ai.operation.name``
``execute_tool``, ``gen_ai.tool.name``, ``gen_ai.prompt.name``, ``mcp.resource.uri``,
``error.type``, ``rpc.response.status_code``, ``network.transport``, ``server.address``): span
``{method} {tool or prompt}``, kind SERVER for what a client asks, CLIENT for what the gateway
asks an upstream. Arguments and results are never recorded (they may hold secrets).

Context travels as W3C trace context: in from a client's ``params._meta`` ``traceparent`` /
``tracestate`` (the parent, as the conventions ask) or its HTTP ``traceparent`` header (the
parent when ``_meta`` has none, else a link), out to every upstream in ``params._meta`` (both
eras, stdio too) and, over HTTP, in the ``traceparent`` header as well, for every sampled
request (an unsampled one passes nothing on, so it costs the call path nothing). Background work
(list fetches, liveness probes) outside any request is not traced.

With the gateway's own provider the ratio is tested before the SDK is asked
(:mod:`~catalyst_mcp.observability.sampling`): a request left out gets no span object at all,
only the trace and span ids its log lines carry (in
:data:`~catalyst_mcp.observability.logs.REQUEST`); it is not made the current OpenTelemetry
context either, so :func:`recording_span` is how the gateway asks whether the request it serves
is recorded.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from catalyst_mcp import __version__
from catalyst_mcp.observability.logs import REQUEST

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider

    from catalyst_mcp.context import CallContext
    from catalyst_mcp.observability.config import TelemetrySettings
    from catalyst_mcp.observability.sampling import FastPath
    from catalyst_mcp.upstreams.session import UpstreamSession

__all__ = [
    "PROPAGATOR",
    "TRACE_KEYS",
    "UpstreamCall",
    "activate",
    "active",
    "build_provider",
    "deactivate",
    "end_server_span",
    "error_type",
    "recording_span",
    "shutdown",
    "start_server_span",
    "upstream_call",
]

log = logging.getLogger("catalyst.tracing")

PROPAGATOR = TraceContextTextMapPropagator()
TRACE_KEYS = ("traceparent", "tracestate")
SERVICE_NAME = "catalyst"
NAMED = {"tools/call": "gen_ai.tool.name", "prompts/get": "gen_ai.prompt.name"}
# network.protocol.name and network.transport of each inbound transport
INBOUND = {
    "streamable-http": ("http", "tcp"),
    "sse": ("http", "tcp"),
    "websocket": ("websocket", "tcp"),
    "stdio": (None, "pipe"),
    "rest": ("http", "tcp"),  # the REST API for tools (docs/api.md)
}

_tracer: trace.Tracer | None = None
_fast: FastPath | None = None  # the ratio tested before the SDK is asked (sampling.py)


def active() -> trace.Tracer | None:
    """The tracer of the request path, or None while tracing is off."""
    return _tracer


def activate(provider: TracerProvider) -> None:
    """Trace the request path with ``provider`` (one per process, like OpenTelemetry's own)."""
    from catalyst_mcp.observability.sampling import fast_path

    global _tracer, _fast
    _tracer = provider.get_tracer("catalyst_mcp", __version__)
    _fast = fast_path(provider)


def deactivate() -> None:
    global _tracer, _fast
    _tracer = None
    _fast = None


def recording_span() -> trace.Span | None:
    """The current span if it is recorded (not that of a request the sampler left out)."""
    served = REQUEST.get()
    if served is not None and served[3] is not None:
        return None  # a request left out: the current context is not its own
    span = trace.get_current_span()
    return span if span.is_recording() else None


def build_provider(
    settings: TelemetrySettings, environ: Mapping[str, str]
) -> TracerProvider | None:
    """The SDK provider exporting to the configured OTLP endpoint; None when tracing is off."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    endpoint = settings.endpoint()
    if endpoint is None:
        if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() in ("none", ""):
            return None
        if not (
            environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        ):
            return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    from catalyst_mcp.observability.sampling import new_provider

    resource = Resource.create({"service.version": __version__})
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    if settings.sample_ratio is not None:  # parent-based, the ratio tested before the SDK
        provider = new_provider(settings.sample_ratio, resource)
    else:  # the SDK reads OTEL_TRACES_SAMPLER(_ARG); parentbased_always_on by default
        provider = TracerProvider(resource=resource)
    exporter = OTLPSpanExporter(
        endpoint=endpoint,  # None: from the OTEL_EXPORTER_OTLP_* variables
        headers=dict(settings.headers) or None,
        timeout=settings.timeout_seconds,
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


async def shutdown(provider: TracerProvider, timeout: float = 5.0) -> None:
    """Export what is buffered (within ``timeout`` s), then stop the provider, off the loop."""

    def stop() -> None:
        provider.force_flush(int(timeout * 1000))
        provider.shutdown()

    try:
        await asyncio.wait_for(asyncio.to_thread(stop), timeout + 1)
    except (TimeoutError, Exception) as exc:  # a collector that is down must not hold a stop
        log.warning("tracing: spans not exported at stop (%s)", type(exc).__name__)


def error_type(exc: BaseException) -> str:
    """``error.type`` of a failure: its JSON-RPC code when it has one, else its class."""
    code = getattr(exc, "code", None)
    if isinstance(code, int) and not isinstance(code, bool):
        return str(code)
    return type(exc).__name__


# ---- inbound -----------------------------------------------------------------------------------


class _HeaderGetter:
    """Reads W3C trace context from an ASGI header map (lower-case byte names and values)."""

    def get(self, carrier: Mapping[bytes, bytes], key: str) -> list[str] | None:
        value = carrier.get(key.encode("latin-1"))
        return None if value is None else [value.decode("latin-1")]

    def keys(self, carrier: Mapping[bytes, bytes]) -> list[str]:
        return [k.decode("latin-1") for k in carrier]


_HEADERS = _HeaderGetter()


def _remote(ctx: otel_context.Context) -> trace.SpanContext | None:
    found = trace.get_current_span(ctx).get_span_context()
    return found if found.is_valid else None


def start_server_span(
    tracer: trace.Tracer,
    ctx: CallContext,
    params: Mapping[str, Any],
    transport: str,
    headers: Mapping[bytes, bytes] | None,
) -> tuple[trace.Span | None, object, tuple[int, int] | None]:
    """Start the span of one client request as the current one: returns it, the token that
    :func:`end_server_span` detaches, and None; or, for a request the sampler leaves out before
    any span is made (sampling.py), None, None and its (trace id, span id)."""
    parent: otel_context.Context | None = None
    caller: trace.SpanContext | None = None
    links: list[Link] = []
    meta = params.get("_meta")
    if isinstance(meta, dict) and "traceparent" in meta:
        carrier = {k: meta[k] for k in TRACE_KEYS if isinstance(meta.get(k), str)}
        parent = PROPAGATOR.extract(carrier)
        caller = _remote(parent)
        if caller is None:
            parent = None
    if headers is not None and b"traceparent" in headers:
        from_header = PROPAGATOR.extract(headers, getter=_HEADERS)  # type: ignore[arg-type]
        remote = _remote(from_header)
        if remote is not None:
            if parent is None:
                parent, caller = from_header, remote
            else:  # _meta is the parent (one HTTP request is not one MCP request)
                links.append(Link(remote))
    fast = _fast
    if fast is not None:
        if caller is None:
            left_out = fast.root()  # None: kept, and the SDK makes its span with the id drawn
            if left_out is not None:
                return None, None, left_out
        elif not caller.trace_flags.sampled:  # ParentBased follows the caller: not recorded
            return None, None, fast.follow(caller.trace_id)
    method = ctx.method
    target = params.get("name") if method in NAMED else None
    name = f"{method} {target}" if isinstance(target, str) else method
    span = tracer.start_span(
        name,
        context=parent if parent is not None else otel_context.Context(),
        kind=SpanKind.SERVER,
        links=links,
    )
    if span.is_recording():
        protocol, network = INBOUND.get(transport, (None, "tcp"))
        attributes: dict[str, Any] = {
            "mcp.method.name": method,
            "mcp.protocol.version": ctx.protocol_version,
            "network.transport": network,
            "catalyst.transport": transport,
            "catalyst.era": ctx.era,
            "enduser.id": ctx.identity.subject,
        }
        if protocol is not None:
            attributes["network.protocol.name"] = protocol
        if ctx.request_id is not None:
            attributes["jsonrpc.request.id"] = str(ctx.request_id)
        if ctx.session_id is not None:
            attributes["mcp.session.id"] = ctx.session_id
        _target_attributes(attributes, method, params)
        span.set_attributes(attributes)
    token = otel_context.attach(trace.set_span_in_context(span))
    return span, token, None


def end_server_span(
    span: trace.Span, token: object, error: BaseException | None, tool_error: bool
) -> None:
    """End a request's span (ERROR with ``error.type`` when it failed) and detach it."""
    try:
        if span.is_recording():
            if error is not None:
                kind = error_type(error)
                span.set_attribute("error.type", kind)
                if kind.lstrip("-").isdigit():
                    span.set_attribute("rpc.response.status_code", kind)
                span.set_status(Status(StatusCode.ERROR, _status_text(error)))
            elif tool_error:
                span.set_attribute("error.type", "tool_error")
                span.set_status(Status(StatusCode.ERROR))
        span.end()
    finally:
        otel_context.detach(token)  # type: ignore[arg-type]


def _status_text(error: BaseException) -> str:
    message = getattr(error, "message", None)  # CatalystError: written for clients
    return message[:500] if isinstance(message, str) else type(error).__name__


def _target_attributes(attributes: dict[str, Any], method: str, params: Mapping[str, Any]) -> None:
    key = NAMED.get(method)
    if key is not None:
        name = params.get("name")
        if isinstance(name, str):
            attributes[key] = name
        if method == "tools/call":
            attributes["gen_ai.operation.name"] = "execute_tool"
    elif method == "resources/read":
        uri = params.get("uri")
        if isinstance(uri, str):
            attributes["mcp.resource.uri"] = uri[:2048]


# ---- outbound ----------------------------------------------------------------------------------


class UpstreamCall:
    """One traced request to an upstream: ``params`` and ``headers`` carry the trace context;
    :meth:`finish` ends its span."""

    __slots__ = ("headers", "params", "span")

    def __init__(
        self, span: trace.Span | None, params: dict[str, Any], headers: dict[str, str] | None
    ) -> None:
        self.span = span
        self.params = params
        self.headers = headers

    def finish(self, result: Mapping[str, Any] | None, error: BaseException | None) -> None:
        span = self.span
        if span is None:
            return
        if error is not None:
            kind = "timeout" if type(error).__name__ == "UpstreamTimeout" else error_type(error)
            if isinstance(error, asyncio.CancelledError):
                kind = "cancelled"
            span.set_attribute("error.type", kind)
            if kind.lstrip("-").isdigit():
                span.set_attribute("rpc.response.status_code", kind)
            span.set_status(Status(StatusCode.ERROR, _status_text(error)))
        elif result is not None and result.get("isError") is True:
            span.set_attribute("error.type", "tool_error")
            span.set_status(Status(StatusCode.ERROR))
        span.end()


def upstream_call(
    session: UpstreamSession,
    method: str,
    params: dict[str, Any],
    headers: dict[str, str] | None,
) -> UpstreamCall | None:
    """The traced form of one request to an upstream, or None when it is not traced: tracing
    off, no client request being served (background work), or that request not sampled."""
    tracer = _tracer
    if tracer is None:
        return None
    if recording_span() is None:
        # background work, or a request not sampled: nothing recorded here, nothing passed on
        # (the hot path at low sampling ratios; decision 017)
        return None
    name = params.get("name") if method in NAMED else None
    span = tracer.start_span(
        f"{method} {name}" if isinstance(name, str) else method, kind=SpanKind.CLIENT
    )
    if span.is_recording():
        span.set_attributes(_client_attributes(session, method, params))
    carry_in = trace.set_span_in_context(span)
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context=carry_in)
    meta = params.get("_meta")
    params = {**params, "_meta": {**meta, **carrier} if isinstance(meta, dict) else carrier}
    if getattr(session.transport, "url", None) is not None:  # HTTP: the header too
        headers = {**headers, **carrier} if headers else carrier
    return UpstreamCall(span, params, headers)


def _client_attributes(
    session: UpstreamSession, method: str, params: Mapping[str, Any]
) -> dict[str, Any]:
    transport = session.transport
    attributes: dict[str, Any] = {
        "mcp.method.name": method,
        "mcp.protocol.version": session.protocol_version,
        "catalyst.server": session.server,
        "catalyst.era": session.era,
    }
    _target_attributes(attributes, method, params)
    url = getattr(transport, "url", None)
    if isinstance(url, str):
        attributes["network.transport"] = "tcp"
        attributes["network.protocol.name"] = "http"
        parts = urlsplit(url)
        if parts.hostname:
            attributes["server.address"] = parts.hostname
            attributes["server.port"] = parts.port or (443 if parts.scheme == "https" else 80)
    else:
        attributes["network.transport"] = "pipe"
    session_id = getattr(transport, "session_id", None)
    if isinstance(session_id, str):
        attributes["mcp.session.id"] = session_id
    return attributes
