"""WebSocket in the gateway's HTTP server: the ASGI ``websocket`` protocol over a loopback
socket, spoken to by the ``websockets`` client and in raw frames (for what a well-behaved client
never sends)."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from catalyst_mcp.transports.httpserver import Limits
from catalyst_mcp.transports.serving import HttpServer
from tests.live import poll
from tests.transports.test_httpserver import Reader, connect, echo, request, running

pytestmark = pytest.mark.network

KEY = "dGhlIHNhbXBsZSBub25jZQ=="
ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455's example answer to KEY


class WsApp:
    """Accepts (with the first subprotocol offered) and echoes; records what it received.

    ``mode`` changes the answer to the handshake: ``deny`` (401 with a challenge), ``close``
    (websocket.close before accepting), ``crash`` (raises before accepting), ``crash-later``
    (raises on the first message), ``slow`` (answers each message after ``release``)."""

    def __init__(self, mode: str = "echo") -> None:
        self.mode = mode
        self.scopes: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []
        self.release = asyncio.Event()
        self.ended = asyncio.Event()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.scopes.append(scope)
            await echo(scope, receive, send)
            return
        self.scopes.append(scope)
        try:
            await self._socket(scope, receive, send)
        finally:
            self.ended.set()

    async def _socket(self, scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "websocket.connect"
        if self.mode == "deny":
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": 401,
                    "headers": [(b"www-authenticate", b'Bearer realm="t"')],
                }
            )
            await send({"type": "websocket.http.response.body", "body": b"who are you?"})
            return
        if self.mode == "close":
            await send({"type": "websocket.close", "code": 1000})
            return
        if self.mode == "crash":
            raise RuntimeError("bug before accepting")
        offered = scope["subprotocols"]
        await send({"type": "websocket.accept", "subprotocol": offered[0] if offered else None})
        pending: set[asyncio.Task[None]] = set()
        while True:
            message = await receive()
            self.received.append(message)
            if message["type"] == "websocket.disconnect":
                if message.get("stopping"):
                    await asyncio.gather(*pending)
                return
            if self.mode == "crash-later":
                raise RuntimeError("bug after accepting")
            if self.mode == "slow":
                pending.add(asyncio.create_task(self._later(send, message)))
            else:
                await send({**message, "type": "websocket.send"})

    async def _later(self, send: Any, message: dict[str, Any]) -> None:
        await self.release.wait()
        await send({**message, "type": "websocket.send"})


@contextlib.asynccontextmanager
async def ws_server(app: WsApp, **limits: Any) -> AsyncIterator[HttpServer]:
    async with running(app, limits=Limits(**limits), graceful_seconds=3) as server:
        yield server


def url(server: HttpServer, path: str = "/ws") -> str:
    return f"ws://127.0.0.1:{server.addresses[0][1]}{path}"


def handshake(extra: str = "", key: str = KEY, path: str = "/ws") -> bytes:
    return (
        f"GET {path} HTTP/1.1\r\nhost: test\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
        f"sec-websocket-key: {key}\r\nsec-websocket-version: 13\r\n{extra}\r\n"
    ).encode()


def frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """A client frame (masked, as a client must)."""
    mask = b"\x01\x02\x03\x04"
    head = bytes([(0x80 if fin else 0) | opcode])
    size = len(payload)
    if size < 126:
        head += bytes([0x80 | size])
    elif size < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", size)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", size)
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def read_head(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(5):
        return await reader.readuntil(b"\r\n\r\n")


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One server frame (unmasked): its opcode and payload."""
    async with asyncio.timeout(5):
        first, second = await reader.readexactly(2)
        size = second & 0x7F
        if size == 126:
            size = struct.unpack("!H", await reader.readexactly(2))[0]
        elif size == 127:
            size = struct.unpack("!Q", await reader.readexactly(8))[0]
        return first & 0x0F, await reader.readexactly(size)


def close_code(payload: bytes) -> int:
    return int(struct.unpack("!H", payload[:2])[0])


