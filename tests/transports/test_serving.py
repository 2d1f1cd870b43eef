"""Starting and stopping the HTTP server: lifespan, binding, graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import httpx2
import pytest

from catalyst_mcp.app import Gateway
from catalyst_mcp.settings import Settings
from catalyst_mcp.transports.serving import HttpServer, ServerError
from tests.fakes import JSON_HEADERS, initialize_request
from tests.live import bound_socket, start
from tests.transports.test_httpserver import Reader, connect, echo, request

pytestmark = pytest.mark.network

SSE = "text/event-stream"


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
    task = await start(server, bound_socket())
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
    task = await start(server, on_started=lambda s: ready.extend(s.addresses))
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
    task = await start(server, sock)
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
    task = await start(server, bound_socket())
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


async def test_stopping_ends_an_event_stream_to_a_get_at_once() -> None:
    async def stream(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: hi\n\n", "more_body": True})
        assert (await receive())["type"] == "http.disconnect"
        await send({"type": "http.response.body", "body": b""})

    server = HttpServer(stream, lifespan=False, graceful_seconds=30)
    task = await start(server, bound_socket())
    reader, writer = await connect(server)
    writer.write(request())
    async with asyncio.timeout(5):
        await reader.readuntil(b"data: hi\n\n\r\n")
    server.stop()
    async with asyncio.timeout(5):  # not the 30 s grace period
        await task
        assert await reader.read() == b"0\r\n\r\n", "the stream ends cleanly"
    writer.close()


async def test_stopping_a_gateway_ends_its_legacy_get_streams_without_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gateway = Gateway(Settings())
    server = HttpServer(gateway.asgi, graceful_seconds=30)
    sock = bound_socket()
    task = await start(server, sock)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/mcp"
    async with httpx2.AsyncClient(timeout=10, trust_env=False) as http:
        answer = await http.post(url, json=initialize_request(), headers=JSON_HEADERS)
        headers = {"mcp-session-id": answer.headers["mcp-session-id"], "accept": SSE}
        async with http.stream("GET", url, headers=headers) as stream:
            assert stream.status_code == 200
            with caplog.at_level(logging.ERROR, "catalyst.server"):
                server.stop()
                async with asyncio.timeout(10):  # not the 30 s grace period
                    await task
    assert "without finishing" not in caplog.text
