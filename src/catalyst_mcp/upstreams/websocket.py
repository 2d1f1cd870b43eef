"""MCP over WebSocket towards an upstream (``ws://`` / ``wss://``): one JSON-RPC message per
text frame, the ``mcp`` subprotocol, both eras on one socket.

The socket is one message stream each way, like stdio: requests are matched to responses by id
(:class:`~catalyst_mcp.upstreams.base.StreamTransport`), everything else the server sends
(notifications, server→client requests) goes to ``on_message``. The framing, masking, pings and
the closing handshake are the ``websockets`` library's. A refused handshake (401, 403, 404, no
``mcp`` subprotocol) is one :class:`UpstreamUnavailable` naming the status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any
from urllib.parse import urlsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from catalyst_mcp.errors import UpstreamUnavailable
from catalyst_mcp.protocol.jsonrpc import Message
from catalyst_mcp.upstreams.base import StreamTransport

__all__ = ["SUBPROTOCOL", "WebSocketTransport"]

log = logging.getLogger("catalyst.upstream")

SUBPROTOCOL = "mcp"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # what one message from an upstream may weigh


class WebSocketTransport(StreamTransport):
    """A WebSocket connection to an MCP server's ``ws://`` or ``wss://`` endpoint."""

    def __init__(
        self,
        server: str,
        url: str,
        headers: dict[str, str] | None = None,
        connect_timeout: float = 30.0,
    ) -> None:
        super().__init__(server)
        self.url = url
        self.extra_headers = dict(headers or {})
        self.connect_timeout = connect_timeout
        self._socket: ClientConnection | None = None
        self._reader: asyncio.Task[None] | None = None
        self._closing = False

    async def open(self) -> None:
        try:
            self._socket = await connect(
                self.url,
                subprotocols=[Subprotocol(SUBPROTOCOL)],
                additional_headers=self.extra_headers,
                max_size=MAX_MESSAGE_BYTES,
                open_timeout=self.connect_timeout,
                user_agent_header=None,
                proxy=None,
            )
        except InvalidStatus as exc:
            status = exc.response.status_code
            raise UpstreamUnavailable(
                self.server, f"{self.server} refused the WebSocket handshake: HTTP {status}"
            ) from exc
        except InvalidHandshake as exc:
            raise UpstreamUnavailable(
                self.server, f"{self.server}: WebSocket handshake failed: {exc}"
            ) from exc
        except TimeoutError as exc:
            raise UpstreamUnavailable(
                self.server,
                f"{self.server}: no WebSocket handshake within {self.connect_timeout:g}s",
            ) from exc
        except OSError as exc:
            where = urlsplit(self.url).netloc.rsplit("@", 1)[-1]
            raise UpstreamUnavailable(
                self.server, f"cannot connect to {where}: {exc.strerror or exc}"
            ) from exc
        if self._socket.subprotocol != SUBPROTOCOL:
            await self.close()
            raise UpstreamUnavailable(
                self.server, f"{self.server} did not accept the '{SUBPROTOCOL}' subprotocol"
            )
        self._reader = asyncio.create_task(self._read(self._socket), name=f"{self.server}-ws")

    async def _read(self, socket: ClientConnection) -> None:
        reason = "closed the WebSocket"
        try:
            async for frame in socket:
                try:
                    message = orjson.loads(frame)
                except orjson.JSONDecodeError:
                    log.warning("%s: ignoring a frame that is not JSON", self.server)
                    continue
                if isinstance(message, dict):
                    await self.received(message)
        except ConnectionClosed:
            pass
        finally:
            code = socket.close_code
            if code is not None and code != 1000:
                why = socket.close_reason
                reason += f" ({code}{': ' + why if why else ''})"
            self._pending.fail_all(f"{self.server} {reason}")
            if not self._closing:
                self.on_closed(f"{self.server} {reason}")

    async def _write(self, message: Message) -> None:
        socket = self._socket
        if socket is None:
            raise UpstreamUnavailable(self.server, f"{self.server} is not connected")
        try:
            await socket.send(orjson.dumps(message).decode())
        except ConnectionClosed as exc:
            raise UpstreamUnavailable(self.server, f"{self.server} closed the WebSocket") from exc

    async def close(self) -> None:
        self._closing = True
        socket, self._socket = self._socket, None
        if socket is not None:
            with contextlib.suppress(Exception):
                await socket.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
            self._reader = None
        self._pending.fail_all(f"{self.server} was stopped")

    def describe(self) -> dict[str, Any]:
        parts = urlsplit(self.url)
        return {
            "transport": "websocket",
            "url": f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}",
        }
