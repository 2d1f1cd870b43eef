"""The lean HTTP/1.1 client, against a raw asyncio server on a loopback socket that answers
with hand-written bytes (so every odd response can be produced exactly)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from catalyst_mcp.net.httpclient import (
    ConnectError,
    ConnectionReset,
    HttpClient,
    HttpError,
    _Connection,
    split_url,
)
from tests.conftest import free_port
from tests.resetserver import Exchange, ResetServer, reset

pytestmark = pytest.mark.network

Handler = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]


def response(body: bytes, status: str = "200 OK", *extra: str) -> bytes:
    head = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *extra]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


class RawServer:
    """Reads one request head (+ Content-Length body) at a time and lets ``handler`` answer;
    the handler returns False to close the connection afterwards."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections = 0
        self.requests: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                keep = await self.handler(head + body, writer)
                await writer.drain()
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[RawServer]:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        try:
            yield self
        finally:
            self._server.close()
            await self._server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/mcp?x=1"


async def ok(request: bytes, writer: asyncio.StreamWriter) -> bool:
    writer.write(response(b'{"ok": true}', "200 OK", "Content-Type: application/json"))
    return True


async def test_request_line_headers_and_body() -> None:
    async with RawServer(ok).running() as server:
        client = HttpClient(server.url)
        answer = await client.request("POST", {"Content-Type": "application/json"}, b'{"a":1}')
        assert answer.status == 200
        assert answer.headers["content-type"] == "application/json"
        assert await answer.read() == b'{"ok": true}'
        await client.aclose()
    sent = server.requests[0]
    assert sent.startswith(b"POST /mcp?x=1 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nContent-Type: application/json\r\n" in sent
    assert b"\r\nContent-Length: 7\r\n" in sent
    assert sent.endswith(b'\r\n\r\n{"a":1}')


async def test_keep_alive_reuses_one_connection() -> None:
    async with RawServer(ok).running() as server:
        client = HttpClient(server.url)
        for _ in range(5):
            await (await client.request("POST", {}, b"{}")).read()
        await client.aclose()
    assert server.connections == 1
    assert len(server.requests) == 5


async def test_connection_close_is_not_reused() -> None:
    async def closing(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(response(b"{}", "200 OK", "Connection: close"))
        return False

    async with RawServer(closing).running() as server:
        client = HttpClient(server.url)
        for _ in range(3):
            await (await client.request("GET", {})).read()
        await client.aclose()
    assert server.connections == 3


async def test_connection_closed_by_the_server_after_an_answer_is_replaced() -> None:
    """Whether the close arrives before the next request (the pooled connection is dropped)
    or after it was written (the request is retried once on a fresh connection), the
    caller just gets its answer."""

    async def close_after_answer(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(response(b"{}"))  # claims keep-alive, then closes anyway
        return False

    async with RawServer(close_after_answer).running() as server:
        client = HttpClient(server.url)
        await (await client.request("POST", {}, b"1")).read()
        second = await client.request("POST", {}, b"2")
        assert await second.read() == b"{}"
        await client.aclose()
    assert server.connections == 2


def dies_on_second_request() -> Handler:
    """Answers the first request of each connection (keep-alive), then closes the connection
    on the next one without a byte: a keep-alive connection that died under the request."""
    seen: dict[int, int] = {}

    async def handler(request: bytes, writer: asyncio.StreamWriter) -> bool:
        key = id(writer)
        seen[key] = seen.get(key, 0) + 1
        if seen[key] > 1:
            return False
        writer.write(response(b"{}"))
        return True

    return handler


async def test_a_request_dead_on_a_reused_connection_is_sent_again_on_a_fresh_one() -> None:
    async with RawServer(dies_on_second_request()).running() as server:
        client = HttpClient(server.url)
        await (await client.request("GET", {})).read()
        assert await (await client.request("GET", {})).read() == b"{}"
        await client.aclose()
    assert server.connections == 2
    assert len(server.requests) == 3  # it reached the server twice


async def test_retry_stale_false_never_sends_a_request_twice() -> None:
    async with RawServer(dies_on_second_request()).running() as server:
        client = HttpClient(server.url)
        await (await client.request("POST", {}, b"1")).read()
        with pytest.raises(HttpError):
            await client.request("POST", {}, b"2", retry_stale=False)
        await client.aclose()
    assert [r.endswith(b"2") for r in server.requests] == [False, True]


async def test_a_waiter_that_gives_up_as_it_is_woken_passes_the_connection_on() -> None:
    async with RawServer(ok).running() as server:
        client = HttpClient(server.url, max_connections=1, connect_timeout=5)
        holder = await client.request("GET", {})  # holds the only connection
        first = asyncio.create_task(client.request("GET", {}))
        second = asyncio.create_task(client.request("GET", {}))
        await asyncio.sleep(0.01)  # both wait for the connection
        await holder.read()  # released: wakes `first`...
        first.cancel()  # ...which gives up before it runs
        answer = await asyncio.wait_for(second, 2)  # without the hand-over: 5 s, then failure
        assert await answer.read() == b'{"ok": true}'
        with pytest.raises(asyncio.CancelledError):
            await first
        await client.aclose()


async def test_chunked_body_streams() -> None:
    async def chunked(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for part in (b"data: one\n\n", b"data: two\n\n"):
            writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            await writer.drain()
            await asyncio.sleep(0.01)
        writer.write(b"0\r\n\r\n")
        return True

    async with RawServer(chunked).running() as server:
        client = HttpClient(server.url)
        answer = await client.request("GET", {"Accept": "text/event-stream"})
        chunks = [chunk async for chunk in answer.iter_chunks()]
        assert b"".join(chunks) == b"data: one\n\ndata: two\n\n"
        await (await client.request("GET", {})).read()  # the connection went back to the pool
        await client.aclose()
    assert server.connections == 1


@pytest.mark.parametrize(
    "raw",
    [
        b"NOT HTTP AT ALL\r\n\r\n",
        b"HTTP/1.1 abc OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
    ],
    ids=["garbage", "bad-status", "bad-length"],
)
async def test_malformed_response_is_http_error(raw: bytes) -> None:
    async def bad(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(raw)
        return True

    async with RawServer(bad).running() as server:
        client = HttpClient(server.url)
        with pytest.raises(HttpError, match="malformed HTTP response"):
            await (await client.request("GET", {})).read()
        await client.aclose()


async def test_connection_closed_mid_body_is_http_error() -> None:
    async def truncated(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"partial')
        return False

    async with RawServer(truncated).running() as server:
        client = HttpClient(server.url)
        answer = await client.request("GET", {})
        with pytest.raises(HttpError, match="closed before the response was complete"):
            await answer.read()
        await client.aclose()


async def test_connection_refused_is_http_error() -> None:
    client = HttpClient(f"http://127.0.0.1:{free_port()}/mcp")
    with pytest.raises(HttpError, match=r"cannot connect to 127\.0\.0\.1") as info:
        await client.request("GET", {})
    assert isinstance(info.value, ConnectError)  # the request was not sent
    await client.aclose()


async def test_resolve_hook_picks_the_address_the_name_stays_in_host() -> None:
    asked: list[tuple[str, int]] = []

    async def resolve(host: str, port: int) -> str:
        asked.append((host, port))
        return "127.0.0.1"

    async with RawServer(ok).running() as server:
        client = HttpClient(f"http://api.example.test:{server.port}/mcp", resolve=resolve)
        for _ in range(3):
            await (await client.request("GET", {})).read()
        await client.aclose()
    assert asked == [("api.example.test", server.port)]  # once per connection
    assert server.requests[0].startswith(
        f"GET /mcp HTTP/1.1\r\nHost: api.example.test:{server.port}\r\n".encode()
    )


async def test_resolve_hook_failures_propagate_and_free_the_slot() -> None:
    class Refused(Exception):
        pass

    async def refuse(host: str, port: int) -> str:
        raise Refused(host)

    async def no_address(host: str, port: int) -> str:
        raise OSError(f"{host} has no address")

    client = HttpClient("http://api.example.test:9/mcp", max_connections=1, resolve=refuse)
    for _ in range(2):  # the failed connect does not keep the only slot
        with pytest.raises(Refused):
            await client.request("GET", {})
    client.resolve = no_address
    with pytest.raises(ConnectError, match=r"cannot connect to api\.example\.test:9: .*no address"):
        await client.request("GET", {})
    await client.aclose()


async def test_header_injection_is_refused() -> None:
    client = HttpClient("http://127.0.0.1:9/mcp")
    with pytest.raises(HttpError, match="line break"):
        await client.request("GET", {"X-Evil": "a\r\nInjected: yes"})
    await client.aclose()


async def test_closed_client_refuses_requests() -> None:
    client = HttpClient("http://127.0.0.1:9/mcp")
    await client.aclose()
    with pytest.raises(HttpError, match="client is closed"):
        await client.request("GET", {})


@pytest.mark.parametrize(
    ("url", "host", "port", "path", "host_header"),
    [
        ("http://example.com", "example.com", 80, "/", "example.com"),
        ("https://example.com/a/b?c=d", "example.com", 443, "/a/b?c=d", "example.com"),
        ("http://user:pw@127.0.0.1:8080/mcp", "127.0.0.1", 8080, "/mcp", "127.0.0.1:8080"),
        ("http://[::1]:9000/x", "::1", 9000, "/x", "[::1]:9000"),
    ],
)
def test_split_url(url: str, host: str, port: int, path: str, host_header: str) -> None:
    target = split_url(url)
    assert (target.host, target.port, target.path, target.host_header) == (
        host,
        port,
        path,
        host_header,
    )


@pytest.mark.parametrize("url", ["ftp://example.com", "http://", "example.com", ""])
def test_split_url_refuses_other_urls(url: str) -> None:
    with pytest.raises(HttpError, match="not an http"):
        split_url(url)


async def test_header_names_are_lower_case_and_repeats_joined_on_every_response() -> None:
    async def traced(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(response(b"{}", "200 OK", "X-Trace: a", "x-TRACE: b", "Content-Type: x"))
        return True

    async with RawServer(traced).running() as server:
        client = HttpClient(server.url)
        for _ in range(2):  # the second response finds the names already folded
            answer = await client.request("GET", {})
            assert answer.headers["x-trace"] == "a, b"
            assert answer.headers["content-type"] == "x"
            await answer.read()
        await client.aclose()


# ---- connection resets (TCP RST) -------------------------------------------------------------


async def test_a_connection_reset_before_the_request_is_written_is_tried_once_more() -> None:
    """The reset lands between opening the connection and writing to it (a busy loop): nothing
    was sent, so any request is tried on a fresh connection, and the second reset is
    reported at once (not after the caller's timeout: the write used to vanish)."""
    async with ResetServer(reset_on_accept=True).running() as server:
        client = HttpClient(server.url)
        connect = client._connect

        async def connect_then_wait_for_the_reset() -> Any:
            conn = await connect()
            await asyncio.wait_for(server.resets.wait(), 5)
            server.resets.clear()
            for _ in range(500):  # until the client has seen the reset
                if conn.closed:
                    break
                await asyncio.sleep(0.01)
            return conn

        client._connect = connect_then_wait_for_the_reset  # type: ignore[method-assign]
        with pytest.raises(ConnectionReset) as info:
            async with asyncio.timeout(5):
                await client.request("POST", {}, b"{}", retry_stale=False)
        await client.aclose()
    assert str(info.value).endswith("reset the connection before the request was sent")
    assert not info.value.sent
    assert server.connections == 2
    assert client._open == 0  # both connections left the pool's count


@pytest.mark.parametrize("retry_stale", [False, True])
async def test_a_reset_after_the_request_was_read(retry_stale: bool) -> None:
    async def read_then_reset(exchange: Exchange) -> None:
        exchange.reset()

    async with ResetServer(read_then_reset).running() as server:
        client = HttpClient(server.url)
        with pytest.raises(ConnectionReset) as info:
            async with asyncio.timeout(5):
                await client.request("POST", {}, b"{}", retry_stale=retry_stale)
        await client.aclose()
    assert info.value.stage == ConnectionReset.BEFORE_ANSWERING
    assert info.value.sent
    # safe to repeat: once more on a fresh connection; otherwise never sent twice
    assert len(server.requests) == (2 if retry_stale else 1)


async def test_a_reset_mid_response_fails_the_body_and_is_not_retried() -> None:
    async def reset_mid_answer(exchange: Exchange) -> None:
        await exchange.partial()
        exchange.reset()

    async with ResetServer(reset_mid_answer).running() as server:
        client = HttpClient(server.url)
        answer = await client.request("GET", {})
        assert answer.status == 200
        with pytest.raises(ConnectionReset, match="reset the connection mid-response"):
            async with asyncio.timeout(5):
                await answer.read()
        await client.aclose()
    assert len(server.requests) == 1


# ---- idle keep-alive connections the server closed -------------------------------------------


class IdleClosingServer:
    """A keep-alive HTTP/1.1 server in a thread of its own (so it closes on time while the
    client's loop is busy) that closes a connection idle for ``idle_timeout`` seconds, like
    uvicorn's ``timeout_keep_alive`` (5 s by default)."""

    def __init__(self, idle_timeout: float) -> None:
        self.connections = 0
        self.bodies: list[bytes] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = idle_timeout  # the socket's: an idle read times out and the server closes

            def setup(self) -> None:
                owner.connections += 1
                super().setup()

            def do_POST(self) -> None:
                owner.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/mcp"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> IdleClosingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


async def test_a_pooled_connection_the_server_closed_while_the_loop_was_busy_is_not_used() -> None:
    """The server closes the idle connection while the client's loop is busy (its FIN is in
    the socket, not yet seen by the loop); the next non-repeatable call must go out on a
    fresh connection, not fail with "closed before the response was complete"."""
    with IdleClosingServer(idle_timeout=0.2) as server:
        client = HttpClient(server.url)
        assert await (await client.request("POST", {}, b"1", retry_stale=False)).read() == b"{}"
        time.sleep(0.6)  # a busy loop: the server's close arrives, nobody reads it
        answer = await client.request("POST", {}, b"2", retry_stale=False)
        assert await answer.read() == b"{}"
        await client.aclose()
    assert server.bodies == [b"1", b"2"]  # each call reached the server once
    assert server.connections == 2


async def test_a_pooled_connection_idle_past_max_idle_is_closed_not_reused() -> None:
    async with RawServer(ok).running() as server:
        client = HttpClient(server.url, max_idle=0.05)
        await (await client.request("POST", {}, b"1")).read()
        await (await client.request("POST", {}, b"2")).read()  # at once: reused
        assert server.connections == 1
        await asyncio.sleep(0.15)
        await (await client.request("POST", {}, b"3")).read()
        assert server.connections == 2
        assert client._open == 1  # the expired one left the pool's count
        await client.aclose()


async def test_a_pooled_connection_with_unexpected_bytes_waiting_is_not_reused() -> None:
    """Bytes nobody asked for, already in the socket when the connection is taken (the loop
    has not read them yet), mean the connection is out of step: a fresh one is used."""
    writers: list[asyncio.StreamWriter] = []

    async def remember(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writers.append(writer)
        return await ok(request, writer)

    async with RawServer(remember).running() as server:
        client = HttpClient(server.url)
        await (await client.request("POST", {}, b"1")).read()
        writers[0].write(response(b"stray"))
        await writers[0].drain()
        time.sleep(0.1)  # the bytes are in the client's socket; its loop has not run
        answer = await client.request("POST", {}, b"2", retry_stale=False)
        assert await answer.read() == b'{"ok": true}'
        await client.aclose()
    assert server.connections == 2


async def test_a_request_whose_first_write_fails_is_sent_on_a_fresh_connection(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The peer's reset slipped past the liveness check (it is bypassed here): the write
    fails in the socket, so no byte reached the server and even a non-repeatable call is
    sent once more on a fresh connection."""
    writers: list[asyncio.StreamWriter] = []

    async def remember(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writers.append(writer)
        return await ok(request, writer)

    async with RawServer(remember).running() as server:
        client = HttpClient(server.url)
        await (await client.request("POST", {}, b"1")).read()
        reset(writers[0])
        await asyncio.sleep(0)  # the server's socket closes (a RST) before the loop polls
        time.sleep(0.05)  # the reset is in the client's socket; its loop has not read it
        monkeypatch.setattr(_Connection, "peer_spoke", lambda self: False)
        answer = await client.request("POST", {}, b"2", retry_stale=False)
        assert await answer.read() == b'{"ok": true}'
        await client.aclose()
    assert [r.endswith(b"2") for r in server.requests] == [False, True]  # sent once
    assert server.connections == 2
