"""MCP over WebSocket (``/ws``) through a whole gateway on a loopback socket, spoken to by an
independent client: the ``websockets`` library (the official SDK has no WebSocket client)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import jwt
import orjson
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from catalyst_mcp.app import Gateway
from catalyst_mcp.protocol.versions import SUBSCRIPTION_ID_KEY
from catalyst_mcp.settings import Settings
from catalyst_mcp.transports.serving import HttpServer
from tests.fakes import (
    FakeProvider,
    initialize_request,
    legacy_request,
    meta,
    modern_request,
    tool,
)
from tests.live import LiveGateway, bound_socket, live_gateway, poll, start
from tests.transports.test_httpserver import Reader
from tests.transports.test_wsconnection import handshake

pytestmark = pytest.mark.network

SECRET = "an-hs256-secret-of-at-least-32-bytes!!"
RESOURCE = "http://127.0.0.1/mcp"


class Socket:
    """One WebSocket client: JSON-RPC messages as dicts."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws

    async def send(self, message: dict[str, Any]) -> None:
        await self.ws.send(orjson.dumps(message).decode())

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        async with asyncio.timeout(timeout):
            data = await self.ws.recv()
        assert isinstance(data, str), "the gateway sends text frames"
        message: dict[str, Any] = orjson.loads(data)
        return message

    async def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        await self.send(message)
        return await self.next()

    async def closed_with(self) -> int:
        """The close code the gateway sent (waits for the socket to close)."""
        async with asyncio.timeout(5):
            await self.ws.wait_closed()
        close = self.ws.protocol.close_rcvd
        assert close is not None, "the gateway sent no close frame"
        return close.code


def ws_url(live: LiveGateway) -> str:
    return f"ws://127.0.0.1:{live.port}/ws"


@contextlib.asynccontextmanager
async def socket(live: LiveGateway, **options: Any) -> AsyncIterator[Socket]:
    options.setdefault("subprotocols", ["mcp"])
    async with ws_connect(ws_url(live), **options) as ws:
        yield Socket(ws)


async def refused(live: LiveGateway, **options: Any) -> tuple[int, dict[str, str], Any]:
    """Status, headers and JSON body of a handshake the gateway refuses."""
    with pytest.raises(InvalidStatus) as caught:
        async with socket(live, **options):
            pass
    response = caught.value.response
    return response.status_code, dict(response.headers), orjson.loads(response.body)


@pytest.fixture
async def live(fake_provider: FakeProvider) -> AsyncIterator[LiveGateway]:
    async with live_gateway({}, [fake_provider]) as live:
        yield live


def echo(text: str) -> dict[str, Any]:
    return {"name": "fake__echo", "arguments": {"text": text}}


# ---- both eras -------------------------------------------------------------------------------


async def test_modern_list_and_call(live: LiveGateway) -> None:
    async with socket(live) as ws:
        assert ws.ws.subprotocol == "mcp"
        listed = await ws.ask(modern_request("tools/list", request_id="l"))
        assert listed["id"] == "l"
        assert "fake__echo" in [t["name"] for t in listed["result"]["tools"]]
        called = await ws.ask(modern_request("tools/call", echo("over ws"), request_id=2))
        assert called["id"] == 2
        assert called["result"]["content"] == [{"type": "text", "text": "over ws"}]
        assert called["result"]["resultType"] == "complete"
        assert live.gateway.sessions.__len__() == 0  # modern: stateless


async def test_legacy_client_initializes_and_the_socket_is_its_session(live: LiveGateway) -> None:
    async with socket(live) as ws:
        init = await ws.ask(initialize_request("2025-06-18"))
        assert init["result"]["protocolVersion"] == "2025-06-18"
        await ws.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        called = await ws.ask(legacy_request("tools/call", echo("legacy")))
        assert called["result"] == {"content": [{"type": "text", "text": "legacy"}]}
        assert (await ws.ask(legacy_request("ping", request_id="p")))["result"] == {}
        assert len(live.gateway.sessions) == 1
        again = await ws.ask(initialize_request())
        assert again["error"]["code"] == -32600
    await poll(lambda: len(live.gateway.sessions) == 0, what="the session ends with the socket")


