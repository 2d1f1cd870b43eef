"""A tiny in-process ASGI client: no sockets, just scope + receive + send.

``AsgiClient.request`` runs one request to completion and returns status, headers and body
(JSON and SSE bodies decode on demand). ``AsgiClient.stream`` opens a request whose response
may never end (an SSE stream): read messages as they arrive, then leave the block, which
disconnects the client and waits for the app to finish.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from catalyst_mcp.protocol.sse import SseDecoder, SseEvent

Headers = Mapping[str, str] | Iterable[tuple[str, str]]
DEFAULT_TIMEOUT = 10.0


def _raw_headers(headers: Headers | None) -> list[tuple[bytes, bytes]]:
    if headers is None:
        return []
    items = headers.items() if isinstance(headers, Mapping) else headers
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in items]


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    raw_headers: list[tuple[bytes, bytes]] = field(default_factory=list)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip()

    def json(self) -> Any:
        return orjson.loads(self.body)

    def events(self) -> list[SseEvent]:
        return SseDecoder().feed(self.body)

    def messages(self) -> list[dict[str, Any]]:
        """Every JSON-RPC message of the response, whether it came as JSON or as SSE."""
        if self.content_type == "text/event-stream":
            return [orjson.loads(e.data) for e in self.events() if e.data]
        if not self.body:
            return []
        return [self.json()]

    def message(self) -> dict[str, Any]:
        """The final JSON-RPC message (the response itself)."""
        found = self.messages()
        assert found, f"empty body (status {self.status})"
        return found[-1]


class Stream:
    """A response read while it is still being sent."""

    def __init__(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.started = asyncio.Event()
        self.finished = asyncio.Event()
        self._chunks: asyncio.Queue[bytes] = asyncio.Queue()
        self._decoder = SseDecoder()
        self._pending: list[SseEvent] = []
        self.body = b""
        self.task: asyncio.Task[None] | None = None

    async def wait_started(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Wait for the response to start (fails if the app ends without starting one)."""
        assert self.task is not None
        async with asyncio.timeout(timeout):
            started = asyncio.ensure_future(self.started.wait())
            await asyncio.wait({started, self.task}, return_when=asyncio.FIRST_COMPLETED)
            started.cancel()
        if not self.started.is_set():
            self.task.result()  # raise what the app raised
            raise AssertionError("the app ended without a response")

    def _start(self, message: Mapping[str, Any]) -> None:
        self.status = message["status"]
        self.headers = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in message.get("headers", [])
        }
        self.started.set()

    def _chunk(self, data: bytes, more: bool) -> None:
        self.body += data
        self._chunks.put_nowait(data)
        if not more:
            self.finished.set()
            self._chunks.put_nowait(b"")

    async def next_event(self, timeout: float = DEFAULT_TIMEOUT) -> SseEvent | None:
        """The next complete SSE event, or None once the response has ended."""
        async with asyncio.timeout(timeout):
            while not self._pending:
                chunk = await self._next_chunk()
                if chunk is None or (not chunk and self.finished.is_set() and self._chunks.empty()):
                    return None
                self._pending.extend(self._decoder.feed(chunk))
        return self._pending.pop(0)

    async def _next_chunk(self) -> bytes | None:
        """The next body chunk; None when the app ended without sending more (its exception,
        if it raised one, is raised here)."""
        if not self._chunks.empty() or self.task is None:
            return await self._chunks.get()
        getter = asyncio.ensure_future(self._chunks.get())
        await asyncio.wait({getter, self.task}, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return getter.result()
        getter.cancel()
        self.task.result()
        return None

    async def next_message(self, timeout: float = DEFAULT_TIMEOUT) -> dict[str, Any]:
        """The next JSON-RPC message carried by a ``message`` event (comments are skipped)."""
        while True:
            event = await self.next_event(timeout)
            assert event is not None, "the stream ended"
            if event.event == "message" and event.data:
                message: dict[str, Any] = orjson.loads(event.data)
                return message


class AsgiClient:
    def __init__(self, app: Any, *, client: tuple[str, int] = ("127.0.0.1", 50000)) -> None:
        self.app = app
        self.client = client

    def _scope(self, method: str, path: str, headers: Headers | None) -> dict[str, Any]:
        path, _, query = path.partition("?")
        return {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": _raw_headers(headers),
            "client": self.client,
            "server": ("127.0.0.1", 8000),
        }

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: Headers | None = None,
        body: bytes = b"",
        chunks: list[bytes] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> Response:
        """Send one request (``chunks``: a body in several ``http.request`` messages)."""
        parts = list(chunks) if chunks is not None else [body]
        gone = asyncio.Event()
        started: dict[str, Any] = {}
        received: list[bytes] = []
        done = asyncio.Event()

        async def receive() -> dict[str, Any]:
            if parts:
                data = parts.pop(0)
                return {"type": "http.request", "body": data, "more_body": bool(parts)}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: Mapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                assert not started, "response started twice"
                started.update(message)
            elif message["type"] == "http.response.body":
                assert started, "body before http.response.start"
                assert not done.is_set(), "body after the response ended"
                received.append(message.get("body", b""))
                if not message.get("more_body", False):
                    done.set()

        try:
            async with asyncio.timeout(timeout):
                await self.app(self._scope(method, path, headers), receive, send)
        finally:
            gone.set()
            await asyncio.sleep(0)  # let disconnect watchers see it
        assert started, "the app returned without a response"
        assert done.is_set(), "the app returned before ending the response"
        raw = list(started.get("headers", []))
        return Response(
            status=started["status"],
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in raw},
            body=b"".join(received),
            raw_headers=raw,
        )

    async def post(
        self, path: str, payload: Any, headers: Headers | None = None, **kw: Any
    ) -> Response:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        return await self.request("POST", path, headers=headers, body=body, **kw)

    async def get(self, path: str, headers: Headers | None = None, **kw: Any) -> Response:
        return await self.request("GET", path, headers=headers, **kw)

    @contextlib.asynccontextmanager
    async def stream(
        self,
        method: str,
        path: str,
        *,
        headers: Headers | None = None,
        body: bytes = b"",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> AsyncIterator[Stream]:
        """Run a request in the background; leaving the block disconnects the client.

        The app's task is ``stream.task``; leaving the block waits for it to end.
        """
        stream = Stream()
        gone = asyncio.Event()
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            await gone.wait()
            return {"type": "http.disconnect"}

        async def send(message: Mapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                stream._start(message)
            elif message["type"] == "http.response.body":
                stream._chunk(message.get("body", b""), message.get("more_body", False))

        stream.task = asyncio.create_task(
            self.app(self._scope(method, path, headers), receive, send)
        )
        try:
            yield stream
        finally:
            gone.set()
            async with asyncio.timeout(timeout):
                await stream.task
