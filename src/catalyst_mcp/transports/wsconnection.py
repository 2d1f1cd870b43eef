"""WebSocket for the gateway's HTTP/1.1 server: the ASGI ``websocket`` protocol on an upgraded
connection, framed by the ``websockets`` library (its sans-I/O ``ServerProtocol``).

:class:`~catalyst_mcp.transports.httpserver.HttpConnection` hands a request that asks to
upgrade to WebSocket to a :class:`WebSocketConnection`, which takes over the socket. A broken
handshake (no key, wrong version, not GET, HTTP/1.0) gets its 4xx from the library and never
reaches the app. Otherwise the app sees ``websocket.connect`` and answers it: ``websocket.accept``
(the 101 goes out, with the subprotocol it chose), a denial response
(``websocket.http.response.start`` and ``.body``, e.g. 401 with ``WWW-Authenticate``), or
``websocket.close`` (403). Then frames become ``websocket.receive`` messages and
``websocket.send`` becomes frames.

The library parses and masks frames (in C), enforces the message size limit (close 1009),
answers pings and runs the closing handshake. This module adds what sits around it: UTF-8
checks of text messages (1007), read back-pressure (a bounded inbox), write back-pressure and
the write-stall limit, keepalive pings (a client silent for two ping intervals is closed with
1011), and the server's stop: the app gets ``websocket.disconnect`` with code 1001 and
``"stopping": True`` while the socket still takes its sends, so that it can finish the requests
in flight before it closes (the server's grace period bounds that).

Why this library and this integration point: docs/decisions/010-websocket-and-unix-socket.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, cast

from websockets.datastructures import Headers
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

from catalyst_mcp.deadlines import deadlines
from catalyst_mcp.transports.httpexchange import plain_response, status_line

if TYPE_CHECKING:
    from catalyst_mcp.transports.httpserver import ASGIApp, Limits

__all__ = ["WebSocketConnection", "wants_websocket"]

log = logging.getLogger("catalyst.server")
# The library logs every connection opened and closed at INFO: too chatty for a gateway log.
_frames_log = logging.getLogger("catalyst.server.websocket")
_frames_log.setLevel(logging.WARNING)

INBOX_LIMIT = 64  # messages the app has not taken yet: reading pauses beyond
EARLY_LIMIT = 64 * 1024  # bytes a client sends before its handshake is answered
LINGER_SECONDS = 2.0  # after our close frame or a refusal: how long the client has to go
STOPPING_REASON = "the gateway is stopping"


def wants_websocket(headers: list[tuple[bytes, bytes]]) -> bool:
    """Whether a request's headers ask to upgrade this connection to WebSocket (``Connection:
    upgrade`` and ``Upgrade: websocket``, as llhttp decides an upgrade)."""
    upgrade = connection = False
    for name, value in headers:
        if name == b"upgrade":
            upgrade = upgrade or b"websocket" in value.lower()
        elif name == b"connection":
            connection = connection or b"upgrade" in value.lower()
    return upgrade and connection


class WebSocketConnection(asyncio.Protocol):
    """One WebSocket client, from its handshake to the closed socket."""

    def __init__(
        self,
        app: ASGIApp,
        scope: dict[str, Any],
        limits: Limits,
        connections: set[Any],
        transport: asyncio.Transport,
    ) -> None:
        self.app = app
        self.scope = scope
        self.limits = limits
        self.connections = connections
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        self.task: asyncio.Task[None] | None = None
        self.closed = False  # the socket is gone
        self.accepted = False
        self.protocol: ServerProtocol | None = None  # the frames, once accepted
        self._handshake: Response | None = None  # the 101, sent when the app accepts
        self._early = bytearray()  # received before the handshake was answered
        self._connect_sent = False
        self._answered = False  # the handshake got an answer (101, a denial or a refusal)
        self._denial: tuple[int, list[tuple[bytes, bytes]], list[bytes]] | None = None
        self._inbox: deque[dict[str, Any]] = deque()
        self._disconnect: dict[str, Any] | None = None
        self._waiting: asyncio.Future[None] | None = None
        self._fragments: list[bytes] = []
        self._fragment_opcode: Opcode | None = None
        self._read_paused = False
        self.write_paused = False
        self._drain: asyncio.Future[None] | None = None
        self._heard = True  # something arrived since the last keepalive tick
        self._pinged = False
        self.ending = False  # the server is stopping
        self._keys = ((self, "ping"), (self, "write"), (self, "close"))

    # -- start -----------------------------------------------------------------------------

    def start(self, early: bytes) -> None:
        """Take over the socket: check the handshake, then run the app."""
        self.connections.add(self)
        self._early += early
        headers = Headers()
        for name, value in self.scope["headers"]:
            headers[name.decode("latin-1")] = value.decode("latin-1")
        path = self.scope["raw_path"].decode("latin-1")
        if self.scope["query_string"]:
            path += "?" + self.scope["query_string"].decode("latin-1")
        request = Request(path, headers)
        request.method = self.scope["method"]
        request.protocol = f"HTTP/{self.scope['http_version']}"
        checker = ServerProtocol(select_subprotocol=_no_subprotocol, logger=_frames_log)
        response = checker.accept(request)
        if response.status_code != 101:
            log.debug("refusing a WebSocket handshake from %s: %s", self.scope["client"], response)
            self._answered = True
            self._write(response.serialize())
            self._close_softly()
            return
        self._handshake = response
        self.task = self.loop.create_task(self._run())

    async def _run(self) -> None:
        try:
            await self.app(self.scope, self.receive, self.send)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                log.exception("the application failed on WebSocket %s", self.scope["path"])
            self._end_after_app(failed=True)
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                raise
            return
        self._end_after_app(failed=False)

    def _end_after_app(self, *, failed: bool) -> None:
        """The app returned (or failed): answer a handshake it left open, close an open
        socket (1000, or 1011 when it failed)."""
        if self.closed:
            return
        if not self._answered:
            self._answered = True
            self._write(
                plain_response(500, "internal server error")
                if failed
                else plain_response(403, "Forbidden")
            )
            self._close_softly()
            return
        protocol = self.protocol
        if protocol is not None and protocol.state is OPEN:
            if failed:
                protocol.send_close(1011, "internal error")
            else:
                protocol.send_close(1001 if self.ending else 1000, "")
            self._flush()

    # -- the app's receive -----------------------------------------------------------------

    async def receive(self) -> MutableMapping[str, Any]:
        if not self._connect_sent:
            self._connect_sent = True
            return {"type": "websocket.connect"}
        while not self._inbox:
            if self._disconnect is not None:
                return self._disconnect
            self._waiting = self.loop.create_future()
            try:
                await self._waiting
            finally:
                self._waiting = None
        message = self._inbox.popleft()
        if self._read_paused and len(self._inbox) <= INBOX_LIMIT // 2 and not self.closed:
            self._read_paused = False
            self.transport.resume_reading()
        return message

    def _wake(self) -> None:
        waiting = self._waiting
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    def _gone(self, code: int, reason: str = "", **extra: Any) -> None:
        """Tell the app the conversation is over (once; later causes do not change it)."""
        if self._disconnect is None:
            self._disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
            self._disconnect.update(extra)
        self._wake()

    # -- the app's send --------------------------------------------------------------------

    async def send(self, message: MutableMapping[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            await self._send_data(message)
        elif kind == "websocket.accept":
            self._accept(message)
        elif kind == "websocket.close":
            self._close(message)
        elif kind == "websocket.http.response.start":
            if self._answered or self._denial is not None:
                raise RuntimeError("websocket.http.response.start after the handshake was answered")
            self._denial = (message["status"], list(message.get("headers", ())), [])
        elif kind == "websocket.http.response.body":
            self._deny_body(message)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    async def _send_data(self, message: MutableMapping[str, Any]) -> None:
        protocol = self.protocol
        if protocol is None:
            raise RuntimeError("websocket.send before websocket.accept")
        if self.write_paused:
            await self.drained()
        if self.closed or protocol.state is not OPEN:
            return  # dropped: the app learns of it from receive()
        text = message.get("text")
        if text is not None:
            protocol.send_text(text.encode())
        else:
            protocol.send_binary(message.get("bytes") or b"")
        self._flush()

    def _accept(self, message: MutableMapping[str, Any]) -> None:
        response = self._handshake
        if response is None or self._answered:
            raise RuntimeError("websocket.accept after the handshake was answered")
        self._answered = True
        self._handshake = None
        if self.closed:
            return
        subprotocol = message.get("subprotocol")
        if subprotocol is not None:
            response.headers["Sec-WebSocket-Protocol"] = subprotocol
        for name, value in message.get("headers", ()):
            response.headers[name.decode("latin-1")] = value.decode("latin-1")
        self.accepted = True
        self._write(response.serialize())
        limit = self.limits.max_message_bytes
        self.protocol = ServerProtocol(state=OPEN, max_size=limit, logger=_frames_log)
        deadlines.add(self._keys[0], self.limits.ping_seconds, self._keepalive, self.loop)
        if self._early:
            early, self._early = bytes(self._early), bytearray()
            self.data_received(early)
        if self._read_paused:
            self._read_paused = False
            self.transport.resume_reading()
        if self.ending:  # the server began to stop while the app decided
            self._gone(1001, STOPPING_REASON, stopping=True)

    def _close(self, message: MutableMapping[str, Any]) -> None:
        if not self._answered:  # closing before accepting refuses the handshake (ASGI: 403)
            self._answered = True
            self._handshake = None
            self._write(plain_response(403, "Forbidden"))
            self._close_softly()
            return
        protocol = self.protocol
        if protocol is None or self.closed or protocol.state is not OPEN:
            return
        protocol.send_close(int(message.get("code") or 1000), str(message.get("reason") or ""))
        self._flush()
        self._gone(int(message.get("code") or 1000))

    def _deny_body(self, message: MutableMapping[str, Any]) -> None:
        if self._denial is None or self._answered:
            raise RuntimeError("websocket.http.response.body without its start")
        status, headers, body = self._denial
        body.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        self._answered = True
        self._handshake = None
        payload = b"".join(body)
        lines = [status_line(status)]
        for name, value in headers:
            if name.lower() not in (b"content-length", b"connection", b"transfer-encoding"):
                lines.append(b"%s: %s\r\n" % (name, value))
        lines.append(b"content-length: %d\r\nconnection: close\r\n\r\n" % len(payload))
        self._write(b"".join(lines) + payload)
        self._close_softly()

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        protocol = self.protocol
        if protocol is None:
            if self._answered:
                return  # refused: what still arrives is dropped
            # A client may not send frames before the 101; keep a little, then stop reading.
            self._early += data
            if len(self._early) > EARLY_LIMIT:
                self._pause_reading()
            return
        self._heard = True
        protocol.receive_data(data)
        for frame in protocol.events_received():
            self._frame(cast(Frame, frame))  # once open, the library's events are frames
        self._flush()
        if protocol.parser_exc is not None:  # the library failed the connection (1002, 1009)
            sent = protocol.close_sent
            self._gone(sent.code if sent else 1006, sent.reason if sent else "")

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if not frame.fin:
                self._fragment_opcode = opcode
                self._fragments = [bytes(frame.data)]
                return
            self._deliver(opcode, frame.data)
        elif opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
            if frame.fin and self._fragment_opcode is not None:
                data, self._fragments = b"".join(self._fragments), []
                self._deliver(self._fragment_opcode, data)
        elif opcode is Opcode.CLOSE:
            assert self.protocol is not None
            received = self.protocol.close_rcvd
            self._gone(received.code if received else 1005, received.reason if received else "")
        # PING is answered by the library; PONG only proves the client is there

    def _deliver(self, opcode: Opcode, data: bytes | bytearray | memoryview) -> None:
        if self._disconnect is not None:
            return
        if opcode is Opcode.TEXT:
            try:
                text = bytes(data).decode() if isinstance(data, memoryview) else data.decode()
            except UnicodeDecodeError:
                assert self.protocol is not None
                self.protocol.fail(1007, "a text message must be UTF-8")
                self._gone(1007, "a text message must be UTF-8")
                return
            self._inbox.append({"type": "websocket.receive", "text": text})
        else:
            self._inbox.append({"type": "websocket.receive", "bytes": bytes(data)})
        if len(self._inbox) >= INBOX_LIMIT:
            self._pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        if self.protocol is not None:
            self.protocol.receive_eof()
            self._flush()
        return None  # the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.connections.discard(self)
        for key in self._keys:
            deadlines.discard(key)
        protocol = self.protocol
        received = protocol.close_rcvd if protocol is not None else None
        if received is not None:
            self._gone(received.code, received.reason)
        else:
            self._gone(1006, "the connection was lost")
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def pause_writing(self) -> None:
        self.write_paused = True
        deadlines.add(self._keys[1], self.limits.write_stall_seconds, self._stalled, self.loop)

    def resume_writing(self) -> None:
        self.write_paused = False
        deadlines.discard(self._keys[1])
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    async def drained(self) -> None:
        while self.write_paused and not self.closed:
            self._drain = self.loop.create_future()
            await self._drain

    def _stalled(self) -> None:
        if self.write_paused and not self.closed:
            log.info("closing a WebSocket from %s: it stopped reading", self.scope["client"])
            self.transport.abort()

    # -- writing and closing ---------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        if not self.closed and not self.transport.is_closing():
            self.transport.write(data)

    def _flush(self) -> None:
        protocol = self.protocol
        if protocol is None:
            return
        for data in protocol.data_to_send():
            if data:
                self._write(data)
            else:  # the library's end of stream: our side is done
                self._close_softly()
        if protocol.close_expected():
            deadlines.add(self._keys[2], LINGER_SECONDS, self._force_close, self.loop)

    def _close_softly(self) -> None:
        """End our side and give the client a moment to read what we sent and go (closing
        with its input unread could reset the connection and lose our last words)."""
        if self.closed:
            return
        if self._read_paused:  # read on, so that the client's leaving is seen at once
            self._read_paused = False
            self.transport.resume_reading()
        if self.transport.can_write_eof():
            with contextlib.suppress(OSError):
                self.transport.write_eof()
        deadlines.add(self._keys[2], LINGER_SECONDS, self._force_close, self.loop)

    def _force_close(self) -> None:
        if not self.closed:
            self.transport.close()

    def _pause_reading(self) -> None:
        if not self._read_paused and not self.closed:
            self._read_paused = True
            self.transport.pause_reading()

    def _keepalive(self) -> None:
        """One tick of the keepalive: quiet for an interval → ping; quiet for another → 1011."""
        protocol = self.protocol
        if self.closed or protocol is None or protocol.state is not OPEN:
            return
        if self._heard:
            self._heard = False
            self._pinged = False
        elif not self._pinged:
            self._pinged = True
            protocol.send_ping(b"catalyst")
            self._flush()
        else:
            log.info("closing a WebSocket from %s: no answer to a ping", self.scope["client"])
            protocol.fail(1011, "keepalive ping timeout")
            self._flush()
            self._gone(1011, "keepalive ping timeout")
            return
        deadlines.add(self._keys[0], self.limits.ping_seconds, self._keepalive, self.loop)

    def shutdown(self) -> None:
        """The server is stopping: the app takes no more messages, and hears
        ``websocket.disconnect`` (1001, ``stopping``); it may still send the answers of its
        requests in flight, then the socket closes with 1001. A handshake the app has not
        answered yet is left to it (if it accepts, it hears the same at once)."""
        if self.ending or self.closed:
            return
        self.ending = True
        if self.accepted:
            self._inbox.clear()
            self._gone(1001, STOPPING_REASON, stopping=True)


def _no_subprotocol(protocol: ServerProtocol, offered: Any) -> None:
    """The handshake check picks no subprotocol: the app does, when it accepts."""