async def test_an_idle_socket_keeps_its_session(fake_provider: FakeProvider) -> None:
    settings = {"gateway": {"session_idle_seconds": 0.2}}
    async with live_gateway(settings, [fake_provider]) as live, socket(live) as ws:
        await ws.ask(initialize_request())
        await asyncio.sleep(0.6)  # three idle periods with nothing sent
        live.gateway.sessions.sweep()
        assert len(live.gateway.sessions) == 1
        assert (await ws.ask(legacy_request("ping", request_id="p")))["result"] == {}


async def test_a_session_the_gateway_ends_closes_its_socket(live: LiveGateway) -> None:
    async with socket(live) as ws:
        await ws.ask(initialize_request())
        (session,) = list(live.gateway.sessions)
        live.gateway.sessions.remove(session.id)  # evicted, say
        assert await ws.closed_with() == 1001


async def test_legacy_list_changes_come_down_the_socket(
    live: LiveGateway, fake_provider: FakeProvider
) -> None:
    async with socket(live) as ws:
        await ws.ask(initialize_request())
        fake_provider.set_items("tools", [tool("new")])
        assert await ws.next() == {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}


async def test_modern_listen_on_the_socket(live: LiveGateway, fake_provider: FakeProvider) -> None:
    async with socket(live) as ws:
        listen = modern_request(
            "subscriptions/listen", {"notifications": {"toolsListChanged": True}}, request_id="L"
        )
        ack = await ws.ask(listen)
        assert ack["method"] == "notifications/subscriptions/acknowledged"
        fake_provider.set_items("tools", [tool("new")])
        changed = await ws.next()
        assert changed["method"] == "notifications/tools/list_changed"
        assert changed["params"]["_meta"][SUBSCRIPTION_ID_KEY] == "L"
        # the socket still serves requests next to its listen
        listed = await ws.ask(modern_request("tools/list", request_id="after"))
        assert [t["name"] for t in listed["result"]["tools"]] == ["fake__new"]
    await poll(lambda: not live.gateway.hub.listeners, what="the listen ends with the socket")


