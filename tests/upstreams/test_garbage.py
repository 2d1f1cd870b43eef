"""An upstream that answers garbage: every call gets a clear error, nothing crashes, and the
gateway keeps serving. The fake upstream (tests/fixtures/garbage_upstream.py) and the gateway
run in this event loop on real loopback sockets; clients are the official SDK client."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
import pytest_asyncio
from mcp import Client, MCPError

from tests.fakes import FakeProvider
from tests.fixtures.garbage_upstream import GarbageUpstream
from tests.live import LiveGateway, live_gateway, poll, serve_asgi

pytestmark = [pytest.mark.network, pytest.mark.asyncio(loop_scope="module")]

MODES = ["2026-07-28", "legacy"]


async def start(
    handshake: str = "ok", **server: Any
) -> AsyncIterator[tuple[LiveGateway, GarbageUpstream]]:
    app = GarbageUpstream(handshake)
    async with serve_asgi(app, lifespan="off") as upstream:
        config = {
            "servers": {
                "g": {
                    "url": f"{upstream.base}/mcp",
                    "breaker_failures": 100,
                    "restart_initial_seconds": 0.05,
                    **server,
                }
            }
        }
        async with live_gateway(config, [FakeProvider("fake")]) as gw:
            yield gw, app


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def garbage() -> AsyncIterator[tuple[LiveGateway, GarbageUpstream]]:
    """One garbage upstream behind one gateway for the tests that leave it connected."""
    async for pair in start():
        yield pair


@pytest_asyncio.fixture(loop_scope="module")
async def own_garbage() -> AsyncIterator[tuple[LiveGateway, GarbageUpstream]]:
    """A garbage upstream for one test (which breaks its connection)."""
    async for pair in start():
        yield pair


def connect(gw: LiveGateway, mode: str) -> Client:
    return Client(gw.url, mode=mode, cache=None, read_timeout_seconds=10)


async def outcome_of(client: Client, tool: str) -> Any:
    """The tool result, or the MCPError the call raised."""
    try:
        return await client.call_tool(tool, {})
    except MCPError as exc:
        return exc


async def call(gw: LiveGateway, mode: str, tool: str) -> Any:
    async with connect(gw, mode) as client:
        return await outcome_of(client, tool)


def assert_clear(outcome: Any, *words: str) -> None:
    """A tool error (or JSON-RPC error) with a readable message and no internals."""
    if isinstance(outcome, MCPError):
        text = outcome.message
    else:
        assert outcome.is_error, outcome
        text = outcome.content[0].text
    for word in words:
        assert word in text, text
    assert "Traceback" not in text
    assert "Internal error" not in text


async def assert_still_serving(gw: LiveGateway, client: Client) -> None:
    ok = await outcome_of(client, "g__ok")
    assert not isinstance(ok, MCPError)
    assert (ok.is_error, ok.content[0].text) == (False, "fine")
    echoed = await outcome_of(client, "fake__echo")
    assert not echoed.is_error
    assert gw.server("g")["status"] == "ready"


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    ("tool", "words"),
    [
        ("invalid_json", ["g sent invalid JSON"]),
        ("not_jsonrpc", ["g answered a non-response"]),
        ("json_array", ["g sent a non-object message"]),
        ("http500", ["g answered HTTP 500"]),
        ("html", ["g answered text/html, not JSON"]),
        ("empty", ["g answered", "not JSON"]),
        ("sse_garbage", ["g sent invalid JSON"]),
        ("sse_no_answer", ["g closed the stream before answering"]),
    ],
)
async def test_garbage_answers_are_tool_errors(
    garbage: tuple[LiveGateway, GarbageUpstream], mode: str, tool: str, words: list[str]
) -> None:
    gw, app = garbage
    async with connect(gw, mode) as client:
        outcome = await outcome_of(client, f"g__{tool}")
        assert not isinstance(outcome, MCPError), outcome
        assert_clear(outcome, *words)
        assert app.calls[-1] == tool
        await assert_still_serving(gw, client)


@pytest.mark.parametrize("mode", MODES)
async def test_http_error_with_jsonrpc_body_is_relayed(
    garbage: tuple[LiveGateway, GarbageUpstream], mode: str
) -> None:
    gw, _ = garbage
    async with connect(gw, mode) as client:
        outcome = await outcome_of(client, "g__http500_jsonrpc")
        assert isinstance(outcome, MCPError)
        assert (outcome.code, outcome.message) == (-32000, "upstream exploded")
        await assert_still_serving(gw, client)


@pytest.mark.parametrize("mode", MODES)
async def test_malformed_jsonrpc_error_is_relayed_as_a_generic_error(
    garbage: tuple[LiveGateway, GarbageUpstream], mode: str
) -> None:
    gw, _ = garbage
    async with connect(gw, mode) as client:
        outcome = await outcome_of(client, "g__error_string")
        assert isinstance(outcome, MCPError)
        assert (outcome.code, outcome.message) == (-32603, "upstream error")
        await assert_still_serving(gw, client)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("tool", ["result_list", "result_null"])
async def test_non_object_result_is_a_clear_error(
    garbage: tuple[LiveGateway, GarbageUpstream], mode: str, tool: str
) -> None:
    gw, _ = garbage
    outcome = await call(gw, mode, f"g__{tool}")
    assert not isinstance(outcome, MCPError), outcome
    assert_clear(outcome, "non-object result")


@pytest.mark.parametrize("mode", MODES)
async def test_non_object_result_does_not_break_the_gateway(
    garbage: tuple[LiveGateway, GarbageUpstream], mode: str
) -> None:
    gw, _ = garbage
    async with connect(gw, mode) as client:
        for tool in ("result_list", "result_null"):
            outcome = await outcome_of(client, f"g__{tool}")
            assert isinstance(outcome, MCPError) or outcome.is_error
        await assert_still_serving(gw, client)


async def test_dropped_connection_is_an_error_and_the_upstream_reconnects(
    own_garbage: tuple[LiveGateway, GarbageUpstream],
) -> None:
    gw, _ = own_garbage
    outcome = await call(gw, "legacy", "g__drop")
    assert_clear(outcome, "g:", "connection closed")
    await poll(lambda: gw.server("g")["status"] == "ready", what="g reconnected")
    assert gw.server("g")["restarts"] >= 1
    async with connect(gw, "2026-07-28") as client:
        await assert_still_serving(gw, client)


@pytest.mark.parametrize("handshake", ["invalid_json", "http500", "html", "not_jsonrpc"])
async def test_garbage_handshake_marks_the_server_failed(handshake: str) -> None:
    async for gw, _ in start(handshake, restart_initial_seconds=30):
        async with httpx2.AsyncClient() as http:
            relaxed = await http.get(f"{gw.base}/ready")
            strict = await http.get(f"{gw.base}/ready?strict")
        assert (relaxed.status_code, strict.status_code) == (200, 503)
        report = relaxed.json()
        assert report["status"] == "degraded"
        (server,) = [s for s in report["servers"] if s["name"] == "g"]
        assert server["status"] == "failed"
        assert server["error"].startswith("g ")
        assert "Traceback" not in server["error"]
        outcome = await call(gw, "2026-07-28", "g__ok")
        assert_clear(outcome, "g is unavailable (failed)", server["error"], "retrying in")
        echoed = await call(gw, "legacy", "fake__echo")
        assert not echoed.is_error
