"""A lean HTTP/1.1 client with a keep-alive connection pool, for talking to upstream servers.

Why not httpx or aiohttp: a gateway call crosses this client twice per request, and general
clients spend 0.1-0.3 ms of Python per request on features we do not use (cookies, redirects,
auth flows, HTTP/2 negotiation). This one writes the request line and headers in one buffer,
parses responses with ``httptools`` (llhttp, the parser uvicorn uses) and streams bodies, which
Server-Sent Events need. See docs/decisions/001-lean-protocol-core.md for the numbers.
"""

from __future__ import annotations

import asyncio
import select
import ssl
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import NoReturn, cast
from urllib.parse import urlsplit

import httptools

__all__ = [
    "ConnectError",
    "ConnectionReset",
    "HttpClient",
    "HttpError",
    "HttpResponse",
    "Resolver",
]

# host, port -> the address to connect to (an SSRF guard vets it); the name stays the TLS
# server name and the Host header
Resolver = Callable[[str, int], Awaitable[str]]

# header name as received -> its lower-case text: the same few names arrive on every response
_header_names: dict[bytes, str] = {}
MAX_HEADER_NAMES = 512  # names a peer can make up do not grow it further

# A pooled connection idle longer than this is closed rather than reused: below the 5 s
# keep-alive timeout of uvicorn, gunicorn and Node, so we stop using a connection before the
# server closes it under a request we are writing (see docs/decisions/028-stale-keep-alive.md).
MAX_IDLE_SECONDS = 4.0

_POLL_EVENTS = (
    select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP
    if hasattr(select, "poll")
    else 0
)


class HttpError(Exception):
    """The connection failed or the peer sent something that is not HTTP/1.1."""


class ConnectError(HttpError):
    """No connection could be made (or none became free): the request was not sent."""


class ConnectionReset(HttpError):
    """The peer reset the connection (a TCP RST: ``ECONNRESET``, ``EPIPE``), reported as soon
    as the socket says so. ``stage`` says how far the exchange got, in words that follow
    "reset the connection": before the request was sent (``sent`` is false: repeating it is
    always safe), before answering, or mid-response."""

    BEFORE_SENDING = "before the request was sent"
    BEFORE_ANSWERING = "before answering"
    MID_RESPONSE = "mid-response"

    def __init__(self, host: str, stage: str) -> None:
        super().__init__(f"{host} reset the connection {stage}")
        self.stage = stage
        self.sent = stage != self.BEFORE_SENDING


@dataclass(slots=True)
class _Target:
    scheme: str
    host: str
    port: int
    path: str
    host_header: str


