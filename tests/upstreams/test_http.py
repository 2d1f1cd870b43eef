"""HTTP upstreams that reset the connection (TCP RST): the call fails at once with an error that
says so, a safe method is tried once more, a ``tools/call`` that was written is never sent
twice, and a reset event stream is reported and reopened. Against a real loopback server that
resets at chosen points (tests/resetserver.py)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import pytest

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import UpstreamUnavailable
from catalyst_mcp.settings import ServerConfig
from catalyst_mcp.upstreams.http import SseTransport, StreamableHttpTransport
from catalyst_mcp.upstreams.session import UpstreamSession
from catalyst_mcp.upstreams.upstream import Upstream
from tests.live import poll
from tests.resetserver import Exchange, ResetServer

pytestmark = pytest.mark.network

TIMEOUT = 10.0  # the call timeout: a reset must be reported long before it
FAST = 2.0  # generous: a reset is seen in milliseconds

Behaviour = Callable[[Exchange], Awaitable[None]]


async def read_then_reset(exchange: Exchange) -> None:
    exchange.reset()


async def reset_mid_answer(exchange: Exchange) -> None:
    await exchange.partial()
    exchange.reset()


def legacy_server(**calls: Behaviour) -> Callable[[Exchange], Awaitable[None]]:
    """A legacy-era Streamable HTTP server (no GET stream); ``calls`` override methods, by
    their name with ``/`` written ``_``."""

    async def handler(exchange: Exchange) -> None:
        request = exchange.request
        if request.method == "GET":
            await exchange.answer(405)
            return
        if request.method == "DELETE":
            await exchange.answer(200)
            return
        method = request.rpc_method or ""
        override = calls.get(method.replace("/", "_"))
        if override is not None:
            await override(exchange)
        elif method == "initialize":
            await exchange.result(
                {
                    "protocolVersion": "2025-06-18",
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "resetter", "version": "1"},
                },
                Mcp_Session_Id="s1",
            )
        elif method.startswith("notifications/"):
            await exchange.answer(202)
        elif method == "tools/list":
            await exchange.result({"tools": [{"name": "act", "inputSchema": {"type": "object"}}]})
        elif method == "tools/call":
            await exchange.result({"content": [{"type": "text", "text": "done"}]})
        else:
            await exchange.answer(404)

    return handler


def session_for(server: ResetServer) -> UpstreamSession:
    """A legacy session without the handshake: requests go straight to the wire."""
    return UpstreamSession(StreamableHttpTransport("resetter", server.url), era="legacy")


async def failure(session: UpstreamSession, method: str) -> tuple[str, float]:
    started = time.monotonic()
    with pytest.raises(UpstreamUnavailable) as info:
        await session.request(method, {"name": "act", "arguments": {}}, timeout=TIMEOUT)
    return info.value.message, time.monotonic() - started


@pytest.mark.parametrize(
    ("server", "said"),
    [
        (lambda: ResetServer(reset_on_accept=True), "reset the connection before"),
        (lambda: ResetServer(legacy_server(tools_call=read_then_reset)), "before answering"),
        (lambda: ResetServer(legacy_server(tools_call=reset_mid_answer)), "in the middle"),
    ],
    ids=["before-reading", "after-reading", "mid-response"],
)
async def test_a_reset_fails_a_tools_call_at_once_and_never_sends_it_twice(
    server: Callable[[], ResetServer], said: str
) -> None:
    async with server().running() as running:
        session = session_for(running)
        message, elapsed = await failure(session, "tools/call")
        await session.close()
    assert elapsed < FAST, message
    assert message.startswith("resetter reset the connection"), message
    assert said in message
    assert running.count("tools/call") <= 1  # read once at most: never sent again


@pytest.mark.parametrize("behaviour", [read_then_reset, reset_mid_answer], ids=["read", "mid"])
async def test_a_written_tools_call_says_it_was_not_sent_again(behaviour: Behaviour) -> None:
    async with ResetServer(legacy_server(tools_call=behaviour)).running() as running:
        session = session_for(running)
        message, _ = await failure(session, "tools/call")
        await session.close()
    assert "not sent again: the server may have acted on it" in message
    assert running.count("tools/call") == 1


async def test_a_tools_call_on_a_reused_connection_is_not_sent_twice() -> None:
    """A pooled keep-alive connection reset under a written tools/call is not the stale
    connection case: the server read the call and may have acted on it."""
    async with ResetServer(legacy_server(tools_call=read_then_reset)).running() as running:
        session = session_for(running)
        await session.request("tools/list", {}, timeout=TIMEOUT)  # leaves a pooled connection
        message, elapsed = await failure(session, "tools/call")
        await session.close()
    assert running.count("tools/call") == 1
    assert running.connections == 1  # no fresh connection was opened to send it again
    assert elapsed < FAST
    assert "reset the connection before answering tools/call" in message


async def test_a_safe_method_is_tried_once_more_on_a_fresh_connection() -> None:
    async with ResetServer(legacy_server(tools_list=read_then_reset)).running() as running:
        session = session_for(running)
        message, elapsed = await failure(session, "tools/list")
        await session.close()
    assert elapsed < FAST
    assert message == "resetter reset the connection before answering tools/list"
    assert running.count("tools/list") == 2
    assert running.connections == 2


async def test_a_safe_method_reset_once_gets_its_answer() -> None:
    resets = 0

    async def reset_first(exchange: Exchange) -> None:
        nonlocal resets
        if resets == 0:
            resets += 1
            exchange.reset()
        else:
            await exchange.result({"tools": []})

    async with ResetServer(legacy_server(tools_list=reset_first)).running() as running:
        session = session_for(running)
        assert await session.request("tools/list", {}, timeout=TIMEOUT) == {"tools": []}
        await session.close()


async def test_a_configured_upstream_reports_the_reset_to_the_caller_at_once() -> None:
    """The whole path a client's call takes: Upstream → session → transport → client."""
    async with ResetServer(legacy_server(tools_call=read_then_reset)).running() as running:
        config = ServerConfig(url=running.url, era="legacy", timeout_seconds=TIMEOUT)
        upstream = Upstream("resetter", "resetter", config, call_timeout=TIMEOUT)
        await upstream.start()
        try:
            await upstream.wait_settled(5)
            assert upstream.status == "ready", upstream.last_error
            ctx = CallContext(era="legacy", protocol_version="2025-06-18", method="tools/call")
            started = time.monotonic()
            with pytest.raises(UpstreamUnavailable, match="reset the connection") as info:
                await upstream.call("tools/call", {"name": "act", "arguments": {}}, ctx)
            elapsed = time.monotonic() - started
        finally:
            await upstream.stop()
    assert elapsed < FAST, info.value.message
    assert running.count("tools/call") == 1


