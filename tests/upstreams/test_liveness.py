"""Liveness: a call that times out on a hung server does not poison it (the server is probed,
restarted, and the next call runs), and upstreams are probed between calls.

In-process tests use a scripted transport; the others run real servers: the lean stdlib fixture
(``hang_server.py``, starts in ~50 ms) where a bound on time matters, the official SDK where it
is the server under test.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from catalyst_mcp.context import CallContext, Identity
from catalyst_mcp.errors import UpstreamTimeout, UpstreamUnavailable
from catalyst_mcp.protocol.jsonrpc import Message
from catalyst_mcp.security.injection import SecretInjector
from catalyst_mcp.settings import ServerConfig
from catalyst_mcp.upstreams import upstream as upstream_module
from catalyst_mcp.upstreams.base import MessageHandler, UpstreamTransport
from catalyst_mcp.upstreams.http import HttpStatusError
from catalyst_mcp.upstreams.liveness import probe
from catalyst_mcp.upstreams.pool import ProcessPool
from catalyst_mcp.upstreams.session import UpstreamSession
from catalyst_mcp.upstreams.upstream import Upstream
from tests.conftest import FIXTURES, PYTHON, UPSTREAM, Process, free_port, wait_for_port
from tests.live import poll

LEAN = str(FIXTURES / "hang_server.py")
SDK = str(FIXTURES / "hang_sdk_server.py")


def ctx(subject: str = "anonymous") -> CallContext:
    return CallContext(
        era="modern",
        protocol_version="2026-07-28",
        method="tools/call",
        identity=Identity(subject=subject),
    )


def text_of(result: dict[str, Any]) -> str:
    content: str = result["content"][0]["text"]
    return content


async def call(up: Upstream | ProcessPool, tool: str, **arguments: Any) -> dict[str, Any]:
    return await up.call("tools/call", {"name": tool, "arguments": arguments}, ctx())


# ---- in process: the probe and the periodic watch ---------------------------------------------


class Scripted(UpstreamTransport):
    """A server that connects and lists one tool; ``answer`` decides how it meets probes, and
    the tool ``wait`` answers once ``release`` is set."""

    def __init__(self, era: str = "legacy") -> None:
        super().__init__("up")
        self.era = era
        self.methods: list[str] = []
        self.messages: list[Message] = []
        self.connected = False
        self.answer: str | BaseException = "ok"
        self.release = asyncio.Event()

    async def open(self) -> None:
        return None

    async def request(
        self,
        message: Message,
        on_related: MessageHandler | None = None,
        headers: dict[str, str] | None = None,
    ) -> Message:
        method = message["method"]
        self.methods.append(method)
        self.messages.append(message)

        def ok(result: dict[str, Any]) -> Message:
            return {"jsonrpc": "2.0", "id": message["id"], "result": result}

        if method == "server/discover" and not self.connected:
            self.connected = self.era == "modern"
            if self.era == "legacy":
                return {"jsonrpc": "2.0", "id": message["id"], "error": {"code": -32601}}
            return ok({"supportedVersions": ["2026-07-28"], "capabilities": {"tools": {}}})
        if method == "initialize":
            self.connected = True
            caps = {"tools": {}}
            return ok({"protocolVersion": "2025-11-25", "capabilities": caps, "serverInfo": {}})
        if method == "tools/list":
            return ok({"tools": [{"name": "wait"}]})
        if method == "tools/call":
            await self.release.wait()
            return ok({"content": []})
        # a probe: ping (legacy) or server/discover (modern)
        if isinstance(self.answer, BaseException):
            raise self.answer
        if self.answer == "hang":
            await asyncio.Event().wait()
        if self.answer == "method-not-found":
            error = {"code": -32601, "message": "Method not found"}
            return {"jsonrpc": "2.0", "id": message["id"], "error": error}
        return ok({})

    async def send(self, message: Message) -> None:
        return None

    async def close(self) -> None:
        return None


async def connected(era: str = "legacy") -> tuple[UpstreamSession, Scripted]:
    transport = Scripted(era)
    session = UpstreamSession(transport, era="auto")
    await session.connect()
    assert session.era == era
    return session, transport


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        ("ok", None),
        ("method-not-found", None),  # it answered: alive
        (HttpStatusError("up", 404, b"not here"), None),  # an HTTP refusal is an answer too
        (HttpStatusError("up", 503, b""), "a ping failed: up answered HTTP 503"),
        (UpstreamUnavailable("up", "up: connection refused"), "a ping failed: up: connection"),
        ("hang", "a ping got no answer within 0.1s"),
    ],
    ids=["ok", "-32601", "http-404", "http-503", "refused", "silent"],
)
async def test_probe_counts_any_answer_as_alive(
    answer: str | BaseException, verdict: str | None
) -> None:
    session, transport = await connected()
    transport.answer = answer
    found = await probe(session, 0.1)
    if verdict is None:
        assert found is None
    else:
        assert found is not None and found.startswith(verdict)
    assert transport.methods[-1] == "ping"


async def test_modern_upstreams_are_probed_with_server_discover() -> None:
    """2026-07-28 removed ping; server/discover is what every modern server must serve."""
    session, transport = await connected("modern")
    transport.answer = "hang"
    assert await probe(session, 0.1) == "a server/discover got no answer within 0.1s"
    probe_message = transport.messages[-1]
    assert probe_message["method"] == "server/discover"
    assert "io.modelcontextprotocol/protocolVersion" in probe_message["params"]["_meta"]
    assert "ping" not in transport.methods


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> list[Scripted]:
    """Every transport the upstream builds, in order (a fresh one per connection)."""
    built: list[Scripted] = []

    def build(name: str, config: ServerConfig) -> Scripted:
        built.append(Scripted())
        return built[-1]

    monkeypatch.setattr(upstream_module, "build_transport", build)
    return built


async def started(**config: Any) -> Upstream:
    up = Upstream("up", "up", ServerConfig(url="http://unused.invalid/mcp", **config), 5.0)
    await up.start()
    await up.wait_settled(5)
    assert up.status == "ready"
    return up


async def test_the_periodic_probe_waits_while_a_call_is_in_flight(scripted: list[Scripted]) -> None:
    up = await started(ping_interval_seconds=0.05, ping_timeout_seconds=1)
    try:
        transport = scripted[0]
        await poll(lambda: "ping" in transport.methods, what="a first periodic ping")
        running = asyncio.create_task(call(up, "wait"))
        await poll(lambda: "tools/call" in transport.methods, what="the call sent")
        pings = transport.methods.count("ping")
        await asyncio.sleep(0.3)  # six intervals
        assert transport.methods.count("ping") == pings, "pinged while a call was in flight"
        transport.release.set()
        await running
        await poll(lambda: transport.methods.count("ping") > pings, what="pings again")
    finally:
        await up.stop()


async def test_a_failed_periodic_probe_fails_and_reconnects_the_upstream(
    scripted: list[Scripted],
) -> None:
    up = await started(ping_interval_seconds=0.05, ping_timeout_seconds=0.1, breaker_failures=1)
    try:
        scripted[0].answer = "hang"
        await poll(lambda: len(scripted) == 2 and up.status == "ready", what="reconnected")
        health = up.health()
        assert health["restarts"] == 1
        assert "error" not in health
        assert health["lastFailure"]["error"] == (
            "up stopped answering (a ping got no answer within 0.1s); it is being reconnected"
        )
        assert health["circuit"] == "closed"  # opened by the failed probe, closed by the reconnect
    finally:
        await up.stop()


async def test_no_periodic_probe_when_the_interval_is_zero(scripted: list[Scripted]) -> None:
    up = await started(ping_interval_seconds=0, ping_timeout_seconds=0.1)
    try:
        await asyncio.sleep(0.3)
        assert "ping" not in scripted[0].methods
    finally:
        await up.stop()


# ---- real stdio servers ---------------------------------------------------------------------


@contextlib.asynccontextmanager
async def running(config: dict[str, Any]) -> AsyncIterator[Upstream]:
    up = Upstream("io", "io", ServerConfig.model_validate(config), 60.0)
    await up.start()
    await up.wait_settled(30)
    assert up.status == "ready", up.health()
    try:
        yield up
    finally:
        await up.stop()


def lean(*extra: str, **config: Any) -> dict[str, Any]:
    return {"command": PYTHON, "args": [LEAN, *extra], "ping_interval_seconds": 0, **config}


def pid_of(up: Upstream) -> int:
    info = up.health()
    assert up.session is not None, info
    pid: int = up.session.transport.describe()["pid"]
    return pid


def gone(pid: int) -> bool:
    """Whether ``pid`` has exited (and been reaped by its parent, the gateway)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.subprocess
