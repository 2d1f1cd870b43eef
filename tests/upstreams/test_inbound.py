"""What an upstream sends besides answers, routed to its call: the cases a whole upstream
(tests/upstreams/test_upstream.py) does not reach easily. In-process, no server."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any, cast

import pytest

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import MethodNotFound
from catalyst_mcp.protocol.jsonrpc import Message
from catalyst_mcp.providers import ListKind
from catalyst_mcp.upstreams.http import StreamableHttpTransport
from catalyst_mcp.upstreams.inbound import Inbound
from catalyst_mcp.upstreams.session import UpstreamSession


def caller(seen: list[Message], **kw: Any) -> CallContext:
    async def emit(message: Message) -> None:
        seen.append(message)

    return CallContext(era="legacy", protocol_version="2025-11-25", emit=emit, **kw)


def inbound(
    inflight: dict[int, CallContext],
    session: UpstreamSession | None = None,
    refetch: Callable[[ListKind], None] = lambda kind: None,
    updated: Callable[[str], Awaitable[None]] | None = None,
) -> Inbound:
    async def nothing(uri: str) -> None:
        return None

    return Inbound("up", inflight, lambda: session, refetch, updated or nothing)


def log_note(level: str = "info") -> Message:
    return {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": level}}


async def test_an_unattached_log_goes_to_the_only_call_in_flight() -> None:
    seen: list[Message] = []
    inflight = {1: caller(seen, log_level="debug")}
    await inbound(inflight).notification(log_note())
    assert seen == [log_note()]


async def test_with_several_calls_in_flight_an_unattached_log_belongs_to_nobody() -> None:
    seen: list[Message] = []
    inflight = {1: caller(seen, log_level="debug"), 2: caller(seen, log_level="debug")}
    await inbound(inflight).notification(log_note())
    assert seen == []


async def test_on_streamable_http_unattached_messages_belong_to_no_caller() -> None:
    seen: list[Message] = []
    inflight = {1: caller(seen, log_level="debug")}
    transport = StreamableHttpTransport("up", "http://127.0.0.1:9/mcp")
    session = cast(UpstreamSession, SimpleNamespace(transport=transport))
    await inbound(inflight, session).notification(log_note())
    assert seen == []
    answer = await inbound(inflight, session).unrelated_request(
        {"jsonrpc": "2.0", "id": 1, "method": "roots/list"}
    )
    assert answer == {"roots": []}


async def test_a_request_several_calls_could_have_sent_is_refused_with_the_remedy() -> None:
    inflight = {1: caller([]), 2: caller([])}
    request: Message = {"jsonrpc": "2.0", "id": 1, "method": "sampling/createMessage"}
    with pytest.raises(MethodNotFound, match="serialize_calls: true"):
        await inbound(inflight).unrelated_request(request)
    with pytest.raises(MethodNotFound, match="outside a client request"):
        await inbound({}).unrelated_request(request)


async def test_a_legacy_client_is_not_asked_for_what_it_did_not_declare() -> None:
    asked: list[str] = []

    async def ask(method: str, params: dict[str, Any]) -> dict[str, Any]:
        asked.append(method)
        return {}

    ctx = caller([], ask=ask)
    request: Message = {"jsonrpc": "2.0", "id": 1, "method": "elicitation/create"}
    with pytest.raises(MethodNotFound, match="does not support elicitation"):
        await inbound({}).ask(ctx, request)
    assert await inbound({}).ask(ctx, {**request, "method": "roots/list"}) == {"roots": []}
    assert asked == []


async def test_list_changes_and_resource_updates() -> None:
    kinds: list[ListKind] = []
    uris: list[str] = []

    async def updated(uri: str) -> None:
        uris.append(uri)

    relay = inbound({}, refetch=kinds.append, updated=updated)
    await relay.notification({"method": "notifications/resources/list_changed"})
    await relay.notification({"method": "notifications/resources/updated", "params": {"uri": 3}})
    await relay.notification({"method": "notifications/resources/updated", "params": {"uri": "r"}})
    assert kinds == ["resources", "resourceTemplates"]
    assert uris == ["r"]
