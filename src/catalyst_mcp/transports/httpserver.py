"""HTTP/1.1 connections for the gateway's ASGI app: ``httptools`` (llhttp) parsing, a task per
request, head and body written together.

One :class:`HttpConnection` per TCP connection. It parses requests as bytes arrive and runs the
app once per request, in order: keep-alive, pipelined requests (answered one after another, the
socket paused meanwhile), ``Content-Length`` and chunked request bodies, ``Expect:
100-continue``, ``HEAD``, responses of known length (head and body leave in one write) and
streamed ones (chunked, the head sent at once so that a client sees an event stream open),
write back-pressure, a request-head size cap, and an idle keep-alive limit on the gateway's coarse
deadline clock. ``receive()`` answers ``http.disconnect`` once the client has gone, which is how
long calls learn to stop. Not served: WebSocket, HTTP/2, TLS (terminate TLS in front).

Why our own server rather than uvicorn: docs/decisions/006-own-http-server.md.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote

import httptools

from catalyst_mcp.deadlines import deadlines

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
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
NO_BODY_STATUSES = frozenset({204, 304})
REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
BODY_BUFFER = 256 * 1024  # stop reading a request body this far ahead of the app


class Limits:
    """What one connection may cost: the size of a request head, how long sending one may take
    (a client trickling header bytes holds a connection for nothing), and how long the
    connection may sit idle between requests."""

    __slots__ = ("head_seconds", "keepalive_seconds", "max_head_bytes")

    def __init__(
        self,
        max_head_bytes: int = 64 * 1024,
        keepalive_seconds: float = 5.0,
        head_seconds: float = 30.0,
    ) -> None:
        self.max_head_bytes = max_head_bytes
        self.keepalive_seconds = keepalive_seconds
        self.head_seconds = head_seconds


def status_line(status: int) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b""))


def plain_response(status: int, text: str) -> bytes:
    """A complete response the server writes by itself (bad requests), closing the connection."""
    body = text.encode()
    return (
        status_line(status)
        + b"content-type: text/plain; charset=utf-8\r\nconnection: close\r\n"
        + b"content-length: %d\r\n\r\n" % len(body)
        + body
    )


class _Exchange:
    """One request and its response: the app's ``receive`` and ``send``."""

    __slots__ = (
        "body",
        "body_size",
        "chunked",
        "complete",
        "conn",
        "content_left",
        "ending",
        "expect_continue",
        "handed_over",
        "head",
        "head_only",
        "keep_alive",
        "more_body",
        "scope",
        "started",
        "waiting",
        "wrote",
    )

    def __init__(
        self, conn: HttpConnection, scope: dict[str, Any], keep_alive: bool, expect: bool
    ) -> None:
        self.conn = conn
        self.scope = scope
        self.keep_alive = keep_alive
        self.expect_continue = expect
        self.head_only = scope["method"] == "HEAD"
        self.body: list[bytes] = []
        self.body_size = 0
        self.more_body = True  # until the parser finishes the request
        self.handed_over = False  # the app has received the whole request
        self.waiting: asyncio.Future[None] | None = None
        self.started = False  # http.response.start seen
        self.head: bytes | None = None  # a response head held back to go out with its body
        self.chunked = False
        self.content_left: int | None = None
        self.complete = False  # the response ended
        self.ending = False  # the server is stopping and this is an event stream to a GET
        self.wrote = False  # some of the response is on its way

    # -- receive ---------------------------------------------------------------------------

    def wake(self) -> None:
        waiting = self.waiting
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    async def receive(self) -> MutableMapping[str, Any]:
        conn = self.conn
        if self.handed_over or conn.closed:
            # The request was read whole: wait for the client to go (or the response to end, or
            # the server to end an endless stream).
            while not (conn.closed or self.complete or self.ending):
                await self._wait()
            return {"type": "http.disconnect"}
        if self.expect_continue:
            self.expect_continue = False
            if self.more_body and not self.body:
                conn.transport.write(CONTINUE)
        while not self.body and self.more_body:
            await self._wait()
            if conn.gone():
                return {"type": "http.disconnect"}
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body.clear()
        self.body_size = 0
        if self.more_body:
            conn.reading_resumed_for(self)
        else:
            self.handed_over = True
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    async def _wait(self) -> None:
        self.waiting = self.conn.loop.create_future()
        try:
            await self.waiting
        finally:
            self.waiting = None

    # -- send ------------------------------------------------------------------------------

    async def send(self, message: MutableMapping[str, Any]) -> None:
        kind = message["type"]
        conn = self.conn
        if kind == "http.response.start":
            if self.started:
                raise RuntimeError("http.response.start sent twice")
            self._start(message["status"], message.get("headers", ()))
            self.started = True
            return
        if kind != "http.response.body":
            raise RuntimeError(f"unexpected ASGI message {kind!r}")
        if not self.started:
            raise RuntimeError("http.response.body before http.response.start")
        if self.complete:
            raise RuntimeError("http.response.body after the response ended")
        body: bytes = message.get("body", b"")
        more: bool = message.get("more_body", False)
        if conn.closed:
            if not more:
                self.complete = True
            return
        if conn.write_paused:
            await conn.drained()
        out = self._frame(body, more)
        head, self.head = self.head, None
        if head is not None:
            out = head + out
        if out:
            conn.transport.write(out)
            self.wrote = True
        if not more:
            self.complete = True
            self.wake()
            conn.response_done(self)

    def _start(self, status: int, headers: Any) -> None:
        lines = [status_line(status)]
        length: int | None = None
        close = False
        for name, value in headers:
            lowered = name.lower()
            if b"\n" in value or b"\r" in value or b"\n" in name or b"\r" in name:
                raise RuntimeError(f"response header {name!r} holds a line break")
            if lowered == b"content-length":
                length = int(value)
            elif lowered == b"connection" and value.lower() == b"close":
                close = True
            elif lowered == b"transfer-encoding":
                continue  # the framing is ours to choose
            lines.append(b"%s: %s\r\n" % (name, value))
        if close:
            self.keep_alive = False
        bodiless = self.head_only or status in NO_BODY_STATUSES or status < 200
        if length is not None or bodiless:
            self.content_left = length
        elif self.scope["http_version"] == "1.1":
            self.chunked = True
            lines.append(b"transfer-encoding: chunked\r\n")
        else:
            self.keep_alive = False  # HTTP/1.0 without a length: the body ends at close
        if not self.keep_alive and not close:
            lines.append(b"connection: close\r\n")
        lines.append(b"\r\n")
        head = b"".join(lines)
        if self.chunked or (length is None and not bodiless):
            # a stream: the client should see it open now, not with the first event
            self.conn.transport.write(head)
            self.wrote = True
        else:
            self.head = head
        if bodiless:
            self.head_only = True

    def _frame(self, body: bytes, more: bool) -> bytes:
        if self.head_only:
            return b""
        if self.chunked:
            framed = b"%x\r\n%b\r\n" % (len(body), body) if body else b""
            return framed if more else framed + b"0\r\n\r\n"
        if self.content_left is not None:
            self.content_left -= len(body)
            if self.content_left < 0:
                raise RuntimeError("response body longer than its Content-Length")
            if not more and self.content_left > 0:
                self.keep_alive = False  # the client waits for bytes that will never come
        return body