async def open_raw(server: HttpServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await connect(server)
    writer.write(handshake())
    assert (await read_head(reader)).startswith(b"HTTP/1.1 101")
    return reader, writer


# ---- the handshake ---------------------------------------------------------------------------


async def test_messages_echo_and_the_app_chooses_the_subprotocol() -> None:
    app = WsApp()
    async with ws_server(app) as server, ws_connect(url(server), subprotocols=["mcp"]) as ws:
        assert ws.subprotocol == "mcp"
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await ws.send(b"\x00\x01")
        assert await ws.recv() == b"\x00\x01"
        await ws.send(["frag", "mented"])  # one message in three frames
        assert await ws.recv() == "fragmented"
    scope = app.scopes[0]
    assert (scope["type"], scope["scheme"], scope["path"]) == ("websocket", "ws", "/ws")
    assert scope["subprotocols"] == ["mcp"]
    assert "websocket.http.response" in scope["extensions"]


async def test_a_broken_handshake_is_refused_without_the_app() -> None:
    app = WsApp()
    async with ws_server(app) as server:
        reader, writer = await connect(server)
        writer.write(handshake(key="not-a-key"))
        response = await Reader(reader).next()
        assert response.status == 400
        assert b"Sec-WebSocket-Key" in response.body
        assert await reader.read() == b""
        writer.close()
    assert app.scopes == []


async def test_the_accept_answer_is_rfc_6455s() -> None:
    async with ws_server(WsApp()) as server:
        reader, writer = await connect(server)
        writer.write(handshake())
        head = await read_head(reader)
        assert head.startswith(b"HTTP/1.1 101")
        assert b"Sec-WebSocket-Accept: " + ACCEPT in head
        assert b"Sec-WebSocket-Protocol" not in head  # none offered, none chosen
        writer.close()


async def test_the_app_may_deny_with_an_http_response() -> None:
    async with ws_server(WsApp("deny")) as server:
        with pytest.raises(InvalidStatus) as caught:
            async with ws_connect(url(server)):
                pass
    response = caught.value.response
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="t"'
    assert response.body == b"who are you?"


@pytest.mark.parametrize(("mode", "status"), [("close", 403), ("crash", 500)])
async def test_closing_or_failing_before_accepting_refuses(mode: str, status: int) -> None:
    async with ws_server(WsApp(mode)) as server:
        with pytest.raises(InvalidStatus) as caught:
            async with ws_connect(url(server)):
                pass
    assert caught.value.response.status_code == status


async def test_without_connection_upgrade_it_is_a_plain_request() -> None:
    app = WsApp()
    async with ws_server(app) as server:
        reader, writer = await connect(server)
        writer.write(request(path="/ws", headers="upgrade: websocket\r\n"))
        response = await Reader(reader).next()
        assert response.status == 200
        assert response.body.startswith(b"GET /ws")
        writer.close()
    assert app.scopes[0]["type"] == "http"


async def test_an_upgrade_pipelined_behind_a_request_waits_its_turn() -> None:
    async with ws_server(WsApp()) as server:
        reader, writer = await connect(server)
        writer.write(request(path="/first") + handshake() + frame(0x1, b"early"))
        async with asyncio.timeout(5):
            seen = await reader.readuntil(b"early")
        first, _, rest = seen.partition(b"HTTP/1.1 101")
        assert first.startswith(b"HTTP/1.1 200") and b"GET /first" in first
        assert rest  # the 101 came second, then the echo of the frame sent with it
        writer.close()


async def test_frames_sent_with_the_handshake_are_not_lost() -> None:
    app = WsApp()
    async with ws_server(app) as server:
        reader, writer = await connect(server)
        writer.write(handshake() + frame(0x1, b"right away"))
        assert (await read_head(reader)).startswith(b"HTTP/1.1 101")
        assert await read_frame(reader) == (0x1, b"right away")
        writer.close()


# ---- frames ----------------------------------------------------------------------------------


async def test_a_message_over_the_limit_closes_with_1009() -> None:
    app = WsApp()
    async with (
        ws_server(app, max_message_bytes=1000) as server,
        ws_connect(url(server), max_size=None) as ws,
    ):
        await ws.send("x" * 1000)
        assert len(await ws.recv()) == 1000
        await ws.send("x" * 1001)
        with pytest.raises(ConnectionClosed) as caught:
            await ws.recv()
        assert caught.value.rcvd is not None
        assert caught.value.rcvd.code == 1009
    await poll(lambda: app.ended.is_set(), timeout=5)
    assert app.received[-1]["code"] == 1009


async def test_text_that_is_not_utf8_closes_with_1007() -> None:
    app = WsApp()
    async with ws_server(app) as server, ws_connect(url(server)) as ws:
        await ws.send(b"\xff\xfe", text=True)
        with pytest.raises(ConnectionClosed) as caught:
            await ws.recv()
        assert caught.value.rcvd is not None
        assert caught.value.rcvd.code == 1007
    await poll(lambda: app.ended.is_set(), timeout=5)
    assert app.received[-1]["code"] == 1007


async def test_a_protocol_error_closes_with_1002() -> None:
    async with ws_server(WsApp()) as server:
        reader, writer = await open_raw(server)
        writer.write(frame(0x0, b"a continuation of nothing"))
        opcode, payload = await read_frame(reader)
        assert (opcode, close_code(payload)) == (0x8, 1002)
        assert await reader.read() == b""
        writer.close()


async def test_pings_are_answered() -> None:
    async with ws_server(WsApp()) as server:
        reader, writer = await open_raw(server)
        writer.write(frame(0x9, b"are you there"))
        assert await read_frame(reader) == (0xA, b"are you there")
        writer.close()


async def test_the_closing_handshake_echoes_and_the_app_hears_the_code() -> None:
    app = WsApp()
    async with ws_server(app) as server:
        reader, writer = await open_raw(server)
        writer.write(frame(0x8, struct.pack("!H", 4000) + b"bye"))
        opcode, payload = await read_frame(reader)
        assert (opcode, close_code(payload)) == (0x8, 4000)
        assert await reader.read() == b""
        writer.close()
        await poll(lambda: app.ended.is_set(), timeout=5)
    assert app.received[-1] == {"type": "websocket.disconnect", "code": 4000, "reason": "bye"}


async def test_a_client_that_vanishes_is_a_1006_disconnect() -> None:
    app = WsApp()
    async with ws_server(app) as server:
        _, writer = await open_raw(server)
        writer.transport.abort()
        await poll(lambda: app.ended.is_set(), timeout=5)
    assert app.received[-1]["code"] == 1006


async def test_a_failing_app_closes_the_socket_with_1011(caplog: pytest.LogCaptureFixture) -> None:
    async with ws_server(WsApp("crash-later")) as server, ws_connect(url(server)) as ws:
        await ws.send("boom")
        with pytest.raises(ConnectionClosed) as caught:
            await ws.recv()
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == 1011
    assert "bug after accepting" in caplog.text


# ---- keepalive and stopping -----------------------------------------------------------------


async def test_a_silent_client_is_pinged_then_closed() -> None:
    async with ws_server(WsApp(), ping_seconds=0.2) as server:
        reader, writer = await open_raw(server)
        opcode, _ = await read_frame(reader)
        assert opcode == 0x9  # pinged ...
        opcode, payload = await read_frame(reader)  # ... no pong: closed
        assert (opcode, close_code(payload)) == (0x8, 1011)
        writer.close()


async def test_a_client_that_answers_pings_stays() -> None:
    async with (
        ws_server(WsApp(), ping_seconds=0.2) as server,
        ws_connect(url(server), ping_interval=None) as ws,
    ):
        await asyncio.sleep(1.0)  # five intervals: the client library answers each ping
        await ws.send("still here")
        assert await ws.recv() == "still here"


async def test_a_stop_lets_answers_in_flight_go_out_then_closes_with_1001() -> None:
    app = WsApp("slow")
    sock_server: HttpServer
    async with ws_server(app) as server, ws_connect(url(server)) as ws:
        sock_server = server
        await ws.send("in flight")
        await poll(lambda: len(app.received) == 1, what="the message reached the app")
        server.stop()
        await poll(lambda: any(m.get("stopping") for m in app.received), what="stopping")
        app.release.set()
        assert await ws.recv() == "in flight"
        with pytest.raises(ConnectionClosed) as caught:
            await ws.recv()
        assert caught.value.rcvd is not None
        assert caught.value.rcvd.code == 1001
    assert not sock_server.connections


async def test_a_socket_accepted_while_the_server_stops_hears_it_at_once() -> None:
    app = WsApp()
    arrived, gate = asyncio.Event(), asyncio.Event()

    async def slow_to_accept(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            arrived.set()
            await gate.wait()  # e.g. an API key looked up in the database
        await app(scope, receive, send)

    async with running(slow_to_accept, graceful_seconds=3) as server:
        reader, writer = await connect(server)
        writer.write(handshake())
        await asyncio.wait_for(arrived.wait(), 5)
        server.stop()
        await asyncio.sleep(0.1)
        gate.set()
        assert (await read_head(reader)).startswith(b"HTTP/1.1 101")
        opcode, payload = await read_frame(reader)
        assert (opcode, close_code(payload)) == (0x8, 1001)
        writer.write(frame(0x8, payload))
        writer.close()
    assert app.received[-1]["stopping"] is True
