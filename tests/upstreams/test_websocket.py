"""WebSocket upstreams: a gateway's ``/ws`` endpoint as the upstream of another gateway."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import pytest_asyncio

from catalyst_mcp.app import Gateway
from catalyst_mcp.context import CallContext
from catalyst_mcp.settings import ServerConfig, Settings
from catalyst_mcp.upstreams.upstream import build_transport
from catalyst_mcp.upstreams.websocket import WebSocketTransport
from tests.conftest import free_port
from tests.fakes import FakeProvider
from tests.live import LiveGateway, live_gateway, poll

pytestmark = pytest.mark.network

SECRET = "an-hs256-secret-of-at-least-32-bytes!!"
RESOURCE = "http://127.0.0.1/mcp"


@pytest_asyncio.fixture
async def upstream(fake_provider: FakeProvider) -> AsyncIterator[LiveGateway]:
    async with live_gateway({}, [fake_provider]) as live:
        yield live


def ws_url(live: LiveGateway) -> str:
    return f"ws://127.0.0.1:{live.port}/ws"


async def through(server: dict[str, Any]) -> Gateway:
    gateway = Gateway(Settings.model_validate({"servers": {"up": server}}))
    await gateway.start()
    return gateway


def ctx(method: str, **extra: Any) -> CallContext:
    return CallContext(era="legacy", protocol_version="2025-11-25", method=method, **extra)


def test_ws_urls_are_websocket_servers() -> None:
    config = ServerConfig.model_validate({"url": "wss://example.com/ws"})
    assert config.kind == "websocket"
    assert isinstance(build_transport("x", config), WebSocketTransport)
    explicit = ServerConfig.model_validate({"url": "ws://h/ws", "type": "websocket"})
    assert explicit.kind == "websocket"
    with pytest.raises(ValueError, match="transport 'websocket' goes with ws://"):
        ServerConfig.model_validate({"url": "http://h/mcp", "type": "websocket"})
    with pytest.raises(ValueError, match="transport 'websocket' goes with ws://"):
        ServerConfig.model_validate({"url": "ws://h/ws", "type": "sse"})


@pytest.mark.parametrize("era", ["modern", "legacy", "auto"])
async def test_lists_and_calls_in_either_era(upstream: LiveGateway, era: str) -> None:
    gateway = await through({"url": ws_url(upstream), "era": era})
    try:
        (provider,) = gateway.registry.providers
        report = provider.health()
        assert report["status"] == "ready", report
        assert report["transport"] == "websocket"
        assert report["era"] == ("legacy" if era == "legacy" else "modern")
        names = {t["name"] for t in gateway.registry.items("tools")}
        assert "up__fake__echo" in names
        result = await gateway.server.handle(
            "tools/call",
            {"name": "up__fake__echo", "arguments": {"text": "over ws"}},
            ctx("tools/call"),
        )
        assert result["content"][0]["text"] == "over ws"
    finally:
        await gateway.stop()


async def test_progress_and_log_messages_reach_the_caller(upstream: LiveGateway) -> None:
    gateway = await through({"url": ws_url(upstream), "era": "legacy"})
    seen: list[dict[str, Any]] = []

    async def emit(message: dict[str, Any]) -> None:
        seen.append(message)

    try:
        await gateway.server.handle(
            "tools/call",
            {"name": "up__fake__progress", "arguments": {}},
            ctx("tools/call", progress_token="p1", emit=emit),
        )
        await gateway.server.handle(
            "tools/call",
            {"name": "up__fake__log", "arguments": {}},
            ctx("tools/call", log_level="info", emit=emit),
        )
    finally:
        await gateway.stop()
    progress = [m["params"] for m in seen if m["method"] == "notifications/progress"]
    assert [p["progress"] for p in progress] == [1, 2]
    assert {p["progressToken"] for p in progress} == {"p1"}
    levels = [m["params"]["level"] for m in seen if m["method"] == "notifications/message"]
    assert levels == ["info", "error"]


async def test_a_list_change_upstream_refreshes_the_registry(
    upstream: LiveGateway, fake_provider: FakeProvider
) -> None:
    gateway = await through({"url": ws_url(upstream), "era": "legacy"})
    try:
        fake_provider.set_items("tools", [{"name": "fresh", "inputSchema": {"type": "object"}}])
        await poll(
            lambda: [t["name"] for t in gateway.registry.items("tools")] == ["up__fake__fresh"],
            what="the new tool list",
        )
    finally:
        await gateway.stop()


async def test_a_refused_handshake_names_the_status(
    tmp_path: Path, fake_provider: FakeProvider
) -> None:
    settings = {
        "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/catalyst.db"},
        "auth": {"enabled": True, "resource_url": RESOURCE, "jwt": {"hs256_secret": SECRET}},
    }
    async with live_gateway(settings, [fake_provider]) as live:
        gateway = await through({"url": ws_url(live), "connect_timeout_seconds": 5})
        try:
            (provider,) = gateway.registry.providers
            report = provider.health()
            assert report["status"] == "failed"
            assert report["error"] == "up refused the WebSocket handshake: HTTP 401"
        finally:
            await gateway.stop()
        claims = {"sub": "ada", "aud": RESOURCE, "exp": int(time.time()) + 60, "roles": ["admin"]}
        bearer = f"Bearer {jwt.encode(claims, SECRET, algorithm='HS256')}"
        gateway = await through({"url": ws_url(live), "headers": {"Authorization": bearer}})
        try:
            assert gateway.registry.providers[0].health()["status"] == "ready"
            assert fake_provider.started
        finally:
            await gateway.stop()


async def test_nothing_listening_is_one_clear_error() -> None:
    gateway = await through({"url": f"ws://127.0.0.1:{free_port()}/ws"})
    try:
        report = gateway.registry.providers[0].health()
        assert report["status"] == "failed"
        assert report["error"].startswith("cannot connect to 127.0.0.1:")
    finally:
        await gateway.stop()


async def test_the_upstream_going_away_is_noticed(fake_provider: FakeProvider) -> None:
    async with live_gateway({}, [fake_provider]) as live:
        gateway = await through({"url": ws_url(live), "restart_initial_seconds": 30})
        provider = gateway.registry.providers[0]
        assert provider.health()["status"] == "ready"
    try:
        await poll(lambda: provider.health()["status"] == "failed", what="the upstream lost")
        assert "closed the WebSocket" in provider.health()["error"]
    finally:
        await gateway.stop()
