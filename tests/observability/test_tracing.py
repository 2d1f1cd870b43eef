"""Traces: a SERVER span per client request, a CLIENT span per upstream call, the W3C context
taken from the client (``_meta`` or the HTTP header) and passed on (``_meta``, and the header over
HTTP), so one trace crosses client -> Catalyst -> upstream."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind, StatusCode

from catalyst_mcp.app import Gateway
from catalyst_mcp.observability import tracing
from catalyst_mcp.observability.config import TelemetrySettings
from catalyst_mcp.settings import Settings
from tests.asgiclient import AsgiClient
from tests.conftest import FIXTURES, PYTHON, Process, free_port, wait_for_port
from tests.fakes import FakeProvider, modern_headers, modern_request
from tests.observability.otlpreceiver import otlp_receiver

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
HEADER_SPAN = "1111111111111111"


@pytest.fixture
def exporter() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    memory = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(1.0)))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield provider, memory
    tracing.deactivate()


@pytest_asyncio.fixture
async def traced(
    exporter: tuple[TracerProvider, InMemorySpanExporter],
) -> AsyncIterator[tuple[Gateway, InMemorySpanExporter]]:
    settings = Settings.model_validate({"packs": {"path": None}, "audit": {"enabled": False}})
    gateway = Gateway(settings, [FakeProvider()], tracer_provider=exporter[0])
    await gateway.start()
    yield gateway, exporter[1]
    await gateway.stop()


async def post(
    gateway: Gateway, name: str, headers: dict[str, str] | None = None, **meta: Any
) -> dict[str, Any]:
    message = modern_request("tools/call", {"name": name, "arguments": {}}, **meta)
    sent = {**modern_headers(message), **(headers or {})}
    response = await AsgiClient(gateway.asgi).post("/mcp", message, sent)
    return response.message()


def server_spans(memory: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in memory.get_finished_spans() if s.kind == SpanKind.SERVER]


async def test_a_request_span_follows_the_meta_trace_context(
    traced: tuple[Gateway, InMemorySpanExporter],
) -> None:
    gateway, memory = traced
    answer = await post(gateway, "fake__echo", traceparent=TRACEPARENT, tracestate="k=v")
    (span,) = server_spans(memory)
    assert span.name == "tools/call fake__echo"
    assert format(span.context.trace_id, "032x") == CLIENT_TRACE
    assert span.parent is not None and format(span.parent.span_id, "016x") == CLIENT_SPAN
    assert span.attributes is not None
    assert span.attributes["mcp.method.name"] == "tools/call"
    assert span.attributes["gen_ai.tool.name"] == "fake__echo"
    assert span.attributes["gen_ai.operation.name"] == "execute_tool"
    assert span.attributes["jsonrpc.request.id"] == str(answer["id"])
    assert span.attributes["mcp.protocol.version"] == "2026-07-28"
    assert span.attributes["network.transport"] == "tcp"
    assert span.attributes["network.protocol.name"] == "http"
    assert span.status.status_code == StatusCode.UNSET


async def test_the_http_header_is_the_parent_without_meta_and_a_link_with_it(
    traced: tuple[Gateway, InMemorySpanExporter],
) -> None:
    gateway, memory = traced
    header = {"traceparent": f"00-{CLIENT_TRACE}-{HEADER_SPAN}-01"}
    await post(gateway, "fake__echo", header)
    await post(gateway, "fake__echo", header, traceparent=TRACEPARENT)
    alone, both = server_spans(memory)
    assert alone.parent is not None and format(alone.parent.span_id, "016x") == HEADER_SPAN
    assert both.parent is not None and format(both.parent.span_id, "016x") == CLIENT_SPAN
    assert [format(link.context.span_id, "016x") for link in both.links] == [HEADER_SPAN]


async def test_failures_set_error_type(traced: tuple[Gateway, InMemorySpanExporter]) -> None:
    gateway, memory = traced
    await post(gateway, "fake__fail")  # the server is down: a tool error
    await post(gateway, "fake__nope")  # no such tool: -32602
    tool_error, unknown = server_spans(memory)
    assert tool_error.attributes is not None and unknown.attributes is not None
    assert tool_error.attributes["error.type"] == "tool_error"
    assert tool_error.status.status_code == StatusCode.ERROR
    assert unknown.attributes["error.type"] == "-32602"
    assert unknown.attributes["rpc.response.status_code"] == "-32602"
    assert unknown.status.status_code == StatusCode.ERROR


async def test_log_lines_of_a_request_carry_its_trace(
    traced: tuple[Gateway, InMemorySpanExporter], caplog: pytest.LogCaptureFixture
) -> None:
    from catalyst_mcp.observability.logs import add_request_context

    gateway, memory = traced
    seen: list[dict[str, Any]] = []

    async def logging_tool(method: str, params: dict[str, Any], ctx: Any) -> dict[str, Any]:
        seen.append(add_request_context(None, "info", {}))
        return {"content": []}

    provider = gateway.registry.provider("fake")
    assert isinstance(provider, FakeProvider)
    provider.handler = logging_tool
    await post(gateway, "fake__echo", traceparent=TRACEPARENT)
    (fields,) = seen
    (span,) = server_spans(memory)
    assert fields["trace_id"] == CLIENT_TRACE
    assert fields["span_id"] == format(span.context.span_id, "016x")
    assert fields["tool"] == "fake__echo" and fields["method"] == "tools/call"
    assert fields["user"] == "anonymous" and fields["transport"] == "streamable-http"
    assert add_request_context(None, "info", {}) == {}  # outside a request: nothing added


def test_unsampled_parents_are_followed(
    exporter: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """Parent-based sampling at ratio 0: nothing new is recorded, a sampled caller is."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.0)))
    provider.add_span_processor(SimpleSpanProcessor(memory))

    async def run() -> None:
        settings = Settings.model_validate({"packs": {"path": None}, "audit": {"enabled": False}})
        gateway = Gateway(settings, [FakeProvider()], tracer_provider=provider)
        await gateway.start()
        try:
            await post(gateway, "fake__echo")
            await post(gateway, "fake__echo", traceparent=TRACEPARENT)
            await post(gateway, "fake__echo", traceparent=f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00")
        finally:
            await gateway.stop()

    asyncio.run(run())
    (span,) = memory.get_finished_spans()
    assert span.parent is not None and format(span.parent.span_id, "016x") == CLIENT_SPAN


# ---- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "environ", "on"),
    [
        ({}, {}, False),
        ({"otlp_endpoint": "http://127.0.0.1:4318"}, {}, True),
        ({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({}, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        (
            {},
            {
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
                "OTEL_TRACES_EXPORTER": "none",
            },
            False,
        ),
        ({"otlp_endpoint": "http://127.0.0.1:4318"}, {"OTEL_SDK_DISABLED": "true"}, False),
    ],
    ids=[
        "default-off",
        "setting",
        "otel-endpoint",
        "otel-traces-endpoint",
        "exporter-none",
        "sdk-off",
    ],
)
def test_tracing_is_off_unless_an_endpoint_is_given(
    settings: dict[str, Any], environ: dict[str, str], on: bool
) -> None:
    provider = tracing.build_provider(TelemetrySettings.model_validate(settings), environ)
    assert (provider is not None) is on
    if provider is not None:
        assert provider.resource.attributes["service.name"] == "catalyst"
        provider.shutdown()


def test_sample_ratio_makes_a_parent_based_ratio_sampler() -> None:
    telemetry = TelemetrySettings(otlp_endpoint="http://127.0.0.1:4318", sample_ratio=0.01)
    assert telemetry.endpoint() == "http://127.0.0.1:4318/v1/traces"
    provider = tracing.build_provider(telemetry, {})
    assert provider is not None
    assert isinstance(provider.sampler, ParentBased)
    assert "0.01" in provider.sampler.get_description()
    provider.shutdown()


# ---- end to end: a real OTLP receiver, a real traced upstream ---------------------------------


@pytest.mark.network
@pytest.mark.subprocess
@pytest.mark.parametrize("transport", ["http", "stdio"])
async def test_one_trace_crosses_client_gateway_and_upstream(
    tmp_path: Path, transport: str
) -> None:
    with otlp_receiver() as (receiver, base):
        env = {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": f"{base}/v1/traces"}
        script = str(FIXTURES / "traced_upstream.py")
        upstream: Process | None = None
        if transport == "http":
            port = free_port()
            upstream = Process([PYTHON, script, "http", str(port)], env=env)
            wait_for_port(port)
            server: dict[str, Any] = {"url": f"http://127.0.0.1:{port}/mcp"}
        else:
            server = {"command": PYTHON, "args": [script, "stdio"], "env": env}
        try:
            settings = Settings.model_validate(
                {
                    "servers": {"up": server},
                    "packs": {"path": None},
                    "audit": {"enabled": False},
                    "telemetry": {"otlp_endpoint": base, "sample_ratio": 1.0},
                }
            )
            gateway = Gateway(settings)
            await gateway.start()
            try:
                answer = await post(gateway, "up__echo", traceparent=TRACEPARENT)
                assert "result" in answer, answer
            finally:
                await gateway.stop()  # exports what is buffered
            ours = receiver.wait_for(2, service="catalyst", trace_id=CLIENT_TRACE)
            theirs = receiver.wait_for(1, service="test-upstream", trace_id=CLIENT_TRACE)
        finally:
            if upstream is not None:
                upstream.stop()
    assert all(path == "/v1/traces" for path in receiver.paths)
    (request,) = [s for s in ours if s.kind == 2]  # SERVER
    (call,) = [s for s in ours if s.kind == 3]  # CLIENT
    assert request.name == "tools/call up__echo" and request.parent_id == CLIENT_SPAN
    assert call.name == "tools/call echo" and call.parent_id == request.span_id
    assert call.attributes["catalyst.server"] == "up"
    assert call.attributes["gen_ai.tool.name"] == "echo"
    assert call.attributes["network.transport"] == ("tcp" if transport == "http" else "pipe")
    upstream_call = [s for s in theirs if s.attributes.get("mcp.method.name") == "tools/call"]
    assert len(upstream_call) == 1, theirs
    assert upstream_call[0].parent_id == call.span_id  # the upstream's span is the call's child


async def test_http_upstreams_get_the_context_in_meta_and_in_the_header(
    exporter: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    """What :func:`tracing.upstream_call` adds to a request inside a traced request."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace

    class Transport:
        url = "http://127.0.0.1:1/mcp"
        session_id = None

    class Session:
        transport = Transport()
        server = "up"
        era = "legacy"
        protocol_version = "2025-11-25"

    provider, memory = exporter
    assert tracing.upstream_call(Session(), "tools/call", {"name": "x"}, None) is None  # type: ignore[arg-type]
    tracing.activate(provider)
    assert tracing.upstream_call(Session(), "ping", {}, None) is None  # type: ignore[arg-type]  # no request: background work
    outer = provider.get_tracer("t").start_span("request")
    token = otel_context.attach(trace.set_span_in_context(outer))
    try:
        call = tracing.upstream_call(Session(), "tools/call", {"name": "x"}, {"Mcp-Name": "x"})  # type: ignore[arg-type]
    finally:
        otel_context.detach(token)
    assert call is not None and call.span is not None and call.headers is not None
    traceparent = call.params["_meta"]["traceparent"]
    assert call.headers["traceparent"] == traceparent and call.headers["Mcp-Name"] == "x"
    span_id = format(call.span.get_span_context().span_id, "016x")
    trace_id = format(outer.get_span_context().trace_id, "032x")
    assert traceparent.startswith(f"00-{trace_id}-{span_id}-")
    assert int(traceparent[-2:], 16) & 1  # sampled
    call.finish({"isError": True}, None)
    (ended,) = memory.get_finished_spans()
    assert ended.attributes is not None and ended.attributes["error.type"] == "tool_error"
    assert ended.attributes["server.address"] == "127.0.0.1"
