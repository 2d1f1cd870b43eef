"""The gateway's HTTP/1.1 server, spoken to in raw bytes over a loopback socket."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httptools
import orjson
import pytest

from catalyst_mcp.transports.httpserver import Limits
from catalyst_mcp.transports.serving import HttpServer
from tests.live import bound_socket, poll, start

pytestmark = pytest.mark.network

App = Callable[[Any, Any, Any], Awaitable[None]]


@dataclass
class Response:
    status: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytes = b""
    done: bool = False


class Reader:
    """Reads responses off a connection with llhttp, one at a time."""

    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.ready: list[Response] = []
        self.current = Response()
        self.parser = httptools.HttpResponseParser(self)

    def on_status(self, status: bytes) -> None:
        self.current.status = self.parser.get_status_code()

    def on_header(self, name: bytes, value: bytes) -> None:
        self.current.headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        self.current.status = self.parser.get_status_code()

    def on_body(self, body: bytes) -> None:
        self.current.body += body

    def on_message_complete(self) -> None:
        self.current.done = True
        self.ready.append(self.current)
        self.current = Response()

    async def next(self, timeout: float = 5.0) -> Response:
        async with asyncio.timeout(timeout):
            while not self.ready:
                data = await self.reader.read(65536)
                if not data:
                    with contextlib.suppress(httptools.HttpParserError):
                        self.parser.feed_data(b"")  # a close-delimited body ends here
                    if not self.ready:
                        raise ConnectionError("closed before a whole response")
                    break
                self.parser.feed_data(data)
        return self.ready.pop(0)


@contextlib.asynccontextmanager
async def running(app: App, **options: Any) -> AsyncIterator[HttpServer]:
    sock = bound_socket()
    options.setdefault("lifespan", False)
    server = HttpServer(app, **options)
    task = await start(server, sock)
    try:
        yield server
    finally:
        server.stop()
        async with asyncio.timeout(10):
            await task


async def connect(server: HttpServer) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", server.addresses[0][1])


async def closed(reader: asyncio.StreamReader) -> bool:
    """Whether the server closes the connection (reads whatever is left)."""
    async with asyncio.timeout(5):
        return await reader.read() == b""


def request(
    method: str = "GET", path: str = "/", body: bytes = b"", headers: str = "", version: str = "1.1"
) -> bytes:
    length = f"content-length: {len(body)}\r\n" if body else ""
    return f"{method} {path} HTTP/{version}\r\nhost: test\r\n{headers}{length}\r\n".encode() + body


async def echo(scope: Any, receive: Any, send: Any) -> None:
    """Answers with the request's method, path, query and body."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    text = f"{scope['method']} {scope['path']} {scope['query_string'].decode()} ".encode() + body
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(text))],
        }
    )
    await send({"type": "http.response.body", "body": text})


async def test_keep_alive_answers_requests_one_after_another() -> None:
    async with running(echo) as server:
        reader, writer = await connect(server)
        responses = Reader(reader)
        for i in range(3):
            writer.write(request("POST", f"/mcp?n={i}", b"hello"))
            answer = await responses.next()
            assert answer.status == 200
            assert answer.body == f"POST /mcp n={i} hello".encode()
            assert b"transfer-encoding" not in answer.headers
        writer.close()


async def test_scope_holds_the_decoded_path_the_raw_path_and_lower_case_headers() -> None:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.update(scope)
        await receive()
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async with running(app) as server:
        reader, writer = await connect(server)
        writer.write(request("GET", "/a%20b/c?x=%20y", headers="X-Thing: One\r\n"))
        answer = await Reader(reader).next()
        writer.close()
    assert answer.status == 204
    assert seen["path"] == "/a b/c"
    assert seen["raw_path"] == b"/a%20b/c"
    assert seen["query_string"] == b"x=%20y"
    assert (b"x-thing", b"One") in seen["headers"]
    assert seen["http_version"] == "1.1"
    assert seen["client"][0] == "127.0.0.1"
    assert seen["server"] == server.addresses[0]