class HttpConnection(asyncio.Protocol):
    """One client connection: parse requests, run the app for each, in order."""

    def __init__(
        self,
        app: ASGIApp,
        limits: Limits,
        connections: set[HttpConnection],
        scheme_server: tuple[str, int] | None = None,
    ) -> None:
        self.app = app
        self.limits = limits
        self.connections = connections
        self.loop = asyncio.get_running_loop()
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport = None  # type: ignore[assignment]
        self.server = scheme_server
        self.client: tuple[str, int] | None = None
        self.closed = False
        self.write_paused = False
        self.read_paused = False
        self.closing_when_idle = False  # the server is shutting down
        self._drain: asyncio.Future[None] | None = None
        # the request being parsed; the one being answered; those parsed and waiting their turn
        self._parsing: _Exchange | None = None
        self._active: _Exchange | None = None
        self._queue: deque[_Exchange] = deque()
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self.task: asyncio.Task[None] | None = None

    # -- asyncio.Protocol ------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.connections.add(self)
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple) and len(peer) >= 2:
            self.client = (str(peer[0]), int(peer[1]))
        if self.server is None:
            own = transport.get_extra_info("sockname")
            if isinstance(own, tuple) and len(own) >= 2:
                self.server = (str(own[0]), int(own[1]))
        self._idle()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.connections.discard(self)
        deadlines.discard(self)
        for exchange in (self._active, self._parsing, *self._queue):
            if exchange is not None:
                exchange.wake()
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # No protocol switch here (no WebSocket, no h2c): answer in HTTP/1.1, then close.
            if self._parsing is not None:
                self._parsing.keep_alive = False
            elif self._active is not None:
                self._active.keep_alive = False
        except httptools.HttpParserError as exc:
            if self._head_bytes > self.limits.max_head_bytes:
                self._refuse(431, "Request header fields too large.", exc)
            else:
                self._refuse(400, "Bad request: the HTTP/1.1 request could not be parsed.", exc)

    def gone(self) -> bool:
        """Whether the client has disconnected (a call, so that type narrowing cannot stick)."""
        return self.closed

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        if self._drain is not None and not self._drain.done():
            self._drain.set_result(None)

    async def drained(self) -> None:
        while self.write_paused and not self.closed:
            self._drain = self.loop.create_future()
            await self._drain

    # -- httptools callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        deadlines.add(self, self.limits.head_seconds, self._idle_timeout, self.loop)
        self._url = b""
        self._headers = []
        self._head_bytes = 0

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_bytes += len(url)
        if self._head_bytes > self.limits.max_head_bytes:
            raise ValueError("request head too large")  # feed_data raises a parser error

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_bytes += len(name) + len(value) + 4
        if self._head_bytes > self.limits.max_head_bytes:
            raise ValueError("request head too large")
        self._headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        deadlines.discard(self)
        parser = self.parser
        url = httptools.parse_url(self._url)
        raw_path: bytes = url.path or b"/"
        path = raw_path.decode("latin-1")
        if "%" in path:
            path = unquote(path)
        headers = self._headers
        expect = False
        for name, value in headers:
            if name == b"expect" and value.lower() == b"100-continue":
                expect = True
        scope: dict[str, Any] = {
            "type": "http",
            "asgi": ASGI_VERSION,
            "http_version": parser.get_http_version(),
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
        keep_alive = parser.should_keep_alive() and not self.closing_when_idle
        exchange = _Exchange(self, scope, keep_alive, expect)
        self._parsing = exchange
        if self._active is None:
            self._run(exchange)
        else:
            self._queue.append(exchange)
            self._pause_reading()  # pipelined: answer in order, read on when its turn comes

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

    def _run(self, exchange: _Exchange) -> None:
        self._active = exchange
        self.task = self.loop.create_task(self._serve(exchange))

    async def _serve(self, exchange: _Exchange) -> None:
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

    def _abort(self, exchange: _Exchange) -> None:
        """The app failed: a 500 when nothing was written yet, else drop the broken response."""
        if exchange.complete or self.closed:
            return
        exchange.complete = True
        if exchange.wrote:
            self.transport.close()
        else:
            body = b'{"error":"internal server error"}'
            self.transport.write(
                status_line(500)
                + b"content-type: application/json\r\nconnection: close\r\n"
                + b"content-length: %d\r\n\r\n" % len(body)
                + body
            )
            self.transport.close()

    def response_done(self, exchange: _Exchange) -> None:
        """The app finished a response: close, or go on with the next request."""
        if exchange is not self._active:
            return
        self._active = None
        if not exchange.keep_alive or (exchange.more_body and exchange is self._parsing):
            # closing, or the app answered before reading the whole body: the rest can't be
            # told apart from the next request without reading it, so close.
            self.transport.close()
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

    def reading_resumed_for(self, exchange: _Exchange) -> None:
        """The app took the buffered body: read on if the buffer had paused the socket."""
        if exchange is self._parsing and not self._queue:
            self._resume_reading()

    # -- flow and lifetime -----------------------------------------------------------------

    def _pause_reading(self) -> None:
        if not self.read_paused and not self.closed:
            self.read_paused = True
            self.transport.pause_reading()

    def _resume_reading(self) -> None:
        if self.read_paused and not self.closed:
            self.read_paused = False
            self.transport.resume_reading()

    def _idle(self) -> None:
        deadlines.add(self, self.limits.keepalive_seconds, self._idle_timeout, self.loop)

    def _idle_timeout(self) -> None:
        """Idle too long, or too slow to send a request head: close (nothing is running)."""
        if self._active is None and self._parsing is None and not self.closed:
            self.transport.close()

    def _refuse(self, status: int, text: str, exc: Exception) -> None:
        cause = exc.__context__
        if isinstance(exc, httptools.HttpParserCallbackError) and status == 400 and cause:
            log.error("bug while reading a request", exc_info=cause)  # ours, not the client's
        else:
            log.debug("refusing a request from %s: %s (%s)", self.client, text, exc)
        if self._active is None and not self.closed:
            self.transport.write(plain_response(status, text))
        if not self.closed:
            self.transport.close()

    def shutdown(self) -> None:
        """The server is stopping: close now when idle, else after the response in progress
        (an event stream answering a GET is asked to end)."""
        self.closing_when_idle = True
        if self._active is None and self._parsing is None:
            if not self.closed:
                self.transport.close()
        else:
            for exchange in (self._active, self._parsing, *self._queue):
                if exchange is not None:
                    exchange.keep_alive = False
            active = self._active
            if active is not None and active.chunked and active.scope["method"] == "GET":
                # A GET event stream would run until the grace period ends: tell the app its
                # client is gone, so that it ends the stream (the client reconnects elsewhere).
                active.ending = True
                active.wake()
