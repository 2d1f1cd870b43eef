"""Parked cross-era calls resumed from any instance: a modern client's retry reaches another
instance than the one holding the call, which resumes it there (real Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from catalyst_mcp.cluster.bus import Bus
from catalyst_mcp.cluster.config import RedisSettings
from catalyst_mcp.cluster.parked import ParkedCalls
from catalyst_mcp.context import CallContext, Identity
from catalyst_mcp.errors import InvalidParams, UpstreamError, UpstreamUnavailable
from catalyst_mcp.protocol.jsonrpc import Message
from catalyst_mcp.protocol.mrtr import STATE_PREFIX, InputBridge
from tests.cluster.conftest import REDIS_URL, Instances
from tests.fakes import modern_headers, modern_request

pytestmark = pytest.mark.redis

ALICE = Identity(subject="alice", kind="user", roles=("admin",), via="api_key")


def modern_ctx(emit: Any = None) -> CallContext:
    ctx = CallContext(
        era="modern",
        protocol_version="2026-07-28",
        method="tools/call",
        client_capabilities={"elicitation": {}},
        identity=ALICE,
        progress_token="p1",
    )
    if emit is not None:
        ctx.emit = emit
    return ctx


async def asks(ctx: CallContext) -> dict[str, Any]:
    assert ctx.ask is not None
    await ctx.emit({"m": "before"})
    answer = await ctx.ask("elicitation/create", {"message": "name?"})
    await ctx.emit({"m": "after 1"})
    await ctx.emit({"m": "after 2"})
    return {"content": [{"type": "text", "text": f"hi {answer['content']['name']}"}]}


@pytest.fixture
async def bridges(prefix: str) -> AsyncIterator[list[InputBridge]]:
    """Two bridges of one deployment, each on a bus of its own."""
    settings = RedisSettings(url=REDIS_URL, prefix=prefix)
    buses = [Bus(settings), Bus(settings)]
    bridges = [InputBridge(), InputBridge()]
    for bus, bridge in zip(buses, bridges, strict=True):
        ParkedCalls(bus, bridge, timeout=10)
        await bus.start()
    try:
        yield bridges
    finally:
        for bus in buses:
            await bus.stop()


async def test_a_retry_on_another_instance_resumes_the_call(bridges: list[InputBridge]) -> None:
    first = await bridges[0].run(modern_ctx(), {"name": "t"}, asks)
    token = first["requestState"]
    assert token.startswith(f"{STATE_PREFIX}{bridges[0].instance}.")
    seen: list[Message] = []

    async def emit(message: Message) -> None:
        seen.append(message)

    retry = {"name": "t", "requestState": token, "inputResponses": {"input-1": {"content": {}}}}
    retry["inputResponses"]["input-1"]["content"]["name"] = "Ada"
    final = await bridges[1].run(modern_ctx(emit), retry, asks)
    assert final == {"content": [{"type": "text", "text": "hi Ada"}]}
    assert seen == [{"m": "after 1"}, {"m": "after 2"}]  # in order, to the retry's stream
    with pytest.raises(InvalidParams, match="unknown or expired"):
        await bridges[1].run(modern_ctx(), retry, asks)  # used up, on its instance


async def test_only_the_caller_may_resume_it(bridges: list[InputBridge]) -> None:
    first = await bridges[0].run(modern_ctx(), {"name": "t"}, asks)
    other = modern_ctx()
    other.identity = Identity(subject="mallory", kind="user", via="api_key")
    retry = {"name": "t", "requestState": first["requestState"], "inputResponses": {}}
    with pytest.raises(InvalidParams, match="unknown or expired"):
        await bridges[1].run(other, retry, asks)


async def test_upstream_errors_stay_upstream_errors(bridges: list[InputBridge]) -> None:
    async def fails(ctx: CallContext) -> dict[str, Any]:
        assert ctx.ask is not None
        await ctx.ask("elicitation/create", {})
        raise UpstreamUnavailable("up", "up is down")

    first = await bridges[0].run(modern_ctx(), {"name": "t"}, fails)
    retry = {"name": "t", "requestState": first["requestState"], "inputResponses": {"input-1": {}}}
    with pytest.raises(UpstreamError, match="up is down") as raised:
        await bridges[1].run(modern_ctx(), retry, fails)
    assert raised.value.server == "up"


async def test_a_token_of_a_gone_instance_is_expired(bridges: list[InputBridge]) -> None:
    retry = {"name": "t", "requestState": f"{STATE_PREFIX}0123456789ab.x", "inputResponses": {}}
    with pytest.raises(InvalidParams, match="unknown or expired"):
        await bridges[1].run(modern_ctx(), retry, asks)


async def test_through_the_gateways(prefix: str, pair: Instances) -> None:
    """A modern client: the call parks on one instance, the retry lands on the other."""
    for provider in pair.providers:
        provider._may_ask = True
    caps = {"elicitation": {}}
    message = modern_request("tools/call", {"name": "fake__ask"}, capabilities=caps)
    first = await pair.clients[0].post("/mcp", message, modern_headers(message))
    result = first.message()["result"]
    assert result["resultType"] == "input_required"
    (key,) = result["inputRequests"]
    retry = modern_request(
        "tools/call",
        {
            "name": "fake__ask",
            "requestState": result["requestState"],
            "inputResponses": {key: {"action": "accept", "content": {"n": 1}}},
        },
        capabilities=caps,
    )
    final = await pair.clients[1].post("/mcp", retry, modern_headers(retry))
    answer = final.message()["result"]
    assert answer["content"][0]["text"] == "answer: {'n': 1}"
    assert answer["resultType"] == "complete"
    assert len(pair.providers[0].calls) == 1  # the call ran where it was parked
    assert pair.providers[1].calls == []
