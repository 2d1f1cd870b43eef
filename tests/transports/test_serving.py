"""Starting and stopping the HTTP server: lifespan, binding, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from catalyst_mcp.transports.serving import HttpServer, ServerError
from tests.live import bound_socket
from tests.transports.test_httpserver import Reader, connect, echo, request

pytestmark = pytest.mark.network


class LifespanApp:
    """Records the lifespan messages it gets; optionally fails its start-up."""

    def __init__(self, fail: str | None = None, crash: bool = False) -> None:
        self.events: list[str] = []
        self.fail = fail
        self.crash = crash

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await echo(scope, receive, send)
            return
        while True:
            message = await receive()
            self.events.append(message["type"])
            if message["type"] == "lifespan.startup":
                if self.crash:
                    raise RuntimeError("cannot open the database")
                if self.fail is not None:
                    await send({"type": "lifespan.startup.failed", "message": self.fail})
                    return
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return


async def test_lifespan_runs_around_serving() -> None:
    app = LifespanApp()
    server = HttpServer(app)
    task = asyncio.create_task(server.serve(sockets=[bound_socket()]))
    async with asyncio.timeout(5):
        while not server.started:
            await asyncio.sleep(0.01)
    assert app.events == ["lifespan.startup"]
    server.stop()
    async with asyncio.timeout(5):
        await task
    assert app.events == ["lifespan.startup", "lifespan.shutdown"]


@pytest.mark.parametrize(
    ("app", "reason"),
    [
        (LifespanApp(fail="no config"), "no config"),
        (LifespanApp(crash=True), "RuntimeError: cannot open the database"),
    ],
    ids=["failed", "crashed"],
)
async def test_a_failed_start_up_is_a_server_error(app: LifespanApp, reason: str) -> None:
    server = HttpServer(app)
    sock = bound_socket()
    with sock, pytest.raises(ServerError, match=reason):
        async with asyncio.timeout(5):
            await server.serve(sockets=[sock])
    assert not server.started


async def test_a_taken_port_is_a_clear_server_error() -> None:
    sock = bound_socket()
    sock.listen()
    port = sock.getsockname()[1]
    try:
        server = HttpServer(echo, "127.0.0.1", port, lifespan=False)
        with pytest.raises(ServerError, match=rf"cannot listen on 127\.0\.0\.1:{port}"):
            await server.serve()
    finally:
        sock.close()


async def test_a_port_of_0_reports_the_address_it_got() -> None:
    server = HttpServer(echo, "127.0.0.1", 0, lifespan=False)
    ready: list[tuple[str, int]] = []
    task = asyncio.create_task(server.serve(on_started=lambda s: ready.extend(s.addresses)))
    async with asyncio.timeout(5):
        while not server.started:
            await asyncio.sleep(0.01)
    assert ready and ready[0][0] == "127.0.0.1" and ready[0][1] > 0
    reader, writer = await asyncio.open_connection(*ready[0])
    writer.write(request())
    assert (await Reader(reader).next()).status == 200
    writer.close()
    server.stop()
    async with asyncio.timeout(5):
        await task


async def test_stopping_finishes_requests_in_progress_and_closes_idle_connections() -> None:
    release = asyncio.Event()
    entered = asyncio.Event()

    async def slow(scope: Any, receive: Any, send: Any) -> None:
        if scope["path"] == "/slow":
            entered.set()
            await release.wait()
        await echo(scope, receive, send)

    server = HttpServer(slow, lifespan=False)
    sock = bound_socket()
    task = asyncio.create_task(server.serve(sockets=[sock]))
    async with asyncio.timeout(5):
        while not server.started:
            await asyncio.sleep(0.01)
    busy_reader, busy = await connect(server)
    idle_reader, idle = await connect(server)
    idle.write(request())
    await Reader(idle_reader).next()
    busy.write(request("GET", "/slow"))
    await entered.wait()

    server.stop()
    async with asyncio.timeout(5):
        assert await idle_reader.read() == b"", "the idle connection is closed at once"
    assert not task.done(), "the request in progress holds the stop"
    release.set()
    answer = await Reader(busy_reader).next()
    assert answer.status == 200
    assert answer.headers[b"connection"] == b"close"
    async with asyncio.timeout(5):
        await task
    with pytest.raises(ConnectionRefusedError):
        await connect(server)
    busy.close()
    idle.close()


async def test_a_request_still_running_after_the_grace_period_is_cancelled() -> None:
    cancelled = asyncio.Event()

    async def stuck(scope: Any, receive: Any, send: Any) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    server = HttpServer(stuck, lifespan=False, graceful_seconds=0.2)
    task = asyncio.create_task(server.serve(sockets=[bound_socket()]))
    async with asyncio.timeout(5):
        while not server.started:
            await asyncio.sleep(0.01)
    reader, writer = await connect(server)
    writer.write(request())
    await writer.drain()
    await asyncio.sleep(0.05)
    server.stop()
    async with asyncio.timeout(5):
        await task
        await cancelled.wait()
    with contextlib.suppress(ConnectionError):
        assert await reader.read() == b""
    writer.close()
