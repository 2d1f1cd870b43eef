"""``catalyst serve --stdio``: one client over JSON lines, both eras. In-process: the
connection reads from an asyncio StreamReader and writes to a fake writer."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from catalyst_mcp.app import Gateway
from catalyst_mcp.protocol.versions import SERVER_INFO_KEY, SUBSCRIPTION_ID_KEY
from catalyst_mcp.settings import Settings
from catalyst_mcp.transports.stdio import StdioConnection
from tests.fakes import FakeProvider, initialize_request, legacy_request, modern_request, tool


class LineWriter:
    """Stands in for the StreamWriter on stdout: every written line becomes a message."""

    def __init__(self) -> None:
        self.messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._buffer = b""

    def write(self, data: bytes) -> None:
        self._buffer += data
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            self.messages.put_nowait(orjson.loads(line))

    async def drain(self) -> None:
        return None

    async def next(self, timeout: float = 5.0) -> dict[str, Any]:
        return await asyncio.wait_for(self.messages.get(), timeout)

    def nothing_more(self) -> bool:
        return self.messages.empty()


class Pipe:
    def __init__(self, provider: FakeProvider) -> None:
        self.gateway = Gateway(Settings(), [provider])
        self.reader = asyncio.StreamReader()
        self.out = LineWriter()
        self.connection = StdioConnection(self.gateway, self.out)  # type: ignore[arg-type]
        self.task = asyncio.create_task(self.connection.run(self.reader))

    def send(self, message: Any) -> None:
        self.reader.feed_data(
            message if isinstance(message, bytes) else orjson.dumps(message) + b"\n"
        )

    async def ask(self, message: dict[str, Any]) -> dict[str, Any]:
        self.send(message)
        return await self.out.next()


@pytest.fixture
async def pipe(fake_provider: FakeProvider) -> AsyncIterator[Pipe]:
    pipe = Pipe(fake_provider)
    try:
        yield pipe
    finally:
        pipe.reader.feed_eof()
        await asyncio.wait_for(pipe.task, 5)


@pytest.mark.parametrize(
    ("line", "code"),
    [(b"{oops\n", -32700), (b"[]\n", -32600), (b'{"jsonrpc": "1.0"}\n', -32600), (b"7\n", -32600)],
)
async def test_bad_lines_get_errors_and_the_pipe_survives(
    pipe: Pipe, line: bytes, code: int
) -> None:
    pipe.send(line)
    answer = await pipe.out.next()
    assert answer["id"] is None
    assert answer["error"]["code"] == code
    assert (await pipe.ask(initialize_request()))["result"]["protocolVersion"] == "2025-11-25"


async def test_blank_lines_are_ignored(pipe: Pipe) -> None:
    pipe.send(b"\n   \n")
    message = modern_request("tools/list")
    assert (await pipe.ask(message))["id"] == message["id"]


async def test_legacy_request_before_initialize_is_refused(pipe: Pipe) -> None:
    answer = await pipe.ask(legacy_request("tools/list"))
    assert answer["error"]["code"] == -32600
    pipe.send({"jsonrpc": "2.0", "method": "notifications/initialized"})  # no answer to that
    assert (await pipe.ask(legacy_request("x", request_id="after")))["id"] == "after"


async def test_legacy_session_over_stdio(pipe: Pipe) -> None:
    init = await pipe.ask(initialize_request("2025-06-18"))
    assert init["result"]["protocolVersion"] == "2025-06-18"
    pipe.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    listed = await pipe.ask(legacy_request("tools/list"))
    assert "resultType" not in listed["result"]
    assert listed["result"]["tools"][0]["name"] == "fake__echo"
    assert (await pipe.ask(legacy_request("ping", request_id="p")))["result"] == {}
    bad_level = await pipe.ask(legacy_request("logging/setLevel", {"level": "loud"}))
    assert bad_level["error"]["code"] == -32602


async def test_modern_requests_over_stdio(pipe: Pipe) -> None:
    listed = await pipe.ask(modern_request("tools/list"))
    assert listed["result"]["resultType"] == "complete"
    assert listed["result"]["ttlMs"] == 0
    assert listed["result"]["_meta"][SERVER_INFO_KEY]["name"] == "catalyst"
    unsupported = await pipe.ask(modern_request("tools/list", version="2030-01-01"))
    assert unsupported["error"]["code"] == -32022
    assert unsupported["error"]["data"]["requested"] == "2030-01-01"
    unknown = await pipe.ask(modern_request("ping"))
    assert unknown["error"]["code"] == -32601


async def test_both_eras_share_one_process(pipe: Pipe) -> None:
    await pipe.ask(initialize_request())
    modern = await pipe.ask(
        modern_request("tools/call", {"name": "fake__echo", "arguments": {"text": "m"}})
    )
    legacy = await pipe.ask(
        legacy_request("tools/call", {"name": "fake__echo", "arguments": {"text": "l"}})
    )
    assert modern["result"]["resultType"] == "complete"
    assert legacy["result"] == {"content": [{"type": "text", "text": "l"}]}


async def test_modern_cancel_over_stdio(pipe: Pipe, fake_provider: FakeProvider) -> None:
    call = modern_request("tools/call", {"name": "fake__wait", "arguments": {}})
    pipe.send(call)
    await asyncio.wait_for(fake_provider.entered.wait(), 5)
    pipe.send(
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": call["id"]}}
    )
    await asyncio.wait_for(fake_provider.cancelled.wait(), 5)
    ping = await pipe.ask(modern_request("tools/list"))
    assert "result" in ping  # the cancelled call sent nothing; the next answer is this one


async def test_legacy_cancel_over_stdio(pipe: Pipe, fake_provider: FakeProvider) -> None:
    await pipe.ask(initialize_request())
    call = legacy_request("tools/call", {"name": "fake__wait"})
    pipe.send(call)
    await asyncio.wait_for(fake_provider.entered.wait(), 5)
    pipe.send(
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": call["id"]}}
    )
    await asyncio.wait_for(fake_provider.cancelled.wait(), 5)
    assert (await pipe.ask(legacy_request("ping", request_id="next")))["id"] == "next"


async def test_listen_over_stdio_ends_with_a_result_when_cancelled(
    pipe: Pipe, fake_provider: FakeProvider
) -> None:
    listen = modern_request(
        "subscriptions/listen", {"notifications": {"toolsListChanged": True}}, request_id="L"
    )
    ack = await pipe.ask(listen)
    assert ack["method"] == "notifications/subscriptions/acknowledged"
    fake_provider.set_items("tools", [tool("new")])
    changed = await pipe.out.next()
    assert changed["method"] == "notifications/tools/list_changed"
    assert changed["params"]["_meta"][SUBSCRIPTION_ID_KEY] == "L"
    pipe.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "L"}})
    final = await pipe.out.next()
    assert final == {
        "jsonrpc": "2.0",
        "id": "L",
        "result": {"resultType": "complete", "_meta": {SUBSCRIPTION_ID_KEY: "L"}},
    }
    assert pipe.gateway.hub.listeners == set()


async def test_legacy_list_changes_reach_the_session(
    pipe: Pipe, fake_provider: FakeProvider
) -> None:
    await pipe.ask(initialize_request())
    fake_provider.set_items("tools", [])
    assert await pipe.out.next() == {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}


async def test_end_of_input_closes_the_session(fake_provider: FakeProvider) -> None:
    pipe = Pipe(fake_provider)
    await pipe.ask(initialize_request())
    assert len(pipe.gateway.sessions) == 1
    pipe.reader.feed_eof()
    await asyncio.wait_for(pipe.task, 5)
    assert len(pipe.gateway.sessions) == 0


async def test_second_initialize_is_refused(pipe: Pipe) -> None:
    await pipe.ask(initialize_request())
    again = await pipe.ask(initialize_request())
    assert again["error"]["code"] == -32600
    assert len(pipe.gateway.sessions) == 1


async def test_the_connection_is_the_session_of_its_modern_requests(
    fake_provider: FakeProvider,
) -> None:
    """Per-session servers key a stream's modern requests by its connection, and hear when it
    closes (and when its legacy session ends)."""
    pipe = Pipe(fake_provider)
    ended: list[str] = []
    pipe.gateway.dispatcher.session_listeners.append(ended.append)
    await pipe.ask(modern_request("tools/call", {"name": "fake__echo", "arguments": {}}))
    await pipe.ask(initialize_request())
    await pipe.ask(legacy_request("tools/call", {"name": "fake__echo", "arguments": {}}))
    modern_ctx, legacy_ctx = (c for _, _, c in fake_provider.calls)
    assert modern_ctx.connection_id == pipe.connection.connection_id
    assert modern_ctx.session_key == pipe.connection.connection_id
    assert legacy_ctx.session_id is not None and legacy_ctx.session_key == legacy_ctx.session_id
    pipe.reader.feed_eof()
    await asyncio.wait_for(pipe.task, 5)
    assert sorted(ended) == sorted([legacy_ctx.session_id, pipe.connection.connection_id])
