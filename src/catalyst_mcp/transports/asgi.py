"""Small ASGI helpers shared by the HTTP transports: headers, bodies, JSON and SSE responses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

import orjson

from catalyst_mcp.protocol.jsonrpc import Message
from catalyst_mcp.protocol.sse import encode_event

__all__ = [
    "SSE_HEADERS",
    "BodyTooLarge",
    "ClientGone",
    "EventStream",
    "OriginPolicy",
    "Receive",
    "Scope",
    "Send",
    "header_map",
    "read_body",
    "send_bytes",
    "send_json",
    "watch_disconnect",
]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

JSON_TYPE = (b"content-type", b"application/json")
SSE_HEADERS = [
    (b"content-type", b"text/event-stream"),
    (b"cache-control", b"no-cache, no-transform"),
    (b"x-accel-buffering", b"no"),
]
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class BodyTooLarge(Exception):
    pass


class ClientGone(Exception):
    pass


def header_map(scope: Scope) -> dict[bytes, bytes]:
    """Request headers by lower-case name (ASGI already lower-cases them)."""
    return dict(scope["headers"])


class OriginPolicy:
    """Which browser ``Origin`` values may call us: loopback ones plus a configured list."""

    def __init__(self, allowed: list[str]) -> None:
        self.allowed = frozenset(o.rstrip("/") for o in allowed)
        self._cache: dict[bytes, bool] = {}

    def allows(self, origin: bytes | None) -> bool:
        if origin is None:
            return True  # not a browser: Origin is how DNS rebinding shows itself
        known = self._cache.get(origin)
        if known is None:
            text = origin.decode("latin-1").rstrip("/")
            try:
                host = urlsplit(text).hostname
            except ValueError:
                host = None
            known = text in self.allowed or (host in LOOPBACK_HOSTS and text != "null")
            if len(self._cache) < 1024:
                self._cache[origin] = known
        return known


async def read_body(receive: Receive, limit: int, declared: bytes | None) -> bytes:
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientGone
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise BodyTooLarge
        return body
    parts = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


async def send_bytes(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes | None = b"application/json",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    raw = [(b"content-length", str(len(body)).encode())]
    if content_type is not None:
        raw.append((b"content-type", content_type))
    if headers:
        raw.extend(headers)
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send, status: int, payload: Any, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send_bytes(send, status, orjson.dumps(payload), b"application/json", headers)


class EventStream:
    """An SSE response opened on demand: JSON until the first event must go out."""

    __slots__ = ("_lock", "closed", "extra_headers", "send", "started")

    def __init__(self, send: Send, extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self.send = send
        self.extra_headers = extra_headers or []
        self.started = False
        self.closed = False
        self._lock = asyncio.Lock()

    async def start(self) -> None:
        if not self.started:
            self.started = True
            await self.send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [*SSE_HEADERS, *self.extra_headers],
                }
            )

    async def event(self, message: Message) -> None:
        await self.raw(encode_event(orjson.dumps(message)))

    async def raw(self, data: bytes) -> None:
        if self.closed:
            return
        async with self._lock:
            await self.start()
            await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def finish(self, message: Message | None, status: int = 200) -> None:
        """Send the final response (as JSON when nothing was streamed) and end the response."""
        if self.closed:
            return
        self.closed = True
        if self.started:
            async with self._lock:
                body = encode_event(orjson.dumps(message)) if message is not None else b""
                await self.send({"type": "http.response.body", "body": body})
        elif message is None:
            await send_bytes(self.send, 202, b"", None, self.extra_headers)
        else:
            await send_bytes(
                self.send, status, orjson.dumps(message), JSON_TYPE[1], self.extra_headers
            )


def watch_disconnect(receive: Receive, on_gone: Callable[[], Any]) -> asyncio.Task[None]:
    """Call ``on_gone`` when the client disconnects (cancel the task to stop watching)."""

    async def watch() -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                on_gone()
                return

    return asyncio.get_running_loop().create_task(watch())
