"""An administrator's actions on the served servers, in-process: stop keeps a server stopped
(until start, or a reload that changes its entry), start brings it back, restart is make before
break and keeps a working server when the new one fails; the status report; the stand-in of a
stopped server."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import Missing, UpstreamUnavailable
from catalyst_mcp.registry import Registry
from catalyst_mcp.security.injection import SecretInjector
from catalyst_mcp.settings import ServerConfig, Settings
from catalyst_mcp.upstreams.lifecycle import StoppedServer, server_status
from catalyst_mcp.upstreams.serverset import RestartFailed, ServerSet
from tests.fakes import FakeProvider
from tests.fakeservers import FakeServer, FakeServers, entry
from tests.live import poll

CTX = CallContext(era="modern", protocol_version="2026-07-28", method="tools/call")


def settings(**servers: dict[str, Any]) -> Settings:
    return Settings.model_validate({"servers": servers})


class Fixture:
    def __init__(self) -> None:
        self.registry = Registry()
        self.build = FakeServers()
        self.servers = ServerSet(self.registry, 60.0, SecretInjector(), build=self.build)

    def tools(self) -> list[str]:
        return [item["name"] for item in self.registry.items("tools")]

    def served(self, name: str) -> FakeServer:
        return cast(FakeServer, self.servers.providers[name])

    async def call(self, tool: str) -> dict[str, Any]:
        provider, own = self.registry.resolve("tools", tool)
        return await provider.call("tools/call", {"name": own, "arguments": {}}, CTX)


@pytest.fixture
async def fx() -> Any:
    fixture = Fixture()
    fixture.servers.load(settings(a=entry("echo", "wait"), b=entry("one")))
    await fixture.registry.start(1.0)
    yield fixture
    await fixture.servers.close()
    await fixture.registry.stop()


async def test_stop_puts_a_stand_in_in_its_place_and_stops_it(fx: Fixture) -> None:
    a = fx.served("a")
    assert await fx.servers.stop_server("a", "root") is True
    assert a.stopped  # stop returns once the process is gone
    stand_in = fx.servers.providers["a"]
    assert isinstance(stand_in, StoppedServer)
    assert fx.tools() == ["b__one"]
    health = stand_in.health()
    assert health["status"] == "stopped" and health["stoppedBy"] == "root"
    with pytest.raises(UpstreamUnavailable, match=r"stopped by an administrator \(root") as caught:
        await stand_in.call("tools/call", {"name": "echo"}, CTX)
    assert "catalyst servers start a" in caught.value.message
    assert await fx.servers.stop_server("a", "root") is False  # already stopped


async def test_stop_lets_the_calls_in_flight_finish(fx: Fixture) -> None:
    a = fx.served("a")
    call = asyncio.create_task(fx.call("a__wait"))
    await a.entered.wait()
    stopping = asyncio.create_task(fx.servers.stop_server("a", "root"))
    await asyncio.sleep(0.1)
    assert not stopping.done() and not a.stopped and fx.tools() == ["b__one"]
    a.release.set()
    assert (await call)["content"][0]["text"] == "released"
    assert await stopping is True and a.stopped


async def test_start_brings_a_stopped_server_back(fx: Fixture) -> None:
    await fx.servers.stop_server("a", "root")
    assert await fx.servers.start_server("a", "root") is True
    new = fx.served("a")
    assert new.started and not new.stopped and fx.tools() == ["a__echo", "a__wait", "b__one"]
    assert await fx.servers.start_server("a", "root") is False  # running: left alone
    assert fx.served("a") is new


async def test_restart_is_make_before_break(fx: Fixture) -> None:
    a = fx.served("a")
    call = asyncio.create_task(fx.call("a__wait"))
    await a.entered.wait()
    await fx.servers.restart_server("a", "root")
    new = fx.served("a")
    assert new is not a and new.started
    assert (await fx.call("a__echo"))["content"][0]["text"] == ""  # the new one serves
    await asyncio.sleep(0.1)
    assert not a.stopped  # the old one finishes its call first
    a.release.set()
    assert (await call)["content"][0]["text"] == "released"
    await poll(lambda: a.stopped, what="the old server stopped once idle")
    assert fx.servers.status("a")["restarts"] == 1


async def test_a_failed_restart_keeps_the_working_server(fx: Fixture) -> None:
    a = fx.served("a")
    original = fx.build.__call__

    def failing(name: str, namespace: str, config: ServerConfig) -> FakeServer:
        server = original(name, namespace, config)
        server.status = "failed"
        return server

    fx.servers.build = failing
    with pytest.raises(RestartFailed, match="the running one keeps serving"):
        await fx.servers.restart_server("a", "root")
    assert fx.served("a") is a and not a.stopped
    assert fx.build.built[-1].stopped  # the new one is not left behind
    # a server that is down anyway is replaced, failing or not
    a.status = "failed"
    await fx.servers.restart_server("a", "root")
    assert fx.served("a") is fx.build.built[-1]


async def test_restart_starts_a_stopped_server(fx: Fixture) -> None:
    await fx.servers.stop_server("b", "root")
    await fx.servers.restart_server("b", "root")
    assert isinstance(fx.served("b"), FakeServer) and "b__one" in fx.tools()


async def test_a_reload_keeps_a_stopped_server_stopped_unless_its_entry_changes(
    fx: Fixture,
) -> None:
    await fx.servers.stop_server("a", "root")
    same = settings(a=entry("echo", "wait"), b=entry("one"), c=entry("two"))
    assert await fx.servers.apply(same)  # another server was added: a is unchanged
    assert isinstance(fx.servers.providers["a"], StoppedServer)
    changed = settings(a=entry("echo", "wait", "more"), b=entry("one"), c=entry("two"))
    assert await fx.servers.apply(changed)
    assert isinstance(fx.servers.providers["a"], FakeServer)
    assert "a__more" in fx.tools()


async def test_a_removed_stopped_server_is_forgotten(fx: Fixture) -> None:
    await fx.servers.stop_server("a", "root")
    assert await fx.servers.apply(settings(b=entry("one")))
    assert "a" not in fx.servers.providers and "a" not in fx.servers.logs
    with pytest.raises(Missing):
        fx.servers.status("a")


async def test_unknown_servers_are_missing(fx: Fixture) -> None:
    for action in (fx.servers.stop_server, fx.servers.start_server, fx.servers.restart_server):
        with pytest.raises(Missing, match="no server named 'ghost'"):
            await action("ghost", "root")


async def test_restarts_are_counted_across_providers(fx: Fixture) -> None:
    fx.served("a").restarts = 2  # type: ignore[attr-defined]
    original = FakeServer.health

    def with_restarts(self: FakeServer) -> dict[str, Any]:
        return {**original(self), "restarts": getattr(self, "restarts", 0)}

    FakeServer.health = with_restarts  # type: ignore[method-assign]
    try:
        await fx.servers.restart_server("a", "root")  # 2 crashes + this restart
        assert fx.servers.status("a")["restarts"] == 3
        await fx.servers.stop_server("a", "root")
        assert fx.servers.status("a")["restarts"] == 3
        await fx.servers.start_server("a", "root")
        assert fx.servers.status("a")["restarts"] == 3
    finally:
        FakeServer.health = original  # type: ignore[method-assign]


def test_the_status_of_a_ready_upstream() -> None:
    class Ready(FakeProvider):
        def health(self) -> dict[str, Any]:
            return {
                "name": "s",
                "status": "ready",
                "transport": "stdio",
                "era": "legacy",
                "circuit": "closed",
                "restarts": 1,
                "tools": 3,
                "pid": 4242,
                "upSince": "2020-01-01T00:00:00Z",
                "lastFailure": {"error": "s closed its output", "at": "2019-12-31T23:59:00Z"},
            }

    config = ServerConfig(command="x", sandbox={"enabled": True})  # type: ignore[arg-type]
    status = server_status("s", Ready("s"), config, carried_restarts=2)
    assert status["state"] == "ready" and status["pid"] == 4242
    assert status["restarts"] == 3 and status["tools"] == 3 and status["circuit"] == "closed"
    assert status["sharing"] == "shared" and status["sandboxed"] is True
    assert status["uptime_seconds"] is not None and status["uptime_seconds"] > 86400
    assert status["last_error"] == {"error": "s closed its output", "at": "2019-12-31T23:59:00Z"}


def test_a_failing_server_shows_no_uptime() -> None:
    class Failed(FakeProvider):
        def health(self) -> dict[str, Any]:
            return {"name": "s", "status": "failed", "upSince": "2020-01-01T00:00:00Z"}

    status = server_status("s", Failed("s"), ServerConfig(command="x"))
    assert status["up_since"] is None and status["uptime_seconds"] is None
