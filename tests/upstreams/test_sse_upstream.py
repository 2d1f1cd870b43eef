"""An upstream that only speaks the deprecated HTTP+SSE transport (the SDK fixture in ``sse``
mode): configured with an /sse URL, or found by falling back from Streamable HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import mcp_types as t
import pytest
import pytest_asyncio
from mcp import Client

from tests.conftest import PYTHON, UPSTREAM, Process, free_port, wait_for_port
from tests.live import LiveGateway, live_gateway

pytestmark = [pytest.mark.network, pytest.mark.subprocess, pytest.mark.asyncio(loop_scope="module")]


@pytest.fixture(scope="module")
def sse_upstream() -> Iterator[str]:
    port = free_port()
    proc = Process([PYTHON, str(UPSTREAM), "sse", str(port)])
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}/sse"
    finally:
        proc.stop()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw(sse_upstream: str) -> AsyncIterator[LiveGateway]:
    config = {
        "servers": {
            "inferred": {"url": sse_upstream},
            "fallback": {"url": sse_upstream, "type": "streamable-http"},
        }
    }
    async with live_gateway(config) as live:
        yield live


async def elicit(ctx: Any, params: Any) -> t.ElicitResult:
    return t.ElicitResult(action="accept", content={"name": "Bo"})


@pytest.mark.parametrize(
    ("ns", "era"),
    # An /sse URL is probed with server/discover (the SDK's SSE server answers it); falling
    # back from Streamable HTTP means the server refused our POSTs, so it is spoken to as legacy.
    [("inferred", "modern"), ("fallback", "legacy")],
)
async def test_connected_over_sse(gw: LiveGateway, ns: str, era: str) -> None:
    report = gw.server(ns)
    assert report["status"] == "ready"
    if ns == "inferred":
        assert report["transport"] == "sse"
    assert report["era"] == era
    assert report["serverInfo"]["name"] == "test-upstream"


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
@pytest.mark.parametrize("ns", ["inferred", "fallback"])
async def test_calls_over_sse(gw: LiveGateway, mode: str, ns: str) -> None:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    async with Client(gw.url, mode=mode, cache=None, elicitation_callback=elicit) as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
        echoed = await client.call_tool(f"{ns}__echo", {"text": "sse"})
        greeted = await client.call_tool(f"{ns}__greet_user", {})
        slow = await client.call_tool(f"{ns}__slow", {"steps": 2}, progress_callback=on_progress)
        read = await client.read_resource(f"catalyst://{ns}/res://greet/al")
    assert f"{ns}__crash" in tools
    assert echoed.content[0].text == "sse"  # type: ignore[union-attr]
    assert greeted.content[0].text == "Hello, Bo!"  # type: ignore[union-attr]
    assert slow.content[0].text == "done 2"  # type: ignore[union-attr]
    assert progress == [1, 2]
    assert read.contents[0].text == "greetings al"  # type: ignore[union-attr]