@pytest.mark.parametrize("modern", [False, True], ids=["legacy", "modern"])
async def test_a_hung_stdio_server_is_restarted_and_the_next_call_runs(modern: bool) -> None:
    config = lean(*(["--modern"] if modern else []), timeout_seconds=1, ping_timeout_seconds=0.3)
    async with running(config) as up:
        assert up.session is not None and up.session.era == ("modern" if modern else "legacy")
        first = pid_of(up)
        with pytest.raises(UpstreamTimeout, match=r"^io did not answer tools/call within 1s$"):
            await call(up, "hang")
        began = time.monotonic()
        echoed = await call(up, "echo", text="still here")
        took = time.monotonic() - began
        assert text_of(echoed) == "still here"
        assert took < 1.0, f"the next call took {took:.2f}s"
        assert pid_of(up) != first
        await poll(lambda: gone(first), what="the hung process killed")
        health = up.health()
        assert health["status"] == "ready"
        assert health["restarts"] == 1
        assert "error" not in health
        method = "server/discover" if modern else "ping"
        assert health["lastFailure"]["error"] == (
            f"io stopped answering (a call timed out and a {method} got no answer within "
            "0.3s); it was restarted"
        )


@pytest.mark.subprocess
async def test_calls_in_flight_on_a_hung_server_fail_with_a_clear_error() -> None:
    async with running(lean(timeout_seconds=2, ping_timeout_seconds=0.2)) as up:
        hung = asyncio.create_task(call(up, "hang"))
        await asyncio.sleep(1.0)
        behind = asyncio.create_task(call(up, "slow", seconds=30))  # sent, never read
        with pytest.raises(UpstreamTimeout, match="did not answer tools/call within 2s"):
            await hung
        arriving = asyncio.create_task(call(up, "echo", text="after"))  # while suspect
        with pytest.raises(UpstreamUnavailable) as lost:
            await behind
        assert lost.value.message == (
            "io stopped answering (a call timed out and a ping got no answer within 0.2s); "
            "it was restarted, and this call was lost with it: retry it"
        )
        assert "Traceback" not in lost.value.message
        assert text_of(await arriving) == "after"
        assert up.restarts == 1