async def test_progress_and_log_messages_come_before_the_result(live: LiveGateway) -> None:
    async with socket(live) as ws:
        params = {"name": "fake__progress", "_meta": meta(progressToken="tok")}
        await ws.send({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": params})
        first, second, final = await ws.next(), await ws.next(), await ws.next()
        assert first["method"] == second["method"] == "notifications/progress"
        assert [first["params"]["progress"], second["params"]["progress"]] == [1, 2]
        assert first["params"]["progressToken"] == "tok"
        assert final["id"] == 7
        await ws.ask(initialize_request())
        await ws.send(legacy_request("tools/call", {"name": "fake__log"}, request_id="log"))
        logged = [await ws.next() for _ in range(4)]
        assert [m.get("method") for m in logged[:3]] == ["notifications/message"] * 3
        assert logged[3]["id"] == "log"


async def test_an_elicitation_is_asked_and_answered_on_the_socket(live: LiveGateway) -> None:
    async with socket(live) as ws:
        await ws.ask(initialize_request(capabilities={"elicitation": {}}))
        await ws.send(legacy_request("tools/call", {"name": "fake__ask"}, request_id="c"))
        question = await ws.next()
        assert question["method"] == "elicitation/create"
        reply = {"jsonrpc": "2.0", "id": question["id"], "result": {"action": "accept"}}
        await ws.send({**reply, "result": {"action": "accept", "content": {"n": 1}}})
        final = await ws.next()
        assert final["id"] == "c"
        assert final["result"]["content"][0]["text"] == "answer: {'n': 1}"


@pytest.mark.parametrize("era", ["modern", "legacy"])
async def test_closing_the_socket_cancels_its_calls(
    live: LiveGateway, fake_provider: FakeProvider, era: str
) -> None:
    async with socket(live) as ws:
        if era == "legacy":
            await ws.ask(initialize_request())
            await ws.send(legacy_request("tools/call", {"name": "fake__wait"}))
        else:
            await ws.send(modern_request("tools/call", {"name": "fake__wait"}))
        await asyncio.wait_for(fake_provider.entered.wait(), 5)
    await asyncio.wait_for(fake_provider.cancelled.wait(), 5)


async def test_a_modern_cancel_notification_stops_one_call(
    live: LiveGateway, fake_provider: FakeProvider
) -> None:
    async with socket(live) as ws:
        call = modern_request("tools/call", {"name": "fake__wait"}, request_id="w")
        await ws.send(call)
        await asyncio.wait_for(fake_provider.entered.wait(), 5)
        cancel = {"requestId": "w", "_meta": meta()}
        await ws.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": cancel})
        await asyncio.wait_for(fake_provider.cancelled.wait(), 5)
        assert (await ws.ask(modern_request("tools/list", request_id="n")))["id"] == "n"


# ---- what the gateway cannot take ------------------------------------------------------------


async def test_bad_json_gets_a_json_rpc_error_and_the_socket_stays(live: LiveGateway) -> None:
    async with socket(live) as ws:
        await ws.ws.send("{oops")
        assert (await ws.next())["error"]["code"] == -32700
        await ws.ws.send("[]")
        batch = await ws.next()
        assert batch["error"]["code"] == -32600
        assert "batches" in batch["error"]["message"]
        await ws.ws.send('{"jsonrpc": "1.0"}')
        assert (await ws.next())["error"]["code"] == -32600
        assert (await ws.ask(modern_request("tools/list", request_id="ok")))["id"] == "ok"


async def test_a_binary_frame_closes_with_1003(live: LiveGateway) -> None:
    async with socket(live) as ws:
        await ws.ws.send(orjson.dumps(modern_request("tools/list")))
        assert await ws.closed_with() == 1003


async def test_a_message_over_max_request_bytes_closes_with_1009(
    fake_provider: FakeProvider,
) -> None:
    async with (
        live_gateway({"gateway": {"max_request_bytes": 2000}}, [fake_provider]) as live,
        socket(live) as ws,
    ):
        fits = modern_request("tools/call", echo("x" * 1000), request_id="fits")
        assert (await ws.ask(fits))["id"] == "fits"
        await ws.send(modern_request("tools/call", echo("x" * 2000)))
        assert await ws.closed_with() == 1009


# ---- the handshake ---------------------------------------------------------------------------


async def test_a_client_that_does_not_offer_mcp_is_refused_with_400(live: LiveGateway) -> None:
    status, _, body = await refused(live, subprotocols=None)
    assert status == 400
    assert "Sec-WebSocket-Protocol: mcp" in body["error"]["message"]
    status, _, _ = await refused(live, subprotocols=["chat"])
    assert status == 400


async def test_a_foreign_origin_or_host_is_refused_with_403(live: LiveGateway) -> None:
    status, _, body = await refused(live, origin="https://evil.example")
    assert status == 403
    assert "Origin" in body["error"]["message"]
    reader, writer = await asyncio.open_connection("127.0.0.1", live.port)
    writer.write(handshake("sec-websocket-protocol: mcp\r\n").replace(b"host: test", b"host: evil"))
    response = await Reader(reader).next()
    writer.close()
    assert response.status == 403
    assert "Host" in orjson.loads(response.body)["error"]["message"]
    async with socket(live, origin=f"http://localhost:{live.port}") as ws:  # loopback: fine
        assert (await ws.ask(modern_request("tools/list", request_id=1)))["id"] == 1


async def test_a_plain_get_learns_the_socket_needs_an_upgrade(live: LiveGateway) -> None:
    async with httpx2.AsyncClient() as client:
        response = await client.get(f"{live.base}/ws")
    assert response.status_code == 426
    assert response.headers["upgrade"] == "websocket"
    assert "/mcp" in response.json()["error"]["message"]


async def test_the_setting_turns_it_off(fake_provider: FakeProvider) -> None:
    async with live_gateway({"gateway": {"websocket": False}}, [fake_provider]) as live:
        status, _, _ = await refused(live)
        assert status == 404
        async with httpx2.AsyncClient() as client:
            assert (await client.get(f"{live.base}/ws")).status_code == 404


async def test_other_paths_are_not_sockets(live: LiveGateway) -> None:
    with pytest.raises(InvalidStatus) as caught:
        async with ws_connect(f"ws://127.0.0.1:{live.port}/mcp", subprotocols=["mcp"]):
            pass
    assert caught.value.response.status_code == 404


# ---- authentication --------------------------------------------------------------------------


def auth_settings(tmp_path: Path) -> dict[str, Any]:
    return {
        "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/catalyst.db"},
        "auth": {"enabled": True, "resource_url": RESOURCE, "jwt": {"hs256_secret": SECRET}},
    }


def token(subject: str = "carol") -> str:
    claims = {"sub": subject, "aud": RESOURCE, "exp": int(time.time()) + 60, "roles": ["admin"]}
    return jwt.encode(claims, SECRET, algorithm="HS256")


async def test_with_auth_on_the_handshake_needs_credentials(
    tmp_path: Path, fake_provider: FakeProvider
) -> None:
    async with live_gateway(auth_settings(tmp_path), [fake_provider]) as live:
        status, headers, body = await refused(live)
        assert status == 401
        assert headers["www-authenticate"].startswith("Bearer")
        assert body["error"]["code"] == -32600
        status, headers, _ = await refused(
            live, additional_headers={"Authorization": "Bearer not-a-token"}
        )
        assert status == 401
        assert 'error="invalid_token"' in headers["www-authenticate"]
        bearer = {"Authorization": f"Bearer {token()}"}
        async with socket(live, additional_headers=bearer) as ws:
            await ws.ask(initialize_request())
            called = await ws.ask(legacy_request("tools/call", echo("hi")))
            assert called["result"]["content"][0]["text"] == "hi"
            (session,) = list(live.gateway.sessions)
            assert session.identity.subject == "carol"
            assert fake_provider.calls[-1][2].identity.subject == "carol"


# ---- stopping --------------------------------------------------------------------------------


async def test_a_gateway_stop_finishes_calls_in_flight_then_closes_with_1001(
    fake_provider: FakeProvider,
) -> None:
    gateway = Gateway(Settings(), [fake_provider])
    sock = bound_socket()
    server = HttpServer(gateway.asgi, graceful_seconds=5)
    task = await start(server, sock)
    try:
        port = sock.getsockname()[1]
        async with ws_connect(f"ws://127.0.0.1:{port}/ws", subprotocols=["mcp"]) as raw:
            ws = Socket(raw)
            await ws.send(modern_request("tools/call", {"name": "fake__wait"}, request_id="w"))
            await asyncio.wait_for(fake_provider.entered.wait(), 5)
            server.stop()
            await asyncio.sleep(0.2)  # the stop has begun: the call is still running
            assert not task.done()
            fake_provider.release.set()
            answer = await ws.next()
            assert answer["id"] == "w"
            assert answer["result"]["content"][0]["text"] == "released"
            assert await ws.closed_with() == 1001
        async with asyncio.timeout(5):
            await task
    finally:
        if not task.done():
            task.cancel()
        sock.close()
    assert not fake_provider.cancelled.is_set()


# ---- a real upstream -------------------------------------------------------------------------


@pytest.mark.subprocess
async def test_a_real_upstream_through_the_socket_in_both_eras(upstream_http: str) -> None:
    async with (
        live_gateway({"servers": {"up": {"url": upstream_http}}}) as live,
        socket(live) as ws,
    ):
        listed = await ws.ask(modern_request("tools/list", request_id=1))
        assert "up__echo" in [t["name"] for t in listed["result"]["tools"]]
        call = {"name": "up__echo", "arguments": {"text": "through"}}
        modern = await ws.ask(modern_request("tools/call", call, request_id=2))
        assert modern["result"]["content"][0]["text"] == "through"
        await ws.ask(initialize_request())
        legacy = await ws.ask(legacy_request("tools/call", call, request_id=3))
        assert legacy["result"]["content"][0]["text"] == "through"
