"""Small ASGI helpers shared by the HTTP transports: headers, bodies, JSON and SSE responses."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
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
    """DNS-rebinding protection: which ``Origin`` and ``Host`` values may reach the gateway.

    Browsers send ``Origin``; a rebinding attack also shows up as a foreign ``Host``. Loopback
    origins are always allowed, others only when listed. When the gateway listens on loopback,
    the ``Host`` must name a loopback host (or one listed in ``allowed_hosts``).
    """

    def __init__(
        self, allowed: list[str], *, check_host: bool = False, allowed_hosts: Sequence[str] = ()
    ) -> None:
        self.allowed = frozenset(o.rstrip("/") for o in allowed)
        self.check_host = check_host
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self._cache: dict[tuple[bytes | None, bytes | None], str | None] = {}

    def allows(self, origin: bytes | None, host: bytes | None = None) -> bool:
        return self.refusal(origin, host) is None

    def refusal(self, origin: bytes | None, host: bytes | None) -> str | None:
        """Why a request with these headers is refused, or None when it may pass."""
        key = (origin, host)
        if key in self._cache:
            return self._cache[key]
        reason = None
        if origin is not None and not self._origin_ok(origin.decode("latin-1").rstrip("/")):
            reason = "Forbidden: Origin not allowed"
        elif self.check_host and host is not None and not self._host_ok(host.decode("latin-1")):
            reason = "Forbidden: Host not allowed"
        if len(self._cache) < 1024:
            self._cache[key] = reason
        return reason

    def _origin_ok(self, origin: str) -> bool:
        if origin in self.allowed:
            return True
        try:
            hostname = urlsplit(origin).hostname
        except ValueError:
            return False
        return hostname in LOOPBACK_HOSTS

    def _host_ok(self, host: str) -> bool:
        try:
            hostname = urlsplit(f"//{host}").hostname
        except ValueError:
            return False
        return (
            hostname in LOOPBACK_HOSTS
            or hostname in self.allowed_hosts
            or (host.lower() in self.allowed_hosts)
        )

    @classmethod
    def for_settings(cls, settings: Any) -> OriginPolicy:
        """The policy for ``gateway`` settings. On a Unix socket (``uds``) the Host is not
        checked unless ``allowed_hosts`` are listed: no browser reaches a Unix socket, so there
        is no rebinding to stop, and a proxy in front sends its own public name."""
        loopback = settings.uds is None and (
            settings.host in ("127.0.0.1", "localhost", "::1") or settings.host.startswith("127.")
        )
        return cls(
            settings.allowed_origins,
            check_host=loopback or bool(settings.allowed_hosts),
            allowed_hosts=settings.allowed_hosts,
        )


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
        self._lock: asyncio.Lock | None = None  # most responses never stream: made on demand

    def _writing(self) -> asyncio.Lock:
        """Serialises writes once the response streams (most never do: made on demand)."""
        if self._lock is None:
            self._lock = asyncio.Lock()
        return self._lock

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
        async with self._writing():
            await self.start()
            await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def finish(self, message: Message | None, status: int = 200) -> None:
        """Send the final response (as JSON when nothing was streamed) and end the response."""
        if self.closed:
            return
        self.closed = True
        if self.started:
            async with self._writing():
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
