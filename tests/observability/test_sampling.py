"""The ratio tested before the SDK is asked: the same requests recorded as the SDK alone would
record, the requests left out without a span but with their ids in the log lines."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import SpanKind

from catalyst_mcp.app import Gateway
from catalyst_mcp.observability import tracing
from catalyst_mcp.observability.config import TelemetrySettings
from catalyst_mcp.observability.logs import add_request_context
from catalyst_mcp.observability.sampling import LOW_BITS, fast_path, new_provider
from catalyst_mcp.settings import Settings
from tests.asgiclient import AsgiClient
from tests.fakes import FakeProvider, modern_headers, modern_request

CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"

Seen = list[tuple[dict[str, Any], bool]]


async def start(provider: TracerProvider) -> tuple[Gateway, Seen]:
    """A gateway traced by ``provider``; its echo tool notes each call's log fields and
    whether the gateway thinks the call is recorded."""
    seen: Seen = []

    async def noting(method: str, params: dict[str, Any], ctx: Any) -> dict[str, Any]:
        seen.append((add_request_context(None, "info", {}), tracing.recording_span() is not None))
        return {"content": []}

    settings = Settings.model_validate({"packs": {"path": None}, "audit": {"enabled": False}})
    gateway = Gateway(settings, [FakeProvider(handler=noting)], tracer_provider=provider)
    await gateway.start()
    return gateway, seen


async def post(gateway: Gateway, **meta: Any) -> None:
    message = modern_request("tools/call", {"name": "fake__echo", "arguments": {}}, **meta)
    answer = await AsgiClient(gateway.asgi).post("/mcp", message, modern_headers(message))
    assert "result" in answer.message()


@pytest_asyncio.fixture
async def half() -> AsyncIterator[tuple[Gateway, Seen, InMemorySpanExporter, int]]:
    memory = InMemorySpanExporter()
    provider = new_provider(0.5)
    provider.add_span_processor(SimpleSpanProcessor(memory))
    fast = fast_path(provider)
    assert fast is not None
    gateway, seen = await start(provider)
    yield gateway, seen, memory, fast.bound
    await gateway.stop()


async def test_the_ratio_keeps_what_the_sdk_sampler_keeps(
    half: tuple[Gateway, Seen, InMemorySpanExporter, int],
) -> None:
    gateway, seen, memory, bound = half
    random.seed(17)
    for _ in range(40):
        await post(gateway)
    spans = [s for s in memory.get_finished_spans() if s.kind == SpanKind.SERVER]
    recorded = {format(s.context.trace_id, "032x") for s in spans}
    logged = [fields["trace_id"] for fields, _ in seen]
    assert len(set(logged)) == 40  # every request has a trace id of its own, recorded or not
    kept = {t for t in logged if int(t, 16) & LOW_BITS < bound}
    assert 0 < len(kept) < 40
    assert recorded == kept  # the SDK made the kept ones' spans, with the ids drawn for them
    sdk = TraceIdRatioBased(0.5)
    for trace_id in logged:  # and its own sampler agrees with every verdict
        verdict = sdk.should_sample(None, int(trace_id, 16), "x").decision.is_sampled()
        assert verdict == (trace_id in kept)
    for fields, recording in seen:
        assert recording == (fields["trace_id"] in kept)
        if not recording:  # no span, yet its ids in the log line
            assert len(fields["span_id"]) == 16 and int(fields["span_id"], 16) != 0
    spans_of = {format(s.context.trace_id, "032x"): s for s in spans}
    for fields, recording in seen:
        if recording:
            assert format(spans_of[fields["trace_id"]].context.span_id, "016x") == fields["span_id"]


async def test_a_callers_decision_is_followed(
    half: tuple[Gateway, Seen, InMemorySpanExporter, int],
) -> None:
    gateway, seen, memory, _ = half
    await post(gateway, traceparent=f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00")  # not sampled
    assert memory.get_finished_spans() == ()
    ((fields, recording),) = seen
    assert fields["trace_id"] == CLIENT_TRACE and fields["span_id"] != CLIENT_SPAN
    assert not recording
    await post(gateway, traceparent=f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01")  # sampled
    (span,) = memory.get_finished_spans()
    assert span.parent is not None and format(span.parent.span_id, "016x") == CLIENT_SPAN
    assert seen[-1][1]  # recorded


async def test_other_providers_are_asked_for_every_request() -> None:
    memory = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(TraceIdRatioBased(0.5)))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    assert fast_path(provider) is None
    gateway, seen = await start(provider)
    try:
        for _ in range(20):
            await post(gateway)
    finally:
        await gateway.stop()
    recorded = {format(s.context.trace_id, "032x") for s in memory.get_finished_spans()}
    assert {f["trace_id"] for f, kept in seen if kept} == recorded
    assert len({f["trace_id"] for f, _ in seen}) == 20


def test_the_configured_ratio_takes_the_fast_path() -> None:
    endpoint = "http://127.0.0.1:4318"
    with_ratio = tracing.build_provider(
        TelemetrySettings(otlp_endpoint=endpoint, sample_ratio=0.25), {}
    )
    without = tracing.build_provider(TelemetrySettings(otlp_endpoint=endpoint), {})
    assert with_ratio is not None and without is not None
    fast = fast_path(with_ratio)
    assert fast is not None and fast.bound == TraceIdRatioBased(0.25).bound
    assert fast_path(without) is None  # OTEL_TRACES_SAMPLER's choice: the SDK decides
    with_ratio.shutdown()
    without.shutdown()
