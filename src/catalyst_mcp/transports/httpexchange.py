"""One HTTP/1.1 request and its response, as the ASGI app sees them: ``receive`` and ``send``.

The connection (:mod:`catalyst_mcp.transports.httpserver`) parses the request into an
:class:`Exchange` and runs the app with its two callables. ``receive`` hands over the body as it
arrives, then ``http.disconnect`` once the client has gone (or the response has ended).
``send`` frames the response: a known length leaves in one write, head and body together; a
response without one is chunked, its head written at once so that an event stream opens before
its first event. Writes to a client that has gone are dropped, never raised into the app.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from catalyst_mcp.transports.httpserver import HttpConnection

__all__ = ["Exchange", "plain_response", "status_line"]

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
NO_BODY_STATUSES = frozenset({204, 304})
REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}


def status_line(status: int) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b""))


def plain_response(
    status: int, text: str, content_type: bytes = b"text/plain; charset=utf-8"
) -> bytes:
    """A whole response the server writes by itself (refusals, failures); the connection closes."""
    body = text.encode()
    return (
        status_line(status)
        + b"content-type: %s\r\nconnection: close\r\ncontent-length: %d\r\n\r\n"
        % (content_type, len(body))
        + body
    )


class Exchange:
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
        "refusal",
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
        # the server's own answer instead of the app's: the body cannot be read (malformed
        # chunked framing, a transfer coding we cannot decode)
        self.refusal: bytes | None = None

    # -- receive ---------------------------------------------------------------------------

    def wake(self) -> None:
        waiting = self.waiting
        if waiting is not None and not waiting.done():
            waiting.set_result(None)

    async def receive(self) -> MutableMapping[str, Any]:
        conn = self.conn
        if self.handed_over or conn.closed or self.refusal is not None:
            # The request was read whole (or its body cannot be): wait for the client to go (or
            # the response to end, or the server to end an endless stream).
            while not (conn.closed or self.complete or self.ending):
                await self._wait()
            return {"type": "http.disconnect"}
        if self.expect_continue:
            self.expect_continue = False
            if self.more_body and not self.body and not self.started:
                conn.write(CONTINUE)
        while not self.body and self.more_body:
            await self._wait()
            if conn.gone() or self.refusal is not None:
                return {"type": "http.disconnect"}
        body = self.body[0] if len(self.body) == 1 else b"".join(self.body)
        self.body.clear()
        self.body_size = 0
        self.handed_over = not self.more_body
        conn.body_taken()
        return {"type": "http.request", "body": body, "more_body": self.more_body}

    async def _wait(self) -> None:
        self.waiting = self.conn.loop.create_future()
        try:
            await self.waiting
        finally:
            self.waiting = None

    # -- send ------------------------------------------------------------------------------

    async def send(self, message: MutableMapping[str, Any]) -> None:
        if self.refusal is not None:
            return  # the server answered this request itself; the app was told it is gone
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
        if conn.write_paused:
            await conn.drained()
        if conn.gone():  # dropped: the app learns of it from receive()
            self.complete = self.complete or not more
            return
        out = self._frame(body, more)
        head, self.head = self.head, None
        if head is not None:
            out = head + out
        if out and conn.write(out):
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
        if close or self.more_body:
            # answered before the whole request arrived (a refusal): this is the last response
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
            self.wrote = self.conn.write(head)
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
