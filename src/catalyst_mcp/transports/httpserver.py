"""HTTP/1.1 connections for the gateway's ASGI app: ``httptools`` (llhttp) parsing, a task per
request, answered in order.

One :class:`HttpConnection` per TCP connection. It parses requests as bytes arrive and runs the
app once per request (:class:`~catalyst_mcp.transports.httpexchange.Exchange` holds its
``receive`` and ``send``): keep-alive, pipelined requests (answered one after another, the socket
paused meanwhile), ``Content-Length`` and chunked request bodies with read back-pressure,
``Expect: 100-continue``, and write back-pressure. A request to upgrade to WebSocket is handed,
with the socket, to :class:`~catalyst_mcp.transports.wsconnection.WebSocketConnection`.

What one client may cost is bounded (:class:`Limits`, all on the gateway's coarse deadline
clock, no loop timer per connection): the size of a request head, the time to send one, idle
time between requests, and how long the client may stop reading a response. A refused request
(malformed, or answered before its body was read) is closed softly: our side ends and what the
client still sends is dropped for a moment, so that it reads the answer rather than a reset.
A request whose body cannot be read (malformed chunked framing, a transfer coding we cannot
decode) is answered 400 or 501 with a small JSON error in its turn, and the connection closes.
Not served: HTTP/2, TLS (terminate TLS in front).

Why our own server rather than uvicorn: docs/decisions/006-own-http-server.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, NoReturn, cast
from urllib.parse import unquote

import httptools
import orjson

from catalyst_mcp.deadlines import deadlines
from catalyst_mcp.transports.httpexchange import Exchange, plain_response
from catalyst_mcp.transports.wsconnection import WebSocketConnection, wants_websocket

__all__ = ["ASGIApp", "HttpConnection", "Limits"]

log = logging.getLogger("catalyst.server")

ASGIApp = Callable[
    [
        MutableMapping[str, Any],
        Callable[[], Awaitable[MutableMapping[str, Any]]],
        Callable[[MutableMapping[str, Any]], Awaitable[None]],
    ],
    Awaitable[None],
]

ASGI_VERSION = {"version": "3.0", "spec_version": "2.3"}
BODY_BUFFER = 256 * 1024  # stop reading a request body this far ahead of the app
LINGER_SECONDS = 2.0  # a soft close: how long the client has to read the answer and go
INTERNAL_ERROR = plain_response(500, '{"error":"internal server error"}', b"application/json")


def json_refusal(status: int, text: str) -> bytes:
    """A refusal the server writes by itself, with a small JSON body: ``{"error": text}``."""
    return plain_response(status, orjson.dumps({"error": text}).decode(), b"application/json")


def transfer_coding_problem(values: list[bytes]) -> tuple[int, str] | None:
    """What is wrong with a request's ``Transfer-Encoding`` (RFC 9112), or None.

    The codings must end in ``chunked``, or the body's length cannot be known: 400 (§6.3).
    A coding before it (``gzip, chunked``) frames fine but would need decoding we do not do:
    501, as §6.1 asks for a transfer coding the server does not understand.
    """
    codings = [c.split(b";")[0].strip().lower() for v in values for c in v.split(b",")]
    codings = [c for c in codings if c]
    if not codings or codings[-1] != b"chunked":
        return 400, "Bad request: a request's Transfer-Encoding must end in chunked."
    if len(codings) > 1:
        coding = codings[0].decode("latin-1")
        return 501, f"Not implemented: transfer coding {coding!r}; send the body chunked only."
    return None


class _Refused(ValueError):
    """Raised from a parser callback to stop parsing once a request has been refused."""


class Limits:
    """What one connection may cost.

    ``max_head_bytes``: a request's line and headers (431 beyond). ``head_seconds``: time to send
    them (a client trickling header bytes holds a connection for nothing). ``keepalive_seconds``:
    idle time between requests. ``write_stall_seconds``: how long a client may leave a response
    unread while the server's buffer for it is full. WebSocket: ``max_message_bytes``, the
    largest message (close 1009 beyond); ``ping_seconds``, the keepalive interval (a client
    silent for two intervals is closed).
    """

    __slots__ = (
        "head_seconds",
        "keepalive_seconds",
        "max_head_bytes",
        "max_message_bytes",
        "ping_seconds",
        "write_stall_seconds",
    )

    def __init__(
        self,
        max_head_bytes: int = 64 * 1024,
        keepalive_seconds: float = 5.0,
        head_seconds: float = 30.0,
        write_stall_seconds: float = 60.0,
        max_message_bytes: int = 4 * 1024 * 1024,
        ping_seconds: float = 20.0,
    ) -> None:
        self.max_head_bytes = max_head_bytes
        self.keepalive_seconds = keepalive_seconds
        self.head_seconds = head_seconds
        self.write_stall_seconds = write_stall_seconds
        self.max_message_bytes = max_message_bytes
        self.ping_seconds = ping_seconds


class HttpConnection(asyncio.Protocol):
    """One client connection: parse requests, run the app for each, in order."""

    def __init__(self, app: ASGIApp, limits: Limits, connections: set[Any]) -> None:
        self.app = app
        self.limits = limits
        self.connections = connections
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.server: tuple[str, int] | None = None
        self.client: tuple[str, int] | None = None
        self.closed = False
        self.write_paused = False
        self.closing_when_idle = False  # the server is shutting down
        self.task: asyncio.Task[None] | None = None
        self._drain: asyncio.Future[None] | None = None
        self._stall_key = (self, "write")
        # the request being parsed; the one being answered; those parsed and waiting their turn
        self._parsing: Exchange | None = None
        self._active: Exchange | None = None
        self._queue: deque[Exchange] = deque()
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0  # parsed so far: line and headers
        self._in_head = False
        self._head_raw = 0  # received while a head is incomplete (llhttp buffers a long line)
        self._refusal: tuple[int, str] | None = None  # why a callback stopped the parser
        self._discarding = False  # closing softly: what still arrives is dropped
        self._websocket: dict[str, Any] | None = None  # an upgrade to WebSocket, in waiting
        self._upgrade_rest = b""  # what the client sent after its upgrade request

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.connections.add(self)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.client = (str(peer[0]), int(peer[1]))
        own = transport.get_extra_info("sockname")
        if isinstance(own, tuple) and len(own) >= 2:
            self.server = (str(own[0]), int(own[1]))
        self._idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.connections.discard(self)
        deadlines.discard(self)
        deadlines.discard(self._stall_key)
        for exchange in (self._active, self._parsing, *self._queue):
            if exchange is not None:
                exchange.wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def data_received(self, data: bytes) -> None:
        if self._discarding:
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            if self._websocket is not None:
                self._upgrade_rest = data[exc.args[0] :]
                if self._active is None:
                    self._to_websocket()
                else:
                    self._pause_reading()  # pipelined behind a request: its turn comes
                return
            # No other protocol switch (no h2c): answer in HTTP/1.1, then close.
            upgrading = self._queue[-1] if self._queue else self._active
            if upgrading is not None:
                upgrading.keep_alive = False
            return
        except httptools.HttpParserError as exc:
            self._refuse(exc)
            return
        if self._in_head:
            self._head_raw += len(data)
            if self._head_raw > self.limits.max_head_bytes:
                self._refusal = (431, "Request header fields too large.")
                self._refuse(None)

    def gone(self) -> bool:
        """Whether the client has disconnected (a call, so that type narrowing cannot stick)."""
        return self.closed

    def write(self, data: bytes) -> bool:
        """Write unless the client has gone; whether it was written."""
        if self.closed or self.transport.is_closing():
            return False
        self.transport.write(data)
        return True

    def pause_writing(self) -> None:
        self.write_paused = True
        deadlines.add(
            self._stall_key, self.limits.write_stall_seconds, self._write_stalled, self.loop
        )

    def resume_writing(self) -> None:
        self.write_paused = False
        deadlines.discard(self._stall_key)
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    async def drained(self) -> None:
        while self.write_paused and not self.closed:
            self._drain = self.loop.create_future()
            await self._drain

    def _write_stalled(self) -> None:
        if self.write_paused and not self.closed:
            log.info("closing a connection from %s: it stopped reading its response", self.client)
            self.transport.abort()

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        deadlines.add(self, self.limits.head_seconds, self._idle_timeout, self.loop)
        self._url = b""
        self._headers = []
        self._head_bytes = 0
        self._in_head = True
        self._head_raw = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._count_head(len(url))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        self._headers.append((name.lower(), value))

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > self.limits.max_head_bytes:
            self._stop_parsing(431, "Request header fields too large.")

    def _stop_parsing(self, status: int, text: str) -> NoReturn:
        """Refuse the request from inside a parser callback (feed_data then raises)."""
        self._refusal = (status, text)
        raise ValueError(text)

    def on_headers_complete(self) -> None:
        deadlines.discard(self)
        self._in_head = False
        parser = self.parser
        try:
            url = httptools.parse_url(self._url)
        except httptools.HttpParserInvalidURLError:
            self._stop_parsing(400, "Bad request: the request target must be a path.")
        raw_path: bytes = url.path or b"/"
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        headers = self._headers
        expect = False
        hosts = 0
        codings: list[bytes] | None = None
        for name, value in headers:
            if name == b"host":
                hosts += 1
            elif name == b"expect" and value.lower() == b"100-continue":
                expect = True
            elif name == b"transfer-encoding":
                codings = [*(codings or ()), value]
        version = parser.get_http_version()
        if hosts > 1 or (hosts == 0 and version == "1.1"):
            self._stop_parsing(400, "Bad request: an HTTP/1.1 request needs one Host header.")
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": ASGI_VERSION,
            "http_version": version,
            "server": self.server,
            "client": self.client,
            "scheme": "http",
            "method": parser.get_method().decode("ascii"),
            "root_path": "",
            "path": path,
            "raw_path": raw_path,
            "query_string": url.query or b"",
            "headers": headers,
            "state": {},
        }
        if parser.should_upgrade() and wants_websocket(headers) and not self.closing_when_idle:
            scope["type"] = "websocket"
            scope["scheme"] = "ws"
            scope["subprotocols"] = _subprotocols(headers)
            scope["extensions"] = {"websocket.http.response": {}}
            self._websocket = scope
            return
        keep_alive = parser.should_keep_alive() and not self.closing_when_idle
        exchange = Exchange(self, scope, keep_alive, expect)
        self._parsing = exchange
        problem = transfer_coding_problem(codings) if codings is not None else None
        if problem is not None:  # its body cannot be read: answered in its turn, then closed
            log.debug("refusing a request from %s: %s", self.client, problem[1])
            exchange.refusal = json_refusal(*problem)
            self._parsing = None
            self._discarding = True  # the parser stops here: what else arrives is dropped
        if self._active is None:
            self._run(exchange)
        else:
            self._queue.append(exchange)
            self._pause_reading()  # pipelined: answer in order, read on when its turn comes
        if problem is not None:
            raise _Refused(problem[1])

    def on_body(self, body: bytes) -> None:
        exchange = self._parsing
        if exchange is None:
            return
        exchange.body.append(body)
        exchange.body_size += len(body)
        if exchange.body_size > BODY_BUFFER:
            self._pause_reading()
        exchange.wake()

    def on_message_complete(self) -> None:
        exchange, self._parsing = self._parsing, None
        if exchange is not None:
            exchange.more_body = False
            exchange.wake()

    # -- running the app -------------------------------------------------------------------

    def _run(self, exchange: Exchange) -> None:
        self._active = exchange
        if exchange.refusal is not None:
            self._send_refusal(exchange)
            return
        self.task = self.loop.create_task(self._serve(exchange))

    async def _serve(self, exchange: Exchange) -> None:
        try:
            await self.app(exchange.scope, exchange.receive, exchange.send)
        except BaseException as exc:
            if not isinstance(exc, asyncio.CancelledError):
                log.exception(
                    "the application failed on %s %s",
                    exchange.scope["method"],
                    exchange.scope["path"],
                )
            self._abort(exchange)
            if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                raise
            return
        if not exchange.complete:
            # An app may end a stream without finishing it once told the client is gone (as
            # the gateway's event streams do): then there is nothing to report.
            if exchange.started and not (self.closed or exchange.ending):
                log.error("the application ended without finishing its response; closing")
            self._abort(exchange)

    def _abort(self, exchange: Exchange) -> None:
        """The app failed: a 500 when nothing was written yet, else drop the broken response."""
        if exchange.complete or self.closed:
            return
        exchange.complete = True
        if exchange.wrote:
            self.transport.abort()
        else:
            self.write(INTERNAL_ERROR)
            self.transport.close()

    def response_done(self, exchange: Exchange) -> None:
        """The app finished a response: close, or go on with the next request."""
        if exchange is not self._active:
            return
        self._active = None
        if exchange.more_body and exchange is self._parsing:
            self._close_softly()  # answered before the whole body came (a refusal)
            return
        if not exchange.keep_alive:
            self.transport.close()
            return
        if self._websocket is not None and not self._queue:
            self._to_websocket()
            return
        if self._queue:
            self._run(self._queue.popleft())
            if not self._queue:
                self._resume_reading()
            return
        self._resume_reading()
        if self.closing_when_idle:
            self.transport.close()
        else:
            self._idle()

    def body_taken(self) -> None:
        """The app took the buffered body: read on if the buffer had paused the socket (but
        not past a pipelined request waiting its turn)."""
        if not self._queue:
            self._resume_reading()

    def _to_websocket(self) -> None:
        """Hand the socket to a WebSocket connection (this one parses no more)."""
        scope, self._websocket = self._websocket, None
        assert scope is not None
        deadlines.discard(self)
        deadlines.discard(self._stall_key)
        self.connections.discard(self)
        self.closed = True  # for this object: the socket is the WebSocket's now
        websocket = WebSocketConnection(
            self.app, scope, self.limits, self.connections, self.transport
        )
        self.transport.set_protocol(websocket)
        if not self.transport.is_reading():
            self.transport.resume_reading()
        websocket.start(self._upgrade_rest)

    # -- flow and lifetime -----------------------------------------------------------------

    def _pause_reading(self) -> None:
        if not self.closed and self.transport.is_reading():
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if not self.closed and not self.transport.is_reading():
            self.transport.resume_reading()

    def _idle(self) -> None:
        deadlines.add(self, self.limits.keepalive_seconds, self._idle_timeout, self.loop)

    def _idle_timeout(self) -> None:
        """Idle too long, or too slow to send a request head: close (nothing is running)."""
        if self._active is None and self._parsing is None and not self.closed:
            self.transport.close()

    def _refuse(self, exc: Exception | None) -> None:
        """The request cannot be served: say why when nothing else is being answered, close."""
        refusal, self._refusal = self._refusal, None
        if self._discarding:
            return  # refused already (a request's body): what is left is dropped
        broken = self._parsing
        if broken is not None and not isinstance(exc, httptools.HttpParserCallbackError):
            # the head was read, its body cannot be: malformed chunked framing (llhttp says how)
            reason = str(exc).rstrip(".") if exc is not None else "unreadable"
            reason = reason[:1].lower() + reason[1:]
            self._refuse_body(
                broken, 400, f"Bad request: the request body is malformed ({reason})."
            )
            return
        if refusal is None:
            cause = exc.__context__ if exc is not None else None
            if isinstance(exc, httptools.HttpParserCallbackError) and cause is not None:
                log.error("bug while reading a request", exc_info=cause)  # ours, not theirs
            refusal = (400, "Bad request: the HTTP/1.1 request could not be parsed.")
        log.debug("refusing a request from %s: %s (%s)", self.client, refusal[1], exc)
        if self._active is None and self.write(plain_response(*refusal)):
            self._close_softly()
        elif not self.closed:
            self.transport.close()

    def _refuse_body(self, exchange: Exchange, status: int, text: str) -> None:
        """A request whose body cannot be read: the parser stops (what else arrives is
        dropped); the client gets ``status`` with a JSON error in its turn, after the answers
        to the requests it pipelined before, then the connection closes. An app already
        running for it sees the client gone."""
        log.debug("refusing a request body from %s: %s", self.client, text)
        self._parsing = None
        self._discarding = True
        exchange.refusal = json_refusal(status, text)
        exchange.wake()
        if exchange is not self._active:
            return  # queued behind a pipelined request: answered when its turn comes (_run)
        if exchange.started:
            self.transport.close()  # its response is under way: it cannot become a 400
            return
        self._send_refusal(exchange)

    def _send_refusal(self, exchange: Exchange) -> None:
        if exchange.complete or self.closed:
            return
        exchange.complete = True
        self.write(exchange.refusal or b"")
        self._linger()

    def _close_softly(self) -> None:
        """Close once the client has had a moment to read the answer: end our side, and drop
        what it still sends meanwhile. Closing with its input unread would reset the
        connection, and a reset can destroy the answer on its way."""
        if self.closed or self._discarding:
            return
        self._discarding = True
        self._linger()

    def _linger(self) -> None:
        self._resume_reading()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        deadlines.add(self, LINGER_SECONDS, self.transport.close, self.loop)

    def shutdown(self) -> None:
        """The server is stopping: close now when idle, else after the response in progress
        (an event stream answering a GET is asked to end)."""
        self.closing_when_idle = True
        if self._active is None and self._parsing is None:
            if not self.closed:
                self.transport.close()
            return
        for exchange in (self._active, self._parsing, *self._queue):
            if exchange is not None:
                exchange.keep_alive = False
        active = self._active
        if active is not None and active.chunked and active.scope["method"] == "GET":
            # A GET event stream would run until the grace period ends: tell the app its
            # client is gone, so that it ends the stream (the client reconnects elsewhere).
            active.ending = True
            active.wake()


def _subprotocols(headers: list[tuple[bytes, bytes]]) -> list[str]:
    """The ``Sec-WebSocket-Protocol`` values a WebSocket client offers, in its order."""
    offered: list[str] = []
    for name, value in headers:
        if name == b"sec-websocket-protocol":
            offered.extend(p.strip() for p in value.decode("latin-1").split(",") if p.strip())
    return offered