@pytest.mark.subprocess
async def test_a_call_waits_for_the_verdict_at_most_its_own_time_limit() -> None:
    async with running(lean(timeout_seconds=0.5, ping_timeout_seconds=1.5)) as up:
        with pytest.raises(UpstreamTimeout):
            await call(up, "hang")
        with pytest.raises(UpstreamTimeout) as waited:
            await call(up, "echo", text="too early")
        assert waited.value.message == (
            "io could not take tools/call within 0.5s while it recovers (a call timed out, and "
            "it is being checked); retry shortly"
        )
        await poll(lambda: up.restarts == 1 and up.status == "ready", what="restarted")
        assert text_of(await call(up, "echo", text="later")) == "later"


@pytest.mark.subprocess
async def test_a_slow_server_that_answers_the_probe_is_not_restarted() -> None:
    async with running(lean(timeout_seconds=0.5, ping_timeout_seconds=2)) as up:
        first = pid_of(up)
        with pytest.raises(UpstreamTimeout):
            await call(up, "slow", seconds=5)
        assert text_of(await call(up, "echo", text="x")) == "x"
        assert pid_of(up) == first
        health = up.health()
        assert health["restarts"] == 0 and "lastFailure" not in health
        # the timed-out call was cancelled upstream (stdio: notifications/cancelled)
        seen = json.loads(text_of(await call(up, "seen")))
        cancels = [n["params"] for n in seen if n["method"] == "notifications/cancelled"]
        assert len(cancels) == 1 and cancels[0]["reason"] == "timed out"
        assert isinstance(cancels[0]["requestId"], int)


@pytest.mark.subprocess
async def test_a_stopped_stdio_process_is_found_and_restarted_without_a_call() -> None:
    config = lean(ping_interval_seconds=0.3, ping_timeout_seconds=0.3)
    async with running(config) as up:
        first = pid_of(up)
        os.kill(first, signal.SIGSTOP)
        try:
            began = time.monotonic()
            await poll(lambda: up.restarts >= 1, timeout=10, what="a restart")
            found = time.monotonic() - began
            assert found < 0.3 + 0.3 + 2.0, f"found after {found:.2f}s"
            await poll(lambda: up.status == "ready", timeout=10, what="ready again")
            assert pid_of(up) != first
            assert up.health()["lastFailure"]["error"] == (
                "io stopped answering (a ping got no answer within 0.3s); it was restarted"
            )
            await poll(lambda: gone(first), what="the stopped process killed")
            assert text_of(await call(up, "echo", text="back")) == "back"
        finally:
            if not gone(first):  # clean up after a failure, by PID
                os.kill(first, signal.SIGKILL)


