"""Real-socket helpers: run an ASGI app (the gateway) on a real socket in the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from catalyst_mcp.app import Gateway
from catalyst_mcp.providers import Provider
from catalyst_mcp.settings import Settings
from catalyst_mcp.transports.serving import HttpServer


async def poll(
    check: Callable[[], Any | Awaitable[Any]],
    *,
    timeout: float = 15.0,
    interval: float = 0.02,
    what: str = "condition",
) -> Any:
    """Call ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while True:
        last = check()
        if asyncio.iscoroutine(last):
            last = await last
        if last:
            return last
        if time.monotonic() >= deadline:
            raise AssertionError(f"{what} not met within {timeout}s (last: {last!r})")
        await asyncio.sleep(interval)


def bound_socket() -> socket.socket:
    """A loopback socket on a free port, bound now so nothing can take the port meanwhile.

    The protocol must be given explicitly: asyncio turns Nagle off (TCP_NODELAY) only for
    sockets whose ``proto`` is IPPROTO_TCP, and without that every keep-alive response costs
    a 40 ms delayed-ACK wait.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class LiveServer:
    port: int
    app: Any

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class LiveGateway(LiveServer):
    gateway: Gateway

    @property
    def url(self) -> str:
        return f"{self.base}{self.gateway.settings.gateway.mcp_path}"

    @property
    def sse_url(self) -> str:
        return f"{self.base}/sse"

    def server(self, name: str) -> dict[str, Any]:
        """The /ready entry of one upstream server."""
        for report in self.gateway.readiness()["servers"]:
            if report["name"] == name:
                return dict(report)
        raise KeyError(name)


async def start(
    server: HttpServer, sock: socket.socket | None = None, **options: Any
) -> asyncio.Task[None]:
    """Run ``server`` (on ``sock`` when given) in a task; return the task once it listens."""
    task = asyncio.create_task(server.serve(None if sock is None else [sock], **options))
    await poll(lambda: server.started or task.done(), what="server start")
    if task.done():
        task.result()
        raise RuntimeError("the server stopped during start-up")
    return task


@contextlib.asynccontextmanager
async def serve_asgi(app: Any, *, lifespan: str = "on") -> AsyncIterator[LiveServer]:
    """Serve ``app`` with the gateway's own HTTP server on a free loopback port, in this event
    loop, until the block ends."""
    sock = bound_socket()
    port = sock.getsockname()[1]
    server = HttpServer(app, lifespan=lifespan == "on", graceful_seconds=2)
    task = await start(server, sock)
    try:
        yield LiveServer(port, app)
    finally:
        server.stop()
        try:
            async with asyncio.timeout(10):
                await task
        except TimeoutError:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        sock.close()


@contextlib.asynccontextmanager
async def live_gateway(
    settings: Settings | dict[str, Any], providers: Sequence[Provider] = ()
) -> AsyncIterator[LiveGateway]:
    """A whole gateway on a real loopback port (start-up waits for the upstreams to settle)."""
    if isinstance(settings, dict):
        settings = Settings.model_validate(settings)
    gateway = Gateway(settings, providers)
    async with serve_asgi(gateway.asgi) as live:
        yield LiveGateway(live.port, live.app, gateway)