async def test_pipelined_requests_are_answered_in_order() -> None:
    started: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        started.append(scope["path"])
        if scope["path"] == "/slow":
            await asyncio.sleep(0.1)
            assert started == ["/slow"], "the next request must wait its turn"
        await echo(scope, receive, send)

    async with running(app) as server:
        reader, writer = await connect(server)
        writer.write(request("GET", "/slow") + request("POST", "/fast", b"x") + request("GET", "/"))
        responses = Reader(reader)
        bodies = [(await responses.next()).body for _ in range(3)]
        writer.close()
    assert bodies == [b"GET /slow  ", b"POST /fast  x", b"GET /  "]


async def test_a_chunked_request_body_reaches_the_app_whole() -> None:
    async with running(echo) as server:
        reader, writer = await connect(server)
        writer.write(b"POST /c HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n")
        writer.write(b"5\r\nhello\r\n")
        await writer.drain()
        await asyncio.sleep(0.02)
        writer.write(b"6\r\n world\r\n0\r\n\r\n")
        answer = await Reader(reader).next()
        writer.close()
    assert answer.body == b"POST /c  hello world"


async def test_a_large_body_arrives_whole_under_back_pressure() -> None:
    sizes: list[int] = []

    async def slow_reader(scope: Any, receive: Any, send: Any) -> None:
        total = 0
        while True:
            message = await receive()
            sizes.append(len(message["body"]))
            total += len(message["body"])
            await asyncio.sleep(0.001)
            if not message["more_body"]:
                break
        text = str(total).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % len(text))],
            }
        )
        await send({"type": "http.response.body", "body": text})

    body = bytes(range(256)) * 8192  # 2 MiB
    async with running(slow_reader) as server:
        reader, writer = await connect(server)
        writer.write(request("POST", "/big", body))
        answer = await Reader(reader).next(timeout=20)
        writer.close()
    assert answer.body == str(len(body)).encode()
    assert len(sizes) > 1, "the body should come in several messages"


async def test_expect_100_continue_is_answered_before_the_body_is_read() -> None:
    async with running(echo) as server:
        reader, writer = await connect(server)
        writer.write(
            b"POST /e HTTP/1.1\r\nhost: t\r\ncontent-length: 4\r\nexpect: 100-continue\r\n\r\n"
        )
        async with asyncio.timeout(5):
            interim = await reader.readuntil(b"\r\n\r\n")
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        writer.write(b"data")
        answer = await Reader(reader).next()
        writer.close()
    assert answer.body == b"POST /e  data"


