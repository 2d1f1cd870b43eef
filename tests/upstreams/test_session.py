"""One client session to an upstream: era negotiation and request/response mapping.
In-process over a scripted transport."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from catalyst_mcp.errors import (
    InvalidParams,
    UpstreamProtocolError,
    UpstreamRejected,
    UpstreamTimeout,
)
from catalyst_mcp.protocol.jsonrpc import Message
from catalyst_mcp.protocol.versions import CLIENT_CAPS_KEY, PROTOCOL_VERSION_KEY, SERVER_INFO_KEY
from catalyst_mcp.upstreams.base import MessageHandler, UpstreamTransport
from catalyst_mcp.upstreams.http import HttpStatusError
from catalyst_mcp.upstreams.session import UpstreamSession
from tests.live import poll

Script = Callable[[Message], Awaitable[Message]]

DISCOVER_OK = {
    "supportedVersions": ["2026-07-28"],
    "capabilities": {"tools": {"listChanged": True}},
    "instructions": "be nice",
    "_meta": {SERVER_INFO_KEY: {"name": "up", "version": "2"}},
}
INIT_OK = {
    "protocolVersion": "2025-06-18",
    "capabilities": {"tools": {}},
    "serverInfo": {"name": "old", "version": "1"},
}


class ScriptedTransport(UpstreamTransport):
    """Answers requests with ``script``; records everything sent."""

    def __init__(self, script: Script) -> None:
        super().__init__("up")
        self.script = script
        self.requests: list[Message] = []
        self.sent: list[Message] = []
        self.headers: list[dict[str, str] | None] = []
        self.opened = self.closed = False

    async def open(self) -> None:
        self.opened = True

    async def request(
        self,
        message: Message,
        on_related: MessageHandler | None = None,
        headers: dict[str, str] | None = None,
    ) -> Message:
        self.requests.append(message)
        self.headers.append(headers)
        return await self.script(message)

    async def send(self, message: Message) -> None:
        self.sent.append(message)

    async def close(self) -> None:
        self.closed = True


def answer(result: Any) -> Message:
    return {"jsonrpc": "2.0", "id": 0, "result": result}


def script_of(discover: Any, init: Any = INIT_OK) -> Script:
    async def script(message: Message) -> Message:
        method = message["method"]
        if method == "server/discover":
            if isinstance(discover, BaseException):
                raise discover
            if discover == "hang":
                await asyncio.sleep(10)
            return {**discover, "id": message["id"]}
        if method == "initialize":
            return {"jsonrpc": "2.0", "id": message["id"], "result": init}
        return {"jsonrpc": "2.0", "id": message["id"], "result": {"echo": message.get("params")}}

    return script


async def test_discover_success_means_modern() -> None:
    transport = ScriptedTransport(script_of(answer(DISCOVER_OK)))
    session = UpstreamSession(transport)
    await session.connect()
    assert transport.opened
    assert (session.era, session.protocol_version) == ("modern", "2026-07-28")
    assert session.capabilities == {"tools": {"listChanged": True}}
    assert session.server_info == {"name": "up", "version": "2"}
    assert session.instructions == "be nice"
    assert transport.modern and transport.protocol_version == "2026-07-28"
    probe = transport.requests[0]
    assert probe["method"] == "server/discover"
    assert probe["params"]["_meta"][PROTOCOL_VERSION_KEY] == "2026-07-28"
    assert [r["method"] for r in transport.requests] == ["server/discover"]


@pytest.mark.parametrize(
    "discover",
    [
        {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}},
        {
            "jsonrpc": "2.0",
            "error": {"code": -32022, "message": "no", "data": {"supported": ["2025-06-18"]}},
        },
        answer({"supportedVersions": ["2025-11-25"], "capabilities": {}}),
        answer({"something": "else"}),
        HttpStatusError("up", 400, b"Bad Request: Missing session ID"),
        HttpStatusError("up", 404, {"jsonrpc": "2.0", "error": {"code": -32601, "message": "x"}}),
        UpstreamProtocolError("up", "up answered text/html, not JSON"),
        "hang",
    ],
    ids=[
        "32601",
        "32022-legacy-only",
        "legacy-versions",
        "odd-result",
        "http-400",
        "http-404",
        "html",
        "timeout",
    ],
)
async def test_anything_else_falls_back_to_initialize(discover: Any) -> None:
    transport = ScriptedTransport(script_of(discover))
    session = UpstreamSession(transport, probe_timeout=0.05)
    await session.connect()
    assert (session.era, session.protocol_version) == ("legacy", "2025-06-18")
    assert session.server_info == {"name": "old", "version": "1"}
    assert not transport.modern
    assert transport.protocol_version == "2025-06-18"
    init = transport.requests[-1]
    assert init["method"] == "initialize"
    assert init["params"]["protocolVersion"] == "2025-11-25"
    assert set(init["params"]["capabilities"]) == {"sampling", "elicitation", "roots"}
    assert transport.sent == [{"jsonrpc": "2.0", "method": "notifications/initialized"}]


@pytest.mark.parametrize("code", [-32020, -32021])
async def test_modern_rejection_of_discovery_is_not_a_fallback(code: int) -> None:
    body = {"jsonrpc": "2.0", "id": 1, "error": {"code": code, "message": "bad header"}}
    transport = ScriptedTransport(script_of(HttpStatusError("up", 400, body)))
    with pytest.raises(UpstreamProtocolError, match="rejected discovery: bad header"):
        await UpstreamSession(transport).connect()


async def test_legacy_preference_skips_the_probe() -> None:
    transport = ScriptedTransport(script_of(answer(DISCOVER_OK)))
    session = UpstreamSession(transport, era="legacy")
    await session.connect()
    assert session.era == "legacy"
    assert [r["method"] for r in transport.requests] == ["initialize"]


async def test_modern_preference_refuses_a_legacy_server() -> None:
    transport = ScriptedTransport(
        script_of({"jsonrpc": "2.0", "error": {"code": -32601, "message": "x"}})
    )
    with pytest.raises(UpstreamProtocolError, match="does not speak the modern protocol"):
        await UpstreamSession(transport, era="modern").connect()


async def test_old_legacy_versions_send_no_version_header() -> None:
    transport = ScriptedTransport(
        script_of(HttpStatusError("up", 404, b""), {**INIT_OK, "protocolVersion": "2025-03-26"})
    )
    session = UpstreamSession(transport)
    await session.connect()
    assert session.protocol_version == "2025-03-26"
    assert transport.protocol_version is None


@pytest.mark.parametrize("version", ["2026-07-28", "1999-01-01", None])
async def test_unsupported_initialize_version_is_refused(version: Any) -> None:
    transport = ScriptedTransport(
        script_of(HttpStatusError("up", 404, b""), {**INIT_OK, "protocolVersion": version})
    )
    with pytest.raises(UpstreamProtocolError, match="unsupported protocol version"):
        await UpstreamSession(transport).connect()


async def test_initialize_error_is_rejected() -> None:
    async def script(message: Message) -> Message:
        return {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32602, "message": "nope"}}

    with pytest.raises(UpstreamRejected, match="nope"):
        await UpstreamSession(ScriptedTransport(script), era="legacy").connect()


async def test_handshake_timeout() -> None:
    async def script(message: Message) -> Message:
        await asyncio.sleep(10)
        raise AssertionError

    with pytest.raises(TimeoutError):
        await UpstreamSession(
            ScriptedTransport(script), era="legacy", handshake_timeout=0.05
        ).connect()


async def connected(
    script: Script, era: str = "legacy"
) -> tuple[UpstreamSession, ScriptedTransport]:
    async def with_handshake(message: Message) -> Message:
        if message["method"] == "initialize":
            return {"jsonrpc": "2.0", "id": message["id"], "result": INIT_OK}
        if message["method"] == "server/discover":
            return {"jsonrpc": "2.0", "id": message["id"], "result": DISCOVER_OK}
        return await script(message)

    transport = ScriptedTransport(with_handshake)
    session = UpstreamSession(transport, era=era)  # type: ignore[arg-type]
    await session.connect()
    return session, transport


async def test_request_returns_the_result() -> None:
    async def script(message: Message) -> Message:
        return {"jsonrpc": "2.0", "id": message["id"], "result": {"got": message["params"]}}

    session, transport = await connected(script)
    result = await session.request(
        "tools/call", {"name": "x"}, timeout=1, headers={"Mcp-Param-A": "1"}
    )
    assert result == {"got": {"name": "x"}}
    assert transport.headers[-1] == {"Mcp-Param-A": "1"}


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        ({"code": -32602, "message": "bad"}, -32602, "bad"),
        ("not an object", -32603, "upstream error"),
    ],
)
async def test_error_answers_are_rejections(error: Any, code: int, message: str) -> None:
    async def script(m: Message) -> Message:
        return {"jsonrpc": "2.0", "id": m["id"], "error": error}

    session, _ = await connected(script)
    with pytest.raises(UpstreamRejected) as caught:
        await session.request("tools/call", {}, timeout=1)
    assert (caught.value.code, caught.value.message) == (code, message)


async def test_http_error_with_a_jsonrpc_body_is_a_rejection() -> None:
    async def script(m: Message) -> Message:
        raise HttpStatusError(
            "up",
            400,
            {"jsonrpc": "2.0", "id": m["id"], "error": {"code": -32020, "message": "hdr"}},
        )

    session, _ = await connected(script, era="modern")
    with pytest.raises(UpstreamRejected) as caught:
        await session.request("tools/call", {}, timeout=1)
    assert caught.value.code == -32020


async def test_http_error_without_a_jsonrpc_body_stays_a_protocol_error() -> None:
    async def script(m: Message) -> Message:
        raise HttpStatusError("up", 502, b"<html>bad gateway</html>")

    session, _ = await connected(script)
    with pytest.raises(HttpStatusError, match="HTTP 502"):
        await session.request("tools/call", {}, timeout=1)


async def test_timeout_cancels_upstream_in_the_legacy_era() -> None:
    async def script(m: Message) -> Message:
        await asyncio.sleep(10)
        raise AssertionError

    session, transport = await connected(script)
    with pytest.raises(UpstreamTimeout, match=r"did not answer tools/call within 0\.05s"):
        await session.request("tools/call", {}, timeout=0.05)
    await poll(lambda: transport.sent[-1]["method"] == "notifications/cancelled", what="cancel")
    cancel = transport.sent[-1]
    assert cancel["params"] == {"requestId": transport.requests[-1]["id"], "reason": "timed out"}


async def test_a_cancellation_the_server_does_not_take_does_not_hold_the_caller() -> None:
    """A hung server may not take the cancellation either (a POST it never answers): the
    timed-out call ends at its time limit all the same."""

    async def script(m: Message) -> Message:
        await asyncio.sleep(10)
        raise AssertionError

    session, transport = await connected(script)
    stuck = asyncio.Event()

    async def send(message: Message) -> None:
        stuck.set()
        await asyncio.sleep(3600)

    transport.send = send  # type: ignore[method-assign]
    async with asyncio.timeout(2):
        with pytest.raises(UpstreamTimeout):
            await session.request("tools/call", {}, timeout=0.05)
    await stuck.wait()  # the cancellation was tried, and is still trying
    await session.close()  # which gives it up


async def test_caller_cancellation_is_forwarded() -> None:
    started = asyncio.Event()

    async def script(m: Message) -> Message:
        started.set()
        await asyncio.sleep(10)
        raise AssertionError

    session, transport = await connected(script)
    task = asyncio.create_task(session.request("tools/call", {}, timeout=5))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert transport.sent[-1]["params"]["reason"] == "cancelled by the client"


async def test_incoming_requests_and_notifications() -> None:
    session, transport = await connected(script_of(None))
    notes: list[Message] = []

    async def on_notification(message: Message) -> None:
        notes.append(message)

    async def on_request(message: Message) -> dict[str, Any]:
        if message["method"] == "roots/list":
            return {"roots": []}
        raise InvalidParams("no such thing")

    session.on_notification = on_notification
    session.on_server_request = on_request
    await transport.on_message({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
    await transport.on_message({"jsonrpc": "2.0", "id": "a", "method": "roots/list"})
    await transport.on_message({"jsonrpc": "2.0", "id": "b", "method": "ping"})
    await transport.on_message({"jsonrpc": "2.0", "id": "c", "method": "sampling/createMessage"})
    await poll(lambda: len(transport.sent) >= 4, timeout=5, what="three replies")
    assert notes == [{"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}]
    replies = {m["id"]: m for m in transport.sent[1:]}
    assert replies["a"]["result"] == {"roots": []}
    assert replies["b"]["result"] == {}
    assert replies["c"]["error"] == {"code": -32602, "message": "no such thing"}


async def test_meta_uses_the_callers_capabilities() -> None:
    session, _ = await connected(script_of(None), era="modern")
    meta = session.meta({"progressToken": 3}, {"sampling": {}})
    assert meta[PROTOCOL_VERSION_KEY] == "2026-07-28"
    assert meta[CLIENT_CAPS_KEY] == {"sampling": {}}
    assert meta["progressToken"] == 3
    assert set(session.meta()[CLIENT_CAPS_KEY]) == {"sampling", "elicitation", "roots"}


async def test_refused_server_request_without_a_handler() -> None:
    _, transport = await connected(script_of(None))
    await transport.on_message({"jsonrpc": "2.0", "id": 9, "method": "roots/list"})
    await poll(lambda: len(transport.sent) >= 2, timeout=5, what="the refusal")
    assert transport.sent[-1]["error"]["code"] == -32603
    assert transport.sent[-1]["error"]["message"] == "no client can answer roots/list now"
