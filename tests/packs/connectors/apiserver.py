"""A small real HTTP/1.1 API server on a loopback socket, for the REST connector's tests.

Routes are async handlers by path (the query is not part of the match; a route ending in '/'
matches every path below it). It keeps connections alive, records every request, can answer
with a chunked body, and cancels slow handlers when it stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson


@dataclass
class Seen:
    """One request the server received."""

    method: str
    target: str
    headers: dict[str, str]  # names in lower case
    body: bytes

    @property
    def path(self) -> str:
        return self.target.partition("?")[0]

    @property
    def query(self) -> list[tuple[str, str]]:
        return parse_qsl(urlsplit(self.target).query, keep_blank_values=True)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    chunked: bool = False


Handler = Callable[[Seen], Awaitable[Reply]]


def json_reply(data: Any, status: int = 200, **headers: str) -> Reply:
    return Reply(
        status,
        orjson.dumps(data),
        {
            "Content-Type": "application/json",
            **{k.replace("_", "-"): v for k, v in headers.items()},
        },
    )


async def echo(seen: Seen) -> Reply:
    """Everything the request carried, as JSON."""
    body: Any = None
    if seen.body:
        try:
            body = orjson.loads(seen.body)
        except orjson.JSONDecodeError:
            body = seen.body.decode("latin-1")
    return json_reply(
        {
            "method": seen.method,
            "path": seen.path,
            "query": seen.query,
            "raw_query": urlsplit(seen.target).query,
            "headers": seen.headers,
            "body": body,
        }
    )


class ApiServer:
    def __init__(self, routes: Mapping[str, Handler], ssl_context: ssl.SSLContext | None = None):
        self.routes = {"/echo": echo, "/echo/": echo, **routes}
        self.ssl_context = ssl_context
        self.requests: list[Seen] = []
        self.connections = 0
        self.port = 0
        self._tasks: set[asyncio.Task[Any]] = set()

    def seen(self, path: str) -> list[Seen]:
        return [r for r in self.requests if r.path == path]

    def _route(self, path: str) -> Handler | None:
        if path in self.routes:
            return self.routes[path]
        for prefix, handler in self.routes.items():
            if prefix.endswith("/") and path.startswith(prefix):
                return handler
        return None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                line, *lines = head.decode("latin-1").split("\r\n")
                method, target, _ = line.split(" ", 2)
                headers: dict[str, str] = {}
                for item in lines:
                    if item:
                        name, _, value = item.partition(":")
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                seen = Seen(method, target, headers, body)
                self.requests.append(seen)
                handler = self._route(seen.path)
                reply = await handler(seen) if handler else json_reply({"message": "no route"}, 404)
                writer.write(self._encode(reply, method))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()

    @staticmethod
    def _encode(reply: Reply, method: str) -> bytes:
        phrase = HTTPStatus(reply.status).phrase
        head = [f"HTTP/1.1 {reply.status} {phrase}"]
        head += [f"{k}: {v}" for k, v in reply.headers.items()]
        if reply.chunked:
            head.append("Transfer-Encoding: chunked")
            size = 1000
            chunks = [reply.body[i : i + size] for i in range(0, len(reply.body), size)]
            payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
        else:
            head.append(f"Content-Length: {len(reply.body)}")
            payload = b"" if method == "HEAD" else reply.body
        return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[ApiServer]:
        server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            server.close()
            for task in list(self._tasks):
                task.cancel()
            await server.wait_closed()

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}"