async def test_a_stream_is_chunked_and_its_head_goes_out_before_the_first_event() -> None:
    release = asyncio.Event()

    async def stream(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        await release.wait()
        for part in (b"data: 1\n\n", b"", b"data: 2\n\n"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async with running(stream) as server:
        reader, writer = await connect(server)
        writer.write(request())
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"transfer-encoding: chunked\r\n" in head
        release.set()
        async with asyncio.timeout(5):
            rest = await reader.readuntil(b"0\r\n\r\n")
        assert rest == b"9\r\ndata: 1\n\n\r\n9\r\ndata: 2\n\n\r\n0\r\n\r\n"
        writer.write(request("POST", "/next", b"!"))  # the connection stays usable
        release.set()
        answer = await Reader(reader).next()
        assert answer.status == 200
        writer.close()


async def test_head_gets_headers_and_no_body_and_the_connection_goes_on() -> None:
    async with running(echo) as server:
        reader, writer = await connect(server)
        writer.write(request("HEAD", "/h"))
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"content-length: 9\r\n" in head  # what GET would send: "HEAD /h  "
        writer.write(request("GET", "/g"))
        follow = await Reader(reader).next()  # no body bytes came between the two
        assert follow.body == b"GET /g  "
        writer.close()


async def test_http_1_0_without_a_length_ends_the_body_by_closing() -> None:
    async def unsized(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"a", "more_body": True})
        await send({"type": "http.response.body", "body": b"b"})

    async with running(unsized) as server:
        reader, writer = await connect(server)
        writer.write(request(version="1.0"))
        async with asyncio.timeout(5):
            raw = await reader.read()
        writer.close()
    assert raw.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"connection: close\r\n" in raw
    assert raw.endswith(b"\r\n\r\nab")


async def test_connection_close_from_the_client_closes_after_the_answer() -> None:
    async with running(echo) as server:
        reader, writer = await connect(server)
        writer.write(request(headers="connection: close\r\n"))
        answer = await Reader(reader).next()
        assert answer.headers[b"connection"] == b"close"
        assert await closed(reader)
        writer.close()


async def test_an_app_failing_before_answering_gives_a_500_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise ValueError("secret detail")

    async with running(broken) as server:
        reader, writer = await connect(server)
        writer.write(request())
        with caplog.at_level(logging.ERROR, "catalyst.server"):
            answer = await Reader(reader).next()
            assert await closed(reader)
        writer.close()
    assert answer.status == 500
    assert b"secret detail" not in answer.body
    assert "the application failed on GET /" in caplog.text


async def test_an_app_failing_mid_response_drops_the_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def half(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise ValueError("boom")

    async with running(half) as server:
        reader, writer = await connect(server)
        writer.write(request())
        with caplog.at_level(logging.ERROR, "catalyst.server"):
            async with asyncio.timeout(5):
                raw = await reader.read()
        writer.close()
    assert raw.endswith(b"4\r\npart\r\n"), "no terminating chunk: the client sees a cut response"


async def test_an_app_returning_without_an_answer_gives_a_500() -> None:
    async def silent(scope: Any, receive: Any, send: Any) -> None:
        return None

    async with running(silent) as server:
        reader, writer = await connect(server)
        writer.write(request())
        answer = await Reader(reader).next()
        writer.close()
    assert answer.status == 500


async def test_a_header_value_with_a_line_break_is_refused() -> None:
    async def splitting(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"x", b"a\r\nb: c")]}
        )

    async with running(splitting) as server:
        reader, writer = await connect(server)
        writer.write(request())
        answer = await Reader(reader).next()
        writer.close()
    assert answer.status == 500
    assert b"b" not in answer.headers


async def test_a_body_longer_than_its_content_length_is_refused() -> None:
    async def liar(scope: Any, receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]}
        )
        await send({"type": "http.response.body", "body": b"too long"})

    async with running(liar) as server:
        reader, writer = await connect(server)
        writer.write(request())
        answer = await Reader(reader).next()
        writer.close()
    assert answer.status == 500


async def test_a_malformed_request_gets_400_and_a_close() -> None:
    async with running(echo) as server:
        reader, writer = await connect(server)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        answer = await Reader(reader).next()
        assert await closed(reader)
        writer.close()
    assert answer.status == 400


async def test_an_oversized_request_head_gets_431() -> None:
    async with running(echo, limits=Limits(max_head_bytes=1024)) as server:
        reader, writer = await connect(server)
        writer.write(request(headers=f"x-big: {'a' * 2000}\r\n"))
        answer = await Reader(reader).next()
        assert await closed(reader)
        writer.close()
    assert answer.status == 431


async def test_an_upgrade_request_is_answered_in_http_1_1_then_closed() -> None:
    async with running(echo) as server:
        reader, writer = await connect(server)
        writer.write(request(headers="connection: Upgrade, HTTP2-Settings\r\nupgrade: h2c\r\n"))
        answer = await Reader(reader).next()
        assert answer.status == 200
        assert await closed(reader)
        writer.close()


async def test_receive_reports_a_disconnect_once_the_client_goes() -> None:
    seen: asyncio.Queue[str] = asyncio.Queue()

    async def waiting(scope: Any, receive: Any, send: Any) -> None:
        await receive()  # the (empty) body
        seen.put_nowait((await receive())["type"])

    async with running(waiting) as server:
        _reader, writer = await connect(server)
        writer.write(request())
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()
        async with asyncio.timeout(5):
            assert await seen.get() == "http.disconnect"


