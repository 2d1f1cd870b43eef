"""One configured upstream: lists, calls, relayed notifications, server→client requests and
reconnection. In-process: ``build_transport`` is replaced by a scripted server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import UpstreamRejected, UpstreamUnavailable
from catalyst_mcp.protocol.jsonrpc import Message
from catalyst_mcp.protocol.versions import CLIENT_CAPS_KEY, LOG_LEVEL_KEY
from catalyst_mcp.settings import ServerConfig
from catalyst_mcp.upstreams import upstream as upstream_module
from catalyst_mcp.upstreams.base import MessageHandler, UpstreamTransport
from catalyst_mcp.upstreams.stdio import StdioTransport
from catalyst_mcp.upstreams.upstream import Upstream
from tests.conftest import PYTHON
from tests.live import poll

Related = MessageHandler


class ScriptedServer(UpstreamTransport):
    """A legacy (or modern) MCP server in a few lines: lists from data, calls from ``tools``."""

    def __init__(self, era: str = "legacy") -> None:
        super().__init__("up")
        self.era = era
        self.pages: dict[str, list[dict[str, Any]]] = {
            "tools/list": [
                {"tools": [{"name": "a"}, {"nameless": True}], "nextCursor": "2"},
                {"tools": [{"name": "b"}, "junk"]},
            ],
            "prompts/list": [],  # declared, but answers -32601
            "resources/list": [{"resources": [{"uri": "r://1", "name": "1"}]}],
            "resources/templates/list": [{"resourceTemplates": []}],
        }
        self.tools: dict[str, Callable[[Message, Related], Awaitable[dict[str, Any]]]] = {}
        self.requests: list[Message] = []
        self.headers: list[dict[str, str] | None] = []
        self.sent: list[Message] = []

    async def open(self) -> None:
        return None

    async def request(
        self,
        message: Message,
        on_related: MessageHandler | None = None,
        headers: dict[str, str] | None = None,
    ) -> Message:
        self.requests.append(message)
        self.headers.append(headers)
        method = message["method"]
        params = message.get("params") or {}
        request_id = message["id"]

        def ok(result: dict[str, Any]) -> Message:
            return {"jsonrpc": "2.0", "id": request_id, "result": result}

        if method == "server/discover":
            if self.era == "legacy":
                return {
                    "jsonrpc": "2.0",
                    "id": request_id,
                    "error": {"code": -32601, "message": "x"},
                }
            return ok({"supportedVersions": ["2026-07-28"], "capabilities": self.capabilities})
        if method == "initialize":
            return ok(
                {
                    "protocolVersion": "2025-11-25",
                    "capabilities": self.capabilities,
                    "serverInfo": {"name": "scripted", "version": "1"},
                }
            )
        if method in self.pages:
            pages = self.pages[method]
            if not pages:
                error = {"code": -32601, "message": "Method not found"}
                return {"jsonrpc": "2.0", "id": request_id, "error": error}
            index = int(params.get("cursor") or 1) - 1
            return ok(pages[index])
        if method == "tools/call":
            handler = self.tools[params["name"]]
            return ok(await handler(message, on_related or self.on_message))
        if method == "subscriptions/listen":
            await asyncio.sleep(3600)
        return {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32601, "message": method}}

    @property
    def capabilities(self) -> dict[str, Any]:
        return {"tools": {"listChanged": True}, "prompts": {}, "resources": {}}

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    async def close(self) -> None:
        return None


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> ScriptedServer:
    scripted = ScriptedServer()
    monkeypatch.setattr(upstream_module, "build_transport", lambda name, config: scripted)
    return scripted


async def started(era: str = "auto", **config: Any) -> Upstream:
    upstream = Upstream(
        "up", "up", ServerConfig(url="http://unused.invalid/mcp", era=era, **config), 5.0
    )
    await upstream.start()
    await upstream.wait_settled(5)
    return upstream


@pytest.fixture
async def upstream(server: ScriptedServer) -> AsyncIterator[Upstream]:
    up = await started()
    try:
        yield up
    finally:
        await up.stop()


def ctx(**kw: Any) -> CallContext:
    return CallContext(era="modern", protocol_version="2026-07-28", method="tools/call", **kw)


def recorder() -> tuple[list[Message], Callable[[Message], Awaitable[None]]]:
    seen: list[Message] = []

    async def emit(message: Message) -> None:
        seen.append(message)

    return seen, emit


async def test_lists_across_pages_without_malformed_entries(upstream: Upstream) -> None:
    assert upstream.status == "ready"
    assert [t["name"] for t in upstream.items("tools")] == ["a", "b"]
    assert upstream.items("prompts") == []
    assert [r["uri"] for r in upstream.items("resources")] == ["r://1"]
    health = upstream.health()
    assert (health["era"], health["tools"], health["serverInfo"]["name"]) == (
        "legacy",
        2,
        "scripted",
    )
    assert upstream.may_ask is True


async def test_progress_is_mapped_to_the_callers_token(
    upstream: Upstream, server: ScriptedServer
) -> None:
    async def reports(message: Message, related: Related) -> dict[str, Any]:
        token = message["params"]["_meta"]["progressToken"]
        await related(
            {
                "jsonrpc": "2.0",
                "method": "notifications/progress",
                "params": {"progressToken": token, "progress": 1},
            }
        )
        await related(  # a token of no call of ours: dropped
            {
                "jsonrpc": "2.0",
                "method": "notifications/progress",
                "params": {"progressToken": 999, "progress": 2},
            }
        )
        return {"content": []}

    server.tools["a"] = reports
    seen, emit = recorder()
    await upstream.call("tools/call", {"name": "a"}, ctx(progress_token="mine", emit=emit))
    assert [m["params"] for m in seen] == [{"progressToken": "mine", "progress": 1}]
    sent_token = server.requests[-1]["params"]["_meta"]["progressToken"]
    assert isinstance(sent_token, int)


async def test_no_progress_token_is_sent_unless_the_client_gave_one(
    upstream: Upstream, server: ScriptedServer
) -> None:
    async def plain(message: Message, related: Related) -> dict[str, Any]:
        return {"content": []}

    server.tools["a"] = plain
    await upstream.call("tools/call", {"name": "a"}, ctx())
    assert "progressToken" not in server.requests[-1]["params"]["_meta"]


@pytest.mark.parametrize(
    ("level", "expected"), [(None, []), ("warning", ["error"]), ("debug", ["debug", "error"])]
)
async def test_log_messages_follow_the_callers_level(
    upstream: Upstream, server: ScriptedServer, level: str | None, expected: list[str]
) -> None:
    async def logs(message: Message, related: Related) -> dict[str, Any]:
        for lvl in ("debug", "error"):
            note = {
                "jsonrpc": "2.0",
                "method": "notifications/message",
                "params": {"level": lvl, "data": lvl},
            }
            await related(note)
        return {"content": []}

    server.tools["a"] = logs
    seen, emit = recorder()
    await upstream.call("tools/call", {"name": "a"}, ctx(log_level=level, emit=emit))
    assert [m["params"]["level"] for m in seen] == expected


async def test_list_changed_refetches_and_tells_the_registry(
    upstream: Upstream, server: ScriptedServer
) -> None:
    changes: list[set[str]] = []
    upstream.on_change = lambda provider, kinds: changes.append(set(kinds))
    server.pages["tools/list"] = [{"tools": [{"name": "new"}]}]
    await server.on_message({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
    await poll(lambda: changes, what="the refetch")
    assert changes == [{"tools"}]
    assert [t["name"] for t in upstream.items("tools")] == ["new"]


async def test_resource_updates_are_reported(upstream: Upstream, server: ScriptedServer) -> None:
    updated: list[str] = []

    async def on_updated(provider: Any, uri: str) -> None:
        updated.append(uri)

    upstream.on_resource_updated = on_updated
    note = {
        "jsonrpc": "2.0",
        "method": "notifications/resources/updated",
        "params": {"uri": "r://1"},
    }
    await server.on_message(note)
    assert updated == ["r://1"]


async def test_server_requests_outside_any_call(upstream: Upstream, server: ScriptedServer) -> None:
    await server.on_message({"jsonrpc": "2.0", "id": "r", "method": "roots/list"})
    await server.on_message(
        {"jsonrpc": "2.0", "id": "s", "method": "sampling/createMessage", "params": {}}
    )
    await poll(lambda: len(server.sent) >= 3, what="two replies")
    replies = {m["id"]: m for m in server.sent if "id" in m}
    assert replies["r"]["result"] == {"roots": []}
    assert replies["s"]["error"]["code"] == -32601


async def test_server_request_during_a_call_asks_that_client(
    upstream: Upstream, server: ScriptedServer
) -> None:
    asked: list[tuple[str, dict[str, Any]]] = []

    async def ask(method: str, params: dict[str, Any]) -> dict[str, Any]:
        asked.append((method, params))
        return {"roots": [{"uri": "file:///x"}]}

    async def needs_roots(message: Message, related: Related) -> dict[str, Any]:
        await related({"jsonrpc": "2.0", "id": "q1", "method": "roots/list", "params": {}})
        await related({"jsonrpc": "2.0", "id": "q2", "method": "sampling/other", "params": {}})
        return {"content": []}

    server.tools["a"] = needs_roots
    caller = ctx(client_capabilities={"roots": {}}, ask=ask)
    await upstream.call("tools/call", {"name": "a"}, caller)
    replies = {m["id"]: m for m in server.sent if "id" in m}
    assert replies["q1"]["result"] == {"roots": [{"uri": "file:///x"}]}
    assert replies["q2"]["error"]["code"] == -32601
    assert asked == [("roots/list", {})]


async def test_rejection_is_not_a_breaker_failure(
    upstream: Upstream, server: ScriptedServer
) -> None:
    async def rejects(message: Message, related: Related) -> dict[str, Any]:
        raise AssertionError("not reached")

    server.tools.clear()
    with pytest.raises(UpstreamRejected):
        await upstream.call("prompts/get", {"name": "x"}, ctx())
    assert upstream.breaker.failures == 0


async def test_modern_upstream_gets_the_callers_capabilities(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scripted = ScriptedServer(era="modern")
    monkeypatch.setattr(upstream_module, "build_transport", lambda name, config: scripted)
    up = await started()
    try:
        assert up.health()["era"] == "modern"
        assert up.may_ask is False

        async def plain(message: Message, related: Related) -> dict[str, Any]:
            return {"content": []}

        scripted.tools["a"] = plain
        caller = ctx(
            client_capabilities={"roots": {"listChanged": True}, "sampling": {}, "tasks": {}},
            log_level="info",
        )
        await up.call("tools/call", {"name": "a"}, caller)
        meta = scripted.requests[-1]["params"]["_meta"]
        assert meta[CLIENT_CAPS_KEY] == {"roots": {}, "sampling": {}}
        assert meta[LOG_LEVEL_KEY] == "info"
    finally:
        await up.stop()


async def test_param_headers_are_sent_to_modern_upstreams(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    scripted = ScriptedServer(era="modern")
    schema = {
        "type": "object",
        "properties": {
            "region": {"type": "string", "x-mcp-header": "Region"},
            "flag": {"type": "boolean", "x-mcp-header": "Flag"},
            "city": {"type": "string", "x-mcp-header": "City"},
        },
    }
    scripted.pages["tools/list"] = [{"tools": [{"name": "a", "inputSchema": schema}]}]
    monkeypatch.setattr(upstream_module, "build_transport", lambda name, config: scripted)
    up = await started()
    try:

        async def plain(message: Message, related: Related) -> dict[str, Any]:
            return {"content": []}

        scripted.tools["a"] = plain
        arguments = {"region": "eu", "flag": False, "city": "Zürich"}
        await up.call("tools/call", {"name": "a", "arguments": arguments}, ctx())
        assert scripted.headers[-1] == {
            "Mcp-Param-Region": "eu",
            "Mcp-Param-Flag": "false",
            "Mcp-Param-City": "=?base64?WsO8cmljaA==?=",
        }
        await up.call("tools/call", {"name": "a", "arguments": {"region": None}}, ctx())
        assert not scripted.headers[-1]
    finally:
        await up.stop()


async def test_unreachable_server_fails_and_retries_with_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="catalyst.upstream")
    config = ServerConfig(
        command="/nonexistent/catalyst-test-server",
        restart_initial_seconds=0.1,
        restart_max_seconds=0.4,
    )
    up = Upstream("ghost", "ghost", config, 5.0)
    await up.start()
    await up.wait_settled(5)
    try:
        health = up.health()
        assert health["status"] == "failed"
        assert health["error"].startswith("cannot start ghost: '/nonexistent/catalyst-test-server'")
        with pytest.raises(UpstreamUnavailable) as caught:
            await up.call("tools/call", {"name": "x"}, ctx())
        assert caught.value.message.startswith("ghost is unavailable (failed): cannot start ghost")
        await poll(lambda: up.restarts >= 4, timeout=10, what="four retries")
    finally:
        await up.stop()
    assert up.status == "stopped"
    delays = [r.getMessage() for r in caplog.records if "reconnecting in" in r.getMessage()]
    assert delays[:4] == [
        "ghost: reconnecting in 0.1s",
        "ghost: reconnecting in 0.2s",
        "ghost: reconnecting in 0.4s",
        "ghost: reconnecting in 0.4s",
    ]


async def test_calls_before_the_connection_are_refused() -> None:
    up = Upstream("later", "later", ServerConfig(url="http://unused.invalid/mcp"), 5.0)
    with pytest.raises(UpstreamUnavailable, match=r"later is unavailable \(starting\)"):
        await up.call("tools/call", {"name": "x"}, ctx())


@pytest.mark.subprocess
async def test_stop_right_after_a_failed_handshake_kills_the_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A server that never answers (and ignores the end of its input) times out; stopping the
    gateway at once must still stop its process."""
    transports: list[StdioTransport] = []
    real_build = upstream_module.build_transport

    def capture(name: str, config: ServerConfig) -> Any:
        transport = real_build(name, config)
        assert isinstance(transport, StdioTransport)
        transports.append(transport)
        return transport

    monkeypatch.setattr(upstream_module, "build_transport", capture)
    config = ServerConfig(
        command=PYTHON,
        args=["-c", "import time; time.sleep(60)"],
        connect_timeout_seconds=0.3,
    )
    up = Upstream("mute", "mute", config, 5.0)
    await up.start()
    await up.wait_settled(10)
    assert up.health()["error"] == "timed out connecting"
    await up.stop()
    process = transports[0].process
    assert process is not None
    try:
        assert process.returncode is not None, "the server process is still running"
    finally:
        if process.returncode is None:  # clean up after the bug, by PID
            process.kill()
            await process.wait()
        for transport in transports:
            await transport.close()
