"""The stdio upstream transport against a real child process (tests/fixtures/line_server.py)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from catalyst_mcp.errors import UpstreamUnavailable
from catalyst_mcp.protocol.jsonrpc import Message
from catalyst_mcp.upstreams.stdio import StdioTransport
from tests.conftest import FIXTURES, PYTHON
from tests.live import poll

pytestmark = pytest.mark.subprocess

LINE_SERVER = str(FIXTURES / "line_server.py")


class Opened:
    def __init__(self, transport: StdioTransport) -> None:
        self.transport = transport
        self.messages: list[Message] = []
        self.closed: list[str] = []
        self._ids = 0

        async def on_message(message: Message) -> None:
            self.messages.append(message)

        transport.on_message = on_message
        transport.on_closed = self.closed.append

    async def ask(self, method: str, params: dict[str, Any] | None = None) -> Message:
        self._ids += 1
        message = {"jsonrpc": "2.0", "id": self._ids, "method": method, "params": params or {}}
        return await asyncio.wait_for(self.transport.request(message), 10)


@pytest.fixture
async def child() -> AsyncIterator[Opened]:
    transport = StdioTransport("kid", PYTHON, [LINE_SERVER], stop_timeout=1.0)
    await transport.open()
    try:
        yield Opened(transport)
    finally:
        await transport.close()


async def test_requests_get_their_answers(child: Opened) -> None:
    answers = await asyncio.gather(*(child.ask("echo", {"n": n}) for n in range(20)))
    assert [a["result"]["params"]["n"] for a in answers] == list(range(20))
    assert child.transport.describe()["pid"] == child.transport.process.pid  # type: ignore[union-attr]


async def test_junk_lines_are_ignored(child: Opened) -> None:
    answer = await child.ask("noise")
    assert answer["result"]["method"] == "noise"
    assert child.messages == []


async def test_notifications_go_to_on_message(child: Opened) -> None:
    await child.ask("notify", {"level": "info", "data": "hi"})
    assert child.messages == [
        {
            "jsonrpc": "2.0",
            "method": "notifications/message",
            "params": {"level": "info", "data": "hi"},
        }
    ]


async def test_stderr_is_kept(child: Opened) -> None:
    await child.ask("stderr")
    await poll(lambda: len(child.transport.stderr_tail) >= 2, what="stderr lines")
    assert list(child.transport.stderr_tail) == ["something on stderr", "second line"]


async def test_big_lines_pass(child: Opened) -> None:
    answer = await child.ask("big", {"size": 3_000_000})
    assert len(answer["result"]["text"]) == 3_000_000


async def test_exit_fails_pending_requests_with_the_exit_code(child: Opened) -> None:
    with pytest.raises(UpstreamUnavailable) as caught:
        await child.ask("exit")
    assert caught.value.message == "kid closed its output (exit code 7); it will be restarted"
    await poll(lambda: child.closed, what="on_closed")
    assert child.closed == ["kid closed its output (exit code 7)"]
    with pytest.raises(UpstreamUnavailable, match="kid is not running"):
        await child.ask("echo")


async def test_missing_command_is_unavailable() -> None:
    transport = StdioTransport("ghost", "/nonexistent/catalyst-test-binary", [])
    with pytest.raises(UpstreamUnavailable, match="cannot start ghost"):
        await transport.open()
    await transport.close()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie counts as dead
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


async def test_close_stops_a_stubborn_process_and_its_children() -> None:
    transport = StdioTransport("mule", PYTHON, [LINE_SERVER, "--stubborn"], stop_timeout=0.3)
    await transport.open()
    opened = Opened(transport)
    grandchild = (await opened.ask("child"))["result"]["pid"]
    process = transport.process
    assert process is not None
    assert alive(grandchild)
    await asyncio.wait_for(transport.close(), 10)
    assert process.returncode is not None
    await poll(lambda: not alive(grandchild), what="the grandchild was killed")
    assert opened.closed == []  # a requested close is not reported as a crash
    await transport.close()  # twice is fine
