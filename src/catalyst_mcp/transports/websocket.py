"""MCP over WebSocket (``/ws``): one JSON-RPC message per text frame, both eras on one socket.

The handshake gets the same checks as ``/mcp`` before anything is upgraded: the ``Origin`` and
``Host`` rules (403), authentication from the ``Authorization`` header (401 with
``WWW-Authenticate``), and the subprotocol: the client must offer ``mcp`` (400 otherwise), and
the gateway answers with it. Then the socket is a :class:`~catalyst_mcp.transports.stream.
MessageStream`: a legacy client ``initialize``\\ s on it and the socket is its session (list
changes, progress, log messages and sampling/elicitation requests come down the socket); a
modern client sends ``_meta`` with every request.

Frames the gateway cannot take close the socket with the code that says why: binary (1003), a
message over ``gateway.max_request_bytes`` (1009), text that is not UTF-8 (1007, by the
server). A text frame that is not a JSON-RPC message gets a JSON-RPC error and the socket
stays open. Closing the socket cancels everything it has in flight; when the gateway stops,
the requests in flight finish first and the socket closes with 1001.
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from typing import Any

import orjson

from catalyst_mcp.context import Identity
from catalyst_mcp.errors import InvalidRequest
from catalyst_mcp.protocol.dispatch import Dispatcher
from catalyst_mcp.protocol.jsonrpc import Message, error_response
from catalyst_mcp.settings import GatewaySettings
from catalyst_mcp.transports.asgi import (
    OriginPolicy,
    Receive,
    Scope,
    Send,
    header_map,
    send_bytes,
    send_json,
)
from catalyst_mcp.transports.authgate import AuthGate
from catalyst_mcp.transports.stream import MessageStream

__all__ = ["SUBPROTOCOL", "WEBSOCKET_PATH", "WebSocketEndpoint"]

log = logging.getLogger("catalyst.websocket")

WEBSOCKET_PATH = "/ws"
SUBPROTOCOL = "mcp"

# Close codes (RFC 6455 section 7.4.1)
GOING_AWAY = 1001
UNSUPPORTED_DATA = 1003
MESSAGE_TOO_BIG = 1009


class WebSocketEndpoint:
    """The ``/ws`` endpoint: checks a handshake, then serves the socket."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        auth: AuthGate,
        origins: OriginPolicy,
        settings: GatewaySettings,
    ) -> None:
        self.dispatcher = dispatcher
        self.auth = auth
        self.origins = origins
        self.settings = settings
        self.sockets: set[WebSocketStream] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ``websocket`` scope (any path: this endpoint refuses the others)."""
        if (await receive())["type"] != "websocket.connect":
            return
        deny = _denial(send)
        headers = header_map(scope)
        if not self.settings.websocket or scope["path"] != WEBSOCKET_PATH:
            await send_bytes(deny, 404, b'{"error":"not found"}')
            return
        refusal = self.origins.refusal(headers.get(b"origin"), headers.get(b"host"))
        if refusal is not None:
            await send_json(deny, 403, error_response(None, InvalidRequest(refusal)))
            return
        if SUBPROTOCOL not in scope.get("subprotocols", ()):
            why = InvalidRequest(
                f"Bad Request: offer the WebSocket subprotocol {SUBPROTOCOL!r} "
                f"(Sec-WebSocket-Protocol: {SUBPROTOCOL})"
            )
            await send_json(deny, 400, error_response(None, why))
            return
        identity = await self.auth.identify(scope, headers, deny)
        if identity is None:
            return  # 401 sent
        await send({"type": "websocket.accept", "subprotocol": SUBPROTOCOL})
        stream = WebSocketStream(self.dispatcher, identity, send, self.settings.max_request_bytes)
        self.sockets.add(stream)
        try:
            await stream.run(receive)
        finally:
            self.sockets.discard(stream)

    async def upgrade_required(self, send: Send) -> None:
        """A plain HTTP request to ``/ws``: say how to reach it."""
        why = InvalidRequest(
            f"Upgrade Required: {WEBSOCKET_PATH} speaks MCP over WebSocket "
            f"(subprotocol {SUBPROTOCOL!r}); Streamable HTTP is at {self.settings.mcp_path}"
        )
        await send_json(
            send,
            426,
            error_response(None, why),
            [(b"upgrade", b"websocket"), (b"connection", b"upgrade")],
        )


class WebSocketStream(MessageStream):
    """One accepted socket: text frames in, text frames out."""

    transport = "websocket"

    def __init__(self, dispatcher: Dispatcher, identity: Identity, send: Send, limit: int) -> None:
        super().__init__(dispatcher, identity)
        self.send = send
        self.limit = limit
        self.open = True

    async def write(self, message: Message) -> None:
        await self.send({"type": "websocket.send", "text": orjson.dumps(message).decode()})

    async def run(self, receive: Receive) -> None:
        try:
            while True:
                event = await receive()
                kind = event["type"]
                if kind == "websocket.receive":
                    text = event.get("text")
                    if text is None:
                        await self.close_socket(
                            UNSUPPORTED_DATA, "binary frames are not MCP: send JSON-RPC as text"
                        )
                        return
                    if len(text) > self.limit:
                        # the server's framing limit normally stops it first (same setting)
                        await self.close_socket(
                            MESSAGE_TOO_BIG, f"a message may hold at most {self.limit} bytes"
                        )
                        return
                    await self.receive(text)
                elif kind == "websocket.disconnect":
                    if event.get("stopping"):  # the gateway stops: finish, then go
                        await self.finish()
                        await self.close_socket(GOING_AWAY, "the gateway is stopping")
                    self.open = False
                    return
        finally:
            self.open = False
            await self.close()

    async def session_ended(self) -> None:
        """The gateway closed this socket's session (evicted, or stopping): the socket goes
        with it, or the client would wait on a session that no longer exists."""
        await self.close_socket(GOING_AWAY, "the session ended")

    async def close_socket(self, code: int, reason: str) -> None:
        if self.open:
            self.open = False
            await self.send({"type": "websocket.close", "code": code, "reason": reason})


def _denial(send: Send) -> Send:
    """``send`` for an HTTP answer to a handshake (the ASGI WebSocket denial response)."""

    async def deny(message: MutableMapping[str, Any]) -> None:
        message["type"] = "websocket." + message["type"]
        await send(message)

    return deny
