"""What every outbound transport to an upstream MCP server provides.

A transport moves JSON-RPC messages; it knows nothing of MCP methods. Requests are matched to
their responses here (stdio, legacy SSE) or by the HTTP exchange itself (Streamable HTTP).
Messages that are not the response to a request we sent (notifications, server→client requests)
go to ``on_message``; those sent while one of our requests is in flight on its own stream go to
that request's ``on_related`` callback instead, when the transport can tell.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from catalyst_mcp.errors import UpstreamProtocolError, UpstreamUnavailable
from catalyst_mcp.protocol.jsonrpc import Message, RequestId

__all__ = ["MessageHandler", "PendingRequests", "StreamTransport", "UpstreamTransport"]

MessageHandler = Callable[[Message], Awaitable[None]]


async def _ignore(message: Message) -> None:
    return None


class UpstreamTransport(ABC):
    """Moves JSON-RPC messages to and from one upstream server."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.on_message: MessageHandler = _ignore
        self.on_closed: Callable[[str], None] = lambda reason: None
        # Set by the session once the protocol version is agreed (HTTP transports send it).
        self.protocol_version: str | None = None
        self.modern = False

    @abstractmethod
    async def open(self) -> None:
        """Connect (or start the process). Raises :class:`UpstreamUnavailable` on failure."""

    @abstractmethod
    async def request(
        self,
        message: Message,
        on_related: MessageHandler | None = None,
        headers: dict[str, str] | None = None,
    ) -> Message:
        """Send one request and return its response message (``result`` or ``error``)."""

    @abstractmethod
    async def send(self, message: Message) -> None:
        """Send a notification, or a response to a server→client request."""

    @abstractmethod
    async def close(self) -> None:
        """Disconnect (or stop the process). Safe to call more than once."""

    def abort(self, reason: str) -> None:  # noqa: B027 - optional: a no-op where nothing waits
        """The server stopped answering: fail the requests in flight with ``reason`` and cut
        it off at once, without the courtesies of :meth:`close` (which still follows). Where
        each request is an exchange of its own (Streamable HTTP), it ends by its own time
        limit instead."""

    def describe(self) -> dict[str, Any]:
        """Details for health reports (never secrets)."""
        return {}


class PendingRequests:
    """Futures of in-flight requests by id, for transports that share one message stream."""

    def __init__(self, server: str) -> None:
        self.server = server
        self._futures: dict[RequestId, asyncio.Future[Message]] = {}

    def add(self, request_id: RequestId) -> asyncio.Future[Message]:
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._futures[request_id] = future
        return future

    def discard(self, request_id: RequestId) -> None:
        self._futures.pop(request_id, None)

    def resolve(self, message: Message) -> bool:
        """Complete the request this response answers; False if none is waiting for it."""
        future = self._futures.pop(message.get("id"), None)  # type: ignore[arg-type]
        if future is None or future.done():
            return False
        if "result" in message and not isinstance(message["result"], dict):
            future.set_exception(
                UpstreamProtocolError(self.server, f"{self.server} answered a non-object result")
            )
        else:
            future.set_result(message)
        return True

    def fail_all(self, reason: str) -> None:
        futures, self._futures = self._futures, {}
        for future in futures.values():
            if not future.done():
                future.set_exception(UpstreamUnavailable(self.server, reason))

    def __len__(self) -> int:
        return len(self._futures)


class StreamTransport(UpstreamTransport):
    """A transport over one message stream each way (stdio pipes, an SSE stream + POSTs).

    Requests are matched to responses by id here; subclasses only write messages out and feed
    what they read to :meth:`received`.
    """

    def __init__(self, server: str) -> None:
        super().__init__(server)
        self._pending = PendingRequests(server)

    @abstractmethod
    async def _write(self, message: Message) -> None:
        """Send one message to the server."""

    async def received(self, message: Message) -> None:
        """Route one message read from the server: a response, or anything else."""
        if "method" not in message and "id" in message:
            self._pending.resolve(message)
        else:
            await self.on_message(message)

    async def request(
        self,
        message: Message,
        on_related: MessageHandler | None = None,
        headers: dict[str, str] | None = None,
    ) -> Message:
        future = self._pending.add(message["id"])
        try:
            await self._write(message)
            return await future
        finally:
            self._pending.discard(message["id"])

    async def send(self, message: Message) -> None:
        await self._write(message)

    def abort(self, reason: str) -> None:
        self._pending.fail_all(reason)