def split_url(url: str) -> _Target:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise HttpError(f"not an http(s) URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    host_header = parts.netloc.rsplit("@", 1)[-1]
    return _Target(parts.scheme, parts.hostname, port, path, host_header)


class HttpResponse:
    """A response whose body is read as it arrives; call :meth:`aclose` (or read it all)."""

    __slots__ = ("_conn", "_done", "_error", "_waiter", "chunks", "headers", "status")

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: deque[bytes] = deque()
        self._done = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _wait(self) -> None:
        self._waiter = self._conn.pool.loop.create_future()
        try:
            await self._waiter
        finally:
            self._waiter = None

    def _raise(self, error: BaseException) -> NoReturn:
        if isinstance(error, HttpError):
            raise error.with_traceback(None)  # the same class (a reset stays a reset)
        raise HttpError(str(error)) from error

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        while True:
            while self.chunks:
                yield self.chunks.popleft()
            if self._error is not None:
                self._raise(self._error)
            if self._done:
                self._conn.release()
                return
            await self._wait()

    async def read(self) -> bytes:
        """The whole body (waits for the end of the response)."""
        while not self._done:
            if self._error is not None:
                self._raise(self._error)
            await self._wait()
        chunks = self.chunks
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        chunks.clear()
        self._conn.release()
        return body

    def aclose_nowait(self) -> None:
        """Abandon the body: the connection is closed unless the response was complete."""
        if self._done and not self.chunks:
            self._conn.release()
        else:
            self._conn.discard()

    async def aclose(self) -> None:
        self.aclose_nowait()


class _Connection(asyncio.Protocol):
    def __init__(self, pool: HttpClient) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: HttpResponse | None = None
        self.headers_ready: asyncio.Future[None] | None = None
        self.closed = False
        self.forgotten = False
        self.interim = False  # parsing a 1xx response, which precedes the real one
        self.uses = 0
        self.reset = False  # the peer reset the connection (rather than closing it)
        self.idle_since = 0.0  # loop time it went back to the pool
        self.fd = -1
        self.poller: select.poll | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        sock = transport.get_extra_info("socket")
        if sock is not None:
            self.fd = sock.fileno()
            if _POLL_EVENTS:  # one poll set per connection: checking it is one syscall
                self.poller = select.poll()
                self.poller.register(self.fd, _POLL_EVENTS)

    def peer_spoke(self) -> bool:
        """Whether anything arrived on this idle connection that the loop has not read yet:
        the server's FIN (it closed the connection at its keep-alive timeout), a reset, or
        bytes nobody asked for. Any of them means the connection must not carry a request.
        One non-blocking ``poll`` on the socket; nothing is read."""
        try:
            if self.poller is not None:
                return bool(self.poller.poll(0))
            if self.fd >= 0:  # no poll() (Windows): select, which works for a single socket
                return bool(select.select([self.fd], [], [self.fd], 0)[0])
        except (OSError, ValueError):
            return True  # a socket we cannot even poll is not one to send on
        return False

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(HttpError(f"malformed HTTP response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        # ECONNRESET on a read, EPIPE/ECONNRESET on a write: the peer reset the connection
        self.reset = isinstance(exc, ConnectionError)
        response = self.response
        if response is None or response._done:
            return
        headers = response.headers
        delimited_by_close = (
            response.status >= 200
            and "content-length" not in headers
            and "chunked" not in headers.get("transfer-encoding", "").lower()
        )
        if delimited_by_close and exc is None:
            response._done = True  # legal HTTP/1.1: the body ends when the connection does
            response._wake()
        elif self.reset:
            answered = response.status or response.chunks or self.interim
            stage = ConnectionReset.MID_RESPONSE if answered else ConnectionReset.BEFORE_ANSWERING
            self._fail(ConnectionReset(self.pool.target.host_header, stage))
        else:
            self._fail(HttpError("connection closed before the response was complete"))

    def _fail(self, exc: BaseException) -> None:
        self.closed = True
        if self.headers_ready is not None and not self.headers_ready.done():
            self.headers_ready.set_exception(exc)
        if self.response is not None:
            self.response._error = exc
            self.response._wake()
        if self.transport is not None:
            self.transport.close()

    # httptools callbacks
    def on_message_begin(self) -> None:
        response = self.response
        if response is None or response._done:
            # Bytes nobody asked for (a second response): never reuse this connection.
            self._fail(HttpError("unexpected data after the response"))

    def on_header(self, name: bytes, value: bytes) -> None:
        response = self.response
        if response is None or self.interim:
            return
        key = _header_names.get(name)
        if key is None:
            key = name.decode("latin-1").lower()
            if len(_header_names) < MAX_HEADER_NAMES:
                _header_names[name] = key
        text = value.decode("latin-1")
        headers = response.headers
        old = headers.get(key)
        headers[key] = text if old is None else f"{old}, {text}"

    def on_headers_complete(self) -> None:
        if self.response is None or self.headers_ready is None:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200 and status != 101:
            self.interim = True  # e.g. 103 Early Hints: the real response follows
            self.response.headers.clear()
            return
        self.response.status = status
        if not self.headers_ready.done():
            self.headers_ready.set_result(None)

    def on_body(self, body: bytes) -> None:
        if self.response is None or self.interim:
            return
        self.response.chunks.append(body)
        self.response._wake()

    def on_message_complete(self) -> None:
        if self.interim:
            self.interim = False
            return
        if self.response is None:
            return
        if not self.parser.should_keep_alive():
            self.closed = True
        self.response._done = True
        self.response._wake()

    # pool interface
    def send(self, head: bytes, body: bytes) -> HttpResponse:
        """Write a request. A connection already lost (reset or closed between being opened or
        taken and now) raises before a byte is written: the caller may always try again."""
        assert self.transport is not None
        if self.closed or self.transport.is_closing():
            if self.reset:
                raise ConnectionReset(self.pool.target.host_header, ConnectionReset.BEFORE_SENDING)
            raise HttpError("connection closed before the request was sent")
        self.uses += 1
        self.response = HttpResponse(self)
        self.headers_ready = self.pool.loop.create_future()
        self.transport.write(head + body if len(body) < 65536 else head)
        if self.transport.is_closing():
            # The first write failed in the socket at once (EPIPE/ECONNRESET: the peer is
            # gone): a failed send(2) takes no byte, so the server cannot have read any of
            # this request and repeating it is safe, even for a tools/call. (A write that was
            # partly taken is buffered, not failed: the transport is then still open.)
            self.response = None
            self.headers_ready = None
            raise ConnectionReset(self.pool.target.host_header, ConnectionReset.BEFORE_SENDING)
        if len(body) >= 65536:
            self.transport.write(body)
        return self.response

    def release(self) -> None:
        if self.response is None:
            return
        self.response = None
        self.headers_ready = None
        if self.closed:
            self.discard()
        else:
            self.pool._put_back(self)

    def discard(self) -> None:
        self.response = None
        self.closed = True
        if self.transport is not None:
            self.transport.close()
        if not self.forgotten:  # a connection leaves the pool's count once
            self.forgotten = True
            self.pool._forget(self)


class HttpClient:
    """Pooled keep-alive HTTP/1.1 connections to one origin (scheme, host, port)."""

    def __init__(
        self,
        url: str,
        *,
        max_connections: int = 100,
        connect_timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        resolve: Resolver | None = None,
        max_idle: float = MAX_IDLE_SECONDS,
    ) -> None:
        self.target = split_url(url)
        self.max_idle = max_idle
        self.resolve = resolve
        self.max_connections = max_connections
        self.connect_timeout = connect_timeout
        self._ssl = ssl_context if self.target.scheme == "https" else None
        if self.target.scheme == "https" and self._ssl is None:
            self._ssl = ssl.create_default_context()
        self._idle: deque[_Connection] = deque()
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._closed = False
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop this client lives in (looked up once: each lookup costs a syscall on 3.11)."""
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        return loop

    def _forget(self, conn: _Connection) -> None:
        self._open -= 1
        self._wake_waiter()

    def _put_back(self, conn: _Connection) -> None:
        if self._closed:
            conn.discard()
            return
        conn.idle_since = self.loop.time()
        self._idle.append(conn)
        self._wake_waiter()

    def _wake_waiter(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _take_idle(self) -> _Connection | None:
        """The most recently used idle connection still fit to carry a request, if any.

        Dropped instead: connections found closed, idle longer than ``max_idle`` (the server
        may be closing them right now: the deque is in release order, so the oldest are
        trimmed from the left), and those the peer has spoken on since (its FIN or a reset
        already in the socket although the loop has not read it yet, e.g. while it was busy).
        Each drop happens before a byte of the request is written, so it is safe for any
        request; checking costs one ``poll`` syscall (docs/decisions/028-stale-keep-alive.md).
        """
        idle = self._idle
        if not idle:
            return None
        oldest = self.loop.time() - self.max_idle
        while idle and idle[0].idle_since < oldest:
            idle.popleft().discard()
        while idle:
            conn = idle.pop()
            alive = conn.transport is not None and not conn.transport.is_closing()
            if alive and not conn.closed and not conn.peer_spoke():
                return conn
            conn.discard()
        return None

    async def _acquire(self) -> _Connection:
        while True:
            conn = self._take_idle()
            if conn is not None:
                return conn
            if self._closed:
                raise HttpError("client is closed")
            if self._open < self.max_connections:
                self._open += 1
                try:
                    return await self._connect()
                except BaseException:
                    self._open -= 1
                    self._wake_waiter()  # the slot is free again: someone waiting may use it
                    raise
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await waiter
            except BaseException as exc:
                if waiter.done() and not waiter.cancelled():
                    # woken as this caller gave up: pass the wake-up on, or it is lost and
                    # the next waiter sleeps although a connection is free
                    self._wake_waiter()
                else:
                    waiter.cancel()
                if isinstance(exc, TimeoutError):
                    raise ConnectError(
                        f"no free connection to {self.target.host_header} within "
                        f"{self.connect_timeout:g}s ({self.max_connections} in use)"
                    ) from exc
                raise

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        host = self.target.host
        try:
            async with asyncio.timeout(self.connect_timeout):
                if self.resolve is not None:
                    host = await self.resolve(host, self.target.port)
                _, protocol = await loop.create_connection(
                    lambda: _Connection(self),
                    host,
                    self.target.port,
                    ssl=self._ssl,
                    server_hostname=self.target.host if self._ssl else None,
                )
        except TimeoutError as exc:
            raise ConnectError(f"timed out connecting to {self.target.host_header}") from exc
        except (ConnectionResetError, ConnectionAbortedError) as exc:
            # accepted, then reset before the connection was ours (a listener that resets)
            host = self.target.host_header
            raise ConnectionReset(host, ConnectionReset.BEFORE_SENDING) from exc
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            raise ConnectError(f"cannot connect to {self.target.host_header}: {reason}") from exc
        return protocol

    def _head(self, method: str, path: str, headers: dict[str, str], length: int | None) -> bytes:
        lines = [f"{method} {path} HTTP/1.1\r\nHost: {self.target.host_header}\r\n"]
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise HttpError(f"header {name!r} contains a line break")
            lines.append(f"{name}: {value}\r\n")
        if length is not None:
            lines.append(f"Content-Length: {length}\r\n")
        lines.append("\r\n")
        return "".join(lines).encode("latin-1")

    async def request(
        self,
        method: str,
        headers: dict[str, str],
        body: bytes = b"",
        *,
        path: str | None = None,
        retry_stale: bool = True,
    ) -> HttpResponse:
        """Send a request and return once the response headers have arrived.

        A request that was never written (its connection was lost first, reset while it was
        being opened, or its first write failed in the socket) is tried once more on a fresh
        connection. Pooled connections are checked before reuse and expire after ``max_idle``
        (see :meth:`_take_idle`), so a server's idle close rarely meets a written request.
        A request that was written but got no byte of answer, on a pooled connection that
        turned out to be dead (the server closed it while idle) or on one the server reset,
        is tried once more only when ``retry_stale`` is true: callers sending a request that
        must not run twice (a non-idempotent REST call, an MCP ``tools/call``) pass false,
        since the server may have acted before it closed (decision 028). Anything else is
        reported as :class:`HttpError` at once (:class:`ConnectionReset` for a reset).
        """
        head = self._head(
            method,
            path or self.target.path,
            headers,
            len(body) if body or method != "GET" else None,
        )
        for attempt in (0, 1):
            try:
                conn = self._take_idle() or await self._acquire()  # no coroutine when idle
            except ConnectionReset:
                if attempt == 0:
                    continue  # nothing was sent: a fresh connection may do better
                raise
            try:
                response = conn.send(head, body)
            except HttpError:
                conn.discard()
                if attempt == 0:
                    continue  # nothing was sent
                raise
            reused = conn.uses > 1
            assert conn.headers_ready is not None
            try:
                await conn.headers_ready
            except HttpError as exc:
                conn.discard()
                unanswered = not response.status and not response.chunks
                stale = unanswered and (reused or isinstance(exc, ConnectionReset))
                if attempt == 0 and retry_stale and stale:
                    continue
                raise
            except BaseException:
                conn.discard()
                raise
            return response
        raise HttpError("unreachable")  # pragma: no cover

    async def aclose(self) -> None:
        self._closed = True
        while self._idle:
            self._idle.pop().discard()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(HttpError("client is closed"))
