"""Serving an ASGI app over HTTP/1.1: listen, run its lifespan, stop gracefully.

:class:`HttpServer` runs the app's ``lifespan`` start-up, then listens (on a host and port, or on
sockets it is given: TCP or Unix) with one :class:`~catalyst_mcp.transports.httpserver.
HttpConnection` per client. It stops on :meth:`HttpServer.stop`, or on SIGINT/SIGTERM when it
handles signals: it stops listening, closes idle connections, lets requests in progress finish
for up to ``graceful_seconds`` (then cancels them), and runs the lifespan shut-down. A second
signal cancels at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import Callable, MutableMapping, Sequence
from typing import Any

from catalyst_mcp.transports.httpserver import ASGI_VERSION, ASGIApp, HttpConnection, Limits
from catalyst_mcp.transports.wsconnection import WebSocketConnection

__all__ = ["HttpServer", "ServerError"]

log = logging.getLogger("catalyst.server")


class ServerError(Exception):
    """The server could not start: the address is taken, or the app's start-up failed."""


class _Lifespan:
    """The ASGI lifespan protocol, from the server's side."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.started = asyncio.Event()
        self.stopped = asyncio.Event()
        self.failure: str | None = None
        self.task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        self.task = asyncio.get_running_loop().create_task(self._run())
        await self.inbox.put({"type": "lifespan.startup"})
        await self.started.wait()
        if self.failure is not None:
            raise ServerError(f"the gateway failed to start: {self.failure}")

    async def shutdown(self) -> None:
        if self.task is None or self.task.done():
            return
        await self.inbox.put({"type": "lifespan.shutdown"})
        await self.stopped.wait()
        if self.failure is not None:
            log.error("the gateway's shut-down failed: %s", self.failure)

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": ASGI_VERSION, "state": {}}
        try:
            await self.app(scope, self.inbox.get, self._send)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("the gateway's lifespan failed")
            self.failure = f"{type(exc).__name__}: {exc}"
        finally:
            self.started.set()
            self.stopped.set()

    async def _send(self, message: MutableMapping[str, Any]) -> None:
        kind = message["type"]
        if kind.endswith(".failed"):
            self.failure = str(message.get("message") or "no reason given")
        if kind.startswith("lifespan.startup."):
            self.started.set()
        elif kind.startswith("lifespan.shutdown."):
            self.stopped.set()


class HttpServer:
    """One ASGI app served over HTTP/1.1 until stopped."""

    def __init__(
        self,
        app: ASGIApp,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        limits: Limits | None = None,
        graceful_seconds: float = 5.0,
        lifespan: bool = True,
        backlog: int = 2048,
    ) -> None:
        self.app = app
        self.host = host
        self.port = port
        self.limits = limits or Limits()
        self.graceful_seconds = graceful_seconds
        self.lifespan = lifespan
        self.backlog = backlog
        self.started = False
        self.addresses: list[tuple[str, int]] = []  # where it listens: TCP
        self.paths: list[str] = []  # and Unix sockets
        self.connections: set[HttpConnection | WebSocketConnection] = set()
        self._exit: asyncio.Event | None = None
        self._forced = False

    def stop(self) -> None:
        """Begin a graceful stop (safe to call before start-up ends, and more than once)."""
        if self._exit is not None:
            self._exit.set()

    async def serve(
        self,
        sockets: Sequence[socket.socket] | None = None,
        *,
        handle_signals: bool = False,
        on_started: Callable[[HttpServer], None] | None = None,
    ) -> None:
        """Start, serve until :meth:`stop` (or a signal), then stop gracefully.

        Raises :class:`ServerError` when the address cannot be bound or the app fails to start.
        """
        loop = asyncio.get_running_loop()
        self._exit = asyncio.Event()
        lifespan = _Lifespan(self.app) if self.lifespan else None
        if handle_signals:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, self._on_signal)
        try:
            if lifespan is not None:
                await lifespan.startup()
            servers = await self._listen(sockets)
            self.started = True
            if on_started is not None:
                on_started(self)
            await self._exit.wait()
            await self._shut_down(servers)
        finally:
            if lifespan is not None:
                await lifespan.shutdown()
            if handle_signals:
                for sig in (signal.SIGINT, signal.SIGTERM):
                    loop.remove_signal_handler(sig)

    def _on_signal(self) -> None:
        if self._exit is not None and self._exit.is_set():
            log.warning("second stop signal: cancelling the requests still running")
            self._forced = True
            self._cancel_all()
        else:
            log.info("stopping: finishing the requests in progress")
            self.stop()

    async def _listen(self, sockets: Sequence[socket.socket] | None) -> list[asyncio.Server]:
        loop = asyncio.get_running_loop()
        limits, connections, app = self.limits, self.connections, self.app

        def factory() -> HttpConnection:
            return HttpConnection(app, limits, connections)

        servers: list[asyncio.Server] = []
        try:
            if sockets:
                for sock in sockets:
                    if sock.family == socket.AF_UNIX:
                        server = await loop.create_unix_server(
                            factory, sock=sock, backlog=self.backlog
                        )
                    else:
                        server = await loop.create_server(factory, sock=sock, backlog=self.backlog)
                    servers.append(server)
            else:
                servers.append(
                    await loop.create_server(
                        factory, self.host, self.port, backlog=self.backlog, reuse_address=True
                    )
                )
        except OSError as exc:
            for server in servers:
                server.close()
            raise ServerError(
                f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc}"
            ) from exc
        for server in servers:
            for sock in server.sockets:
                name = sock.getsockname()
                if isinstance(name, str):  # a Unix socket: its path
                    self.paths.append(name)
                else:
                    self.addresses.append((str(name[0]), int(name[1])))
        return servers

    async def _shut_down(self, servers: list[asyncio.Server]) -> None:
        for server in servers:
            server.close()
        for conn in list(self.connections):
            conn.shutdown()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.graceful_seconds
        # polled, and only while stopping: no event to keep up to date on the request path
        while self.connections and loop.time() < deadline and not self._forced:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        if self.connections:
            log.warning(
                "%d connection(s) still busy after %.0fs: cancelling them",
                len(self.connections),
                self.graceful_seconds,
            )
            self._cancel_all()
        for server in servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 1.0)

    def _cancel_all(self) -> None:
        for conn in list(self.connections):
            if conn.task is not None and not conn.task.done():
                conn.task.cancel()
            conn.transport.abort()  # close() would wait for a client that may not read