# ---- event streams -------------------------------------------------------------------------


async def test_a_reset_get_stream_is_reported_and_reopened(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gets = 0

    async def stream_then_reset(exchange: Exchange) -> None:
        nonlocal gets
        if exchange.request.method != "GET":
            await legacy_server()(exchange)
            return
        gets += 1
        await exchange.start_stream()
        await asyncio.sleep(0.05)
        exchange.reset()

    caplog.set_level(logging.WARNING, "catalyst.upstream")
    async with ResetServer(stream_then_reset).running() as running:
        transport = StreamableHttpTransport("resetter", running.url)
        transport.start_listening()
        await poll(lambda: gets >= 2, timeout=5, what="the GET stream reopened")
        await transport.close()
    assert "resetter reset the connection of its GET stream" in caplog.text


async def test_a_reset_sse_stream_fails_the_calls_waiting_on_it_at_once() -> None:
    """Legacy HTTP+SSE: answers come on the event stream; its reset fails pending calls."""
    stream_ready = asyncio.Event()
    streams: list[Exchange] = []

    async def sse_server(exchange: Exchange) -> None:
        if exchange.request.method == "GET":
            await exchange.start_stream()
            await exchange.event(b"/messages?session=1", "endpoint")
            streams.append(exchange)
            stream_ready.set()
            await asyncio.Event().wait()  # the stream stays open until the test resets it
        else:
            await exchange.answer(202)
            if exchange.request.rpc_method == "tools/call":
                streams[0].reset()

    async with ResetServer(sse_server).running() as running:
        transport = SseTransport("resetter", f"http://127.0.0.1:{running.port}/sse")
        closed: list[str] = []
        transport.on_closed = closed.append
        session = UpstreamSession(transport, era="legacy")
        await transport.open()
        message, elapsed = await failure(session, "tools/call")
        await session.close()
    assert elapsed < FAST
    assert message == "resetter reset the connection of its event stream; it will be reconnected"
    assert closed == ["resetter reset the connection of its event stream"]
    assert running.count("tools/call") == 1
