"""A loopback HTTP/1.1 server that answers by a script and can reset connections (TCP RST).

A reset is ``SO_LINGER {1, 0}`` then close: the kernel drops what is unsent and sends RST
instead of FIN, the way a crashing or overloaded server (or a middlebox) ends a connection.
The server can reset a connection as soon as it accepts it (before reading a byte), after
reading a request, or half-way through an answer; it counts what it accepted and read, so a
test can tell whether a request reached it twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

__all__ = ["Exchange", "Request", "ResetServer", "reset"]


def reset(writer: asyncio.StreamWriter) -> None:
    """End the connection with a TCP RST."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def message(self) -> Any:
        return orjson.loads(self.body) if self.body else None

    @property
    def rpc_method(self) -> str | None:
        message = self.message
        return message.get("method") if isinstance(message, dict) else None


@dataclass
class Exchange:
    """What a handler uses to answer one request."""

    request: Request
    writer: asyncio.StreamWriter
    keep: bool = field(default=True)

    async def answer(
        self, status: int, body: bytes = b"", content_type: str = "application/json", **headers: str
    ) -> None:
        head = [f"HTTP/1.1 {status} X", f"Content-Length: {len(body)}"]
        if body:
            head.append(f"Content-Type: {content_type}")
        head += [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
        await self.writer.drain()

    async def json(self, message: Any, **headers: str) -> None:
        await self.answer(200, orjson.dumps(message), **headers)

    async def result(self, result: dict[str, Any], **headers: str) -> None:
        message = self.request.message
        await self.json({"jsonrpc": "2.0", "id": message["id"], "result": result}, **headers)

    async def start_stream(self) -> None:
        """A 200 event stream whose end never comes (chunked)."""
        self.writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n"
        )
        await self.writer.drain()

    async def event(self, data: bytes, name: str = "message") -> None:
        text = f"event: {name}\ndata: ".encode() + data + b"\n\n"
        self.writer.write(f"{len(text):x}\r\n".encode() + text + b"\r\n")
        await self.writer.drain()

    async def partial(self, status: int = 200) -> None:
        """Headers and the first bytes of a body that promises more."""
        self.writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
            f"Content-Length: 1000\r\n\r\n".encode()
            + b'{"jsonrpc": "2.0", '
        )
        await self.writer.drain()
        await asyncio.sleep(0.05)  # let the client see the start before the reset

    def reset(self) -> None:
        reset(self.writer)
        self.keep = False


Handler = Callable[[Exchange], Awaitable[None]]


class ResetServer:
    """Serves requests with ``handler`` (keep-alive); ``reset_on_accept`` resets every
    connection before reading it. ``requests`` is every request read, in order."""

    def __init__(self, handler: Handler | None = None, *, reset_on_accept: bool = False) -> None:
        self.handler = handler
        self.reset_on_accept = reset_on_accept
        self.connections = 0
        self.requests: list[Request] = []
        self.port = 0
        self.resets = asyncio.Event()  # set at every reset on accept
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def count(self, rpc_method: str) -> int:
        return sum(1 for r in self.requests if r.rpc_method == rpc_method)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            if self.reset_on_accept:
                reset(writer)
                self.resets.set()
                return
            while True:
                request = await self._read(reader)
                self.requests.append(request)
                exchange = Exchange(request, writer)
                assert self.handler is not None
                await self.handler(exchange)
                if not exchange.keep:
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> Request:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        line, *rest = head.split("\r\n")
        method, path, _ = line.split(" ", 2)
        headers = {}
        for item in rest:
            if ":" in item:
                name, value = item.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        body = await reader.readexactly(length)
        return Request(method, path, headers, body)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ResetServer]:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp"