@pytest.mark.subprocess
async def test_an_sdk_server_blocked_by_a_tool_is_restarted() -> None:
    """The official SDK server: a tool that blocks its event loop silences it completely."""
    config = {
        "command": PYTHON,
        "args": [SDK, "stdio"],
        "timeout_seconds": 3,  # the SDK server takes 0.6-1 s to start again
        "ping_timeout_seconds": 0.3,
        "ping_interval_seconds": 0,
    }
    async with running(config) as up:
        first = pid_of(up)
        with pytest.raises(UpstreamTimeout, match="did not answer tools/call within 3s"):
            await call(up, "block")
        echoed = await call(up, "echo", text="alive")
        assert text_of(echoed) == "alive"
        assert pid_of(up) != first
        assert up.restarts == 1


class OwnSecrets(SecretInjector):
    """Alice has a value of her own; everyone else gets none."""

    async def resolve(self, owner: str, scope: str, name: str) -> str | None:
        return "alice-token" if owner == "alice" else None


@pytest.mark.subprocess
async def test_a_users_own_instance_is_restarted_the_same_way() -> None:
    config = ServerConfig.model_validate(
        lean(env={"TOKEN": "${secret:TOKEN}"}, timeout_seconds=1, ping_timeout_seconds=0.3)
    )
    provider = ProcessPool("io", "io", config, 60.0, OwnSecrets())
    await provider.start()
    try:
        await provider.wait_settled(30)
        alice = ctx("alice")
        hang = {"name": "hang", "arguments": {}}
        with pytest.raises(UpstreamTimeout, match="did not answer tools/call within 1s"):
            await provider.call("tools/call", hang, alice)
        instance = provider.instances["alice"].upstream
        began = time.monotonic()
        echo = {"name": "echo", "arguments": {"text": "mine"}}
        assert text_of(await provider.call("tools/call", echo, alice)) == "mine"
        assert time.monotonic() - began < 1.0
        assert provider.instances["alice"].upstream is instance  # the same instance, restarted
        assert instance.restarts == 1
        assert provider.shared is not None and provider.shared.restarts == 0
        assert provider.health()["processRestarts"] == 1
    finally:
        await provider.stop()


# ---- a real HTTP server -----------------------------------------------------------------------


@pytest.mark.network
@pytest.mark.subprocess
@pytest.mark.parametrize("era", ["legacy", "modern"])
async def test_an_http_upstream_that_stops_answering_is_reported_failed(era: str) -> None:
    port = free_port()
    server = Process([PYTHON, str(UPSTREAM), "http", str(port)])
    config = {
        "url": f"http://127.0.0.1:{port}/mcp",
        "era": era,
        "ping_interval_seconds": 0.3,
        "ping_timeout_seconds": 0.5,
        "connect_timeout_seconds": 2,
    }
    try:
        wait_for_port(port)
        async with running(config) as up:
            os.kill(server.pid, signal.SIGSTOP)
            try:
                began = time.monotonic()
                await poll(lambda: up.status == "failed", timeout=10, what="reported failed")
                found = time.monotonic() - began
                assert found < 0.3 + 0.5 + 2.0, f"found after {found:.2f}s"
                method = "server/discover" if era == "modern" else "ping"
                assert up.health()["error"] == (
                    f"io stopped answering (a {method} got no answer within 0.5s); "
                    "it is being reconnected"
                )
                assert up.restarts >= 1
            finally:
                os.kill(server.pid, signal.SIGCONT)
            await poll(lambda: up.status == "ready", timeout=20, what="ready again")
            assert text_of(await call(up, "echo", text="back")) == "back"
    finally:
        server.stop()


@pytest.mark.network
@pytest.mark.subprocess
async def test_a_call_to_a_stopped_legacy_http_server_ends_at_its_time_limit() -> None:
    """The cancellation of a timed-out call is a POST the stopped server does not take either:
    the caller must not wait for it."""
    port = free_port()
    server = Process([PYTHON, str(UPSTREAM), "http", str(port)])
    config = {
        "url": f"http://127.0.0.1:{port}/mcp",
        "era": "legacy",
        "timeout_seconds": 0.5,
        "ping_interval_seconds": 0,
        "ping_timeout_seconds": 0.5,
    }
    try:
        wait_for_port(port)
        async with running(config) as up:
            os.kill(server.pid, signal.SIGSTOP)
            try:
                began = time.monotonic()
                async with asyncio.timeout(5):
                    with pytest.raises(UpstreamTimeout, match=r"within 0\.5s"):
                        await call(up, "echo", text="x")
                assert time.monotonic() - began < 2.0
            finally:
                os.kill(server.pid, signal.SIGCONT)
    finally:
        server.stop()