async def test_an_idle_connection_is_closed_after_the_keep_alive_limit() -> None:
    async with running(echo, limits=Limits(keepalive_seconds=0.1)) as server:
        reader, writer = await connect(server)
        writer.write(request())
        await Reader(reader).next()
        assert await closed(reader)
        writer.close()


async def test_a_large_response_reaches_a_slow_reader_whole() -> None:
    payload = bytes(range(256)) * 16384  # 4 MiB

    async def big(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(0, len(payload), 65536):
            await send(
                {"type": "http.response.body", "body": payload[i : i + 65536], "more_body": True}
            )
        await send({"type": "http.response.body", "body": b""})

    async with running(big) as server:
        reader, writer = await connect(server)
        writer.write(request())
        await asyncio.sleep(0.2)  # let the server's buffers fill
        answer = await Reader(reader).next(timeout=20)
        writer.close()
    assert answer.body == payload


async def test_a_request_head_sent_too_slowly_closes_the_connection() -> None:
    async with running(echo, limits=Limits(head_seconds=0.1)) as server:
        reader, writer = await connect(server)
        writer.write(b"GET / HTTP/1.1\r\nhost: t\r\n")  # and never the blank line
        assert await closed(reader)
        writer.close()


async def test_one_endless_header_line_is_refused_before_it_ends() -> None:
    async with running(echo, limits=Limits(max_head_bytes=1024)) as server:
        reader, writer = await connect(server)
        writer.write(b"GET / HTTP/1.1\r\nhost: t\r\nx-big: ")
        for _ in range(64):  # 4 MiB of one header value, never a line end
            if writer.is_closing():
                break
            writer.write(b"a" * 65536)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        answer = await Reader(reader).next()
        writer.close()
    assert answer.status == 431


async def test_a_disconnect_is_seen_after_a_large_body_was_read() -> None:
    seen: asyncio.Queue[str] = asyncio.Queue()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        seen.put_nowait((await receive())["type"])

    async with running(app) as server:
        _reader, writer = await connect(server)
        writer.write(request("POST", "/", b"x" * 300_000))  # past the read buffer, in one go
        await writer.drain()
        await asyncio.sleep(0.1)
        writer.close()
        async with asyncio.timeout(5):
            assert await seen.get() == "http.disconnect"


async def test_sending_to_a_client_that_has_gone_is_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    done: asyncio.Queue[str] = asyncio.Queue()

    async def late(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        assert (await receive())["type"] == "http.disconnect"
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data: x\n\n", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        done.put_nowait("sent")

    async with running(late) as server:
        _reader, writer = await connect(server)
        writer.write(request())
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.close()
        with caplog.at_level(logging.ERROR, "catalyst.server"):
            async with asyncio.timeout(5):
                assert await done.get() == "sent"
    assert "failed" not in caplog.text


async def test_a_client_that_stops_reading_is_cut_off() -> None:
    finished: asyncio.Queue[str] = asyncio.Queue()

    async def flood(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(256):  # 16 MiB, far past every buffer
            await send({"type": "http.response.body", "body": b"x" * 65536, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        finished.put_nowait("returned")

    async with running(flood, limits=Limits(write_stall_seconds=0.2)) as server:
        _reader, writer = await connect(server)
        writer.write(request())  # and never read
        async with asyncio.timeout(10):
            assert await finished.get() == "returned"
            while server.connections:
                await asyncio.sleep(0.02)
        writer.close()


async def test_no_100_continue_once_the_response_has_started() -> None:
    async def early(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        message = await receive()
        await send({"type": "http.response.body", "body": message["body"]})

    async with running(early) as server:
        reader, writer = await connect(server)
        writer.write(
            b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\nexpect: 100-continue\r\n\r\n"
        )
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
        writer.write(b"ok")
        async with asyncio.timeout(5):
            rest = await reader.readuntil(b"0\r\n\r\n")
        writer.close()
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert b"100 Continue" not in rest


@pytest.mark.parametrize(
    "head",
    [
        b"CONNECT example.com:443 HTTP/1.1\r\nhost: example.com:443\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n",
    ],
    ids=["authority-form", "no-host", "two-hosts"],
)
async def test_requests_the_gateway_cannot_serve_get_400_quietly(
    head: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(echo) as server:
        reader, writer = await connect(server)
        with caplog.at_level(logging.ERROR, "catalyst.server"):
            writer.write(head)
            answer = await Reader(reader).next()
            assert await closed(reader)
        writer.close()
    assert answer.status == 400
    assert not caplog.records


async def test_a_pipelined_upgrade_request_is_answered_too() -> None:
    async with running(echo) as server:
        reader, writer = await connect(server)
        writer.write(
            request("GET", "/a")
            + request("GET", "/up", headers="connection: upgrade\r\nupgrade: h2c\r\n")
        )
        responses = Reader(reader)
        first, second = await responses.next(), await responses.next()
        assert await closed(reader)
        writer.close()
    assert (first.body, second.body) == (b"GET /a  ", b"GET /up  ")
    assert second.headers[b"connection"] == b"close"


async def test_an_answer_before_the_body_is_read_reaches_the_client() -> None:
    async def refuse(scope: Any, receive: Any, send: Any) -> None:
        text = b"too large"
        headers = [(b"content-length", b"%d" % len(text))]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": text})

    async with running(refuse) as server:
        reader, writer = await connect(server)
        writer.write(b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 4000000\r\n\r\n")
        writer.write(b"x" * 1_000_000)  # part of the body, more than any buffer holds unread
        answer = await Reader(reader).next()
        with contextlib.suppress(ConnectionError):
            writer.write(b"x" * 3_000_000)
            await writer.drain()
        assert await closed(reader)
        writer.close()
    assert answer.status == 413
    assert answer.body == b"too large"
    assert answer.headers[b"connection"] == b"close"


# ---- request bodies that cannot be read ----------------------------------------------------

CHUNKED_HEAD = b"POST /c HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n"


def refusal_of(answer: Response) -> str:
    assert answer.headers[b"content-type"] == b"application/json"
    assert answer.headers[b"connection"] == b"close"
    error: str = orjson.loads(answer.body)["error"]
    return error


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"zz\r\nhello\r\n0\r\n\r\n", "invalid character in chunk size"),
        (b"-5\r\nhello\r\n0\r\n\r\n", "invalid character in chunk size"),
        (b"1" * 20 + b"\r\nhello\r\n0\r\n\r\n", "chunk size overflow"),
        (b"5\nhello\n0\n\n", "missing expected CR after chunk size"),
        (b"5\r\nhello\n0\r\n\r\n", "missing expected CR after chunk data"),
        (b"5\r\nhelloXX0\r\n\r\n", "expected LF after chunk data"),
    ],
    ids=["bad-hex", "negative", "overlong", "bare-lf", "bare-lf-after-data", "no-crlf"],
)
async def test_a_malformed_chunked_body_gets_400_and_a_close(
    body: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with running(echo) as server:
        reader, writer = await connect(server)
        with caplog.at_level(logging.ERROR, "catalyst.server"):
            writer.write(CHUNKED_HEAD + body)
            answer = await Reader(reader).next()
            assert await closed(reader)
        writer.close()
    assert answer.status == 400
    assert refusal_of(answer) == f"Bad request: the request body is malformed ({reason})."
    assert not caplog.records  # the client's fault, not an application failure


async def test_a_body_that_breaks_while_the_app_reads_it_tells_the_app_the_client_is_gone(
    caplog: pytest.LogCaptureFixture,
) -> None:
    received: list[dict[str, Any]] = []

    async def reader_app(scope: Any, receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            received.append(message)
            if message["type"] == "http.disconnect":
                # whatever it sends now is dropped: the server has answered already
                await send({"type": "http.response.start", "status": 200, "headers": []})
                await send({"type": "http.response.body", "body": b"late"})
                return

    async with running(reader_app) as server:
        reader, writer = await connect(server)
        with caplog.at_level(logging.ERROR, "catalyst.server"):
            writer.write(CHUNKED_HEAD + b"5\r\nhello\r\n")
            await writer.drain()
            await poll(lambda: received, timeout=5)  # the app has the first chunk, waits
            writer.write(b"zz\r\n")
            answer = await Reader(reader).next()
            assert await closed(reader)
        writer.close()
    assert answer.status == 400
    assert "invalid character in chunk size" in refusal_of(answer)
    assert [m["type"] for m in received] == ["http.request", "http.disconnect"]
    assert received[0] == {"type": "http.request", "body": b"hello", "more_body": True}
    assert not caplog.records


@pytest.mark.parametrize(
    ("codings", "status", "said"),
    [
        (["xchunked"], 400, "must end in chunked"),
        (["identity"], 400, "must end in chunked"),
        (["chunked, gzip"], 400, "could not be parsed"),  # llhttp's own refusal
        (["gzip, chunked"], 501, "transfer coding 'gzip'"),
        (["x-custom, chunked"], 501, "transfer coding 'x-custom'"),
        (["gzip", "chunked"], 501, "transfer coding 'gzip'"),  # two header lines
    ],
    ids=["xchunked", "identity", "chunked-not-last", "gzip", "unknown", "two-lines"],
)
async def test_transfer_codings_the_server_cannot_read_are_refused(
    codings: list[str], status: int, said: str
) -> None:
    headers = "".join(f"transfer-encoding: {c}\r\n" for c in codings)
    async with running(echo) as server:
        reader, writer = await connect(server)
        writer.write(request("POST", "/c", headers=headers) + b"5\r\nhello\r\n0\r\n\r\n")
        answer = await Reader(reader).next()
        assert await closed(reader)
        writer.close()
    assert answer.status == status
    assert said in answer.body.decode()


async def test_a_get_with_an_unknown_transfer_coding_is_refused() -> None:
    async with running(echo) as server:
        reader, writer = await connect(server)
        writer.write(request("GET", "/", headers="transfer-encoding: xchunked\r\n"))
        answer = await Reader(reader).next()
        assert await closed(reader)
        writer.close()
    assert answer.status == 400
    assert "must end in chunked" in refusal_of(answer)


async def test_a_malformed_pipelined_body_is_refused_after_the_answers_before_it() -> None:
    async with running(echo) as server:
        reader, writer = await connect(server)
        writer.write(
            request("POST", "/a", b"one")
            + CHUNKED_HEAD
            + b"3\r\ntwo\r\n0\r\n\r\n"
            + CHUNKED_HEAD
            + b"zz\r\n"
            + request("GET", "/never")
        )
        responses = Reader(reader)
        first, second, third = [await responses.next() for _ in range(3)]
        assert await closed(reader)
        writer.close()
    assert (first.status, first.body) == (200, b"POST /a  one")
    assert (second.status, second.body) == (200, b"POST /c  two")
    assert third.status == 400
    assert "chunk size" in refusal_of(third)


async def test_requests_after_a_malformed_body_are_not_served() -> None:
    paths: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        paths.append(scope["path"])
        await echo(scope, receive, send)

    async with running(app) as server:
        reader, writer = await connect(server)
        writer.write(CHUNKED_HEAD + b"-1\r\n" + request("GET", "/after"))
        answer = await Reader(reader).next()
        assert await closed(reader)
        writer.close()
    assert answer.status == 400
    assert paths == ["/c"]


async def test_chunked_bodies_keep_the_connection_alive() -> None:
    async with running(echo) as server:
        reader, writer = await connect(server)
        responses = Reader(reader)
        for word in (b"one", b"three"):
            writer.write(CHUNKED_HEAD + b"%x\r\n%s\r\n0\r\n\r\n" % (len(word), word))
            answer = await responses.next()
            assert (answer.status, answer.body) == (200, b"POST /c  " + word)
        writer.close()
