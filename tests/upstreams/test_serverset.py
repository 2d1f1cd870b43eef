"""The configured servers kept in step with new settings: added, removed and changed servers
started, stopped and restarted in one registry step; unchanged ones left alone; calls in flight
finished before a server is stopped."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from catalyst_mcp.context import CallContext
from catalyst_mcp.providers import ListKind
from catalyst_mcp.registry import Registry
from catalyst_mcp.security.injection import SecretInjector
from catalyst_mcp.settings import Settings
from catalyst_mcp.upstreams import serverset
from catalyst_mcp.upstreams.pool import ProcessPool
from catalyst_mcp.upstreams.serverset import ServerSet
from catalyst_mcp.upstreams.upstream import Upstream
from tests.fakes import FakeProvider
from tests.fakeservers import FakeServer, FakeServers, entry
from tests.live import poll


def settings(**servers: dict[str, Any]) -> Settings:
    return Settings.model_validate({"servers": servers})


class Fixture:
    def __init__(self, *others: FakeProvider) -> None:
        self.registry = Registry()
        for provider in others:
            self.registry.add(provider)
        self.changes: list[set[ListKind]] = []
        self.registry.change_listeners.append(self.changes.append)
        self.build = FakeServers()
        self.servers = ServerSet(self.registry, 60.0, SecretInjector(), build=self.build)

    def tools(self) -> list[str]:
        return [item["name"] for item in self.registry.items("tools")]

    def served(self, name: str) -> FakeServer:
        return cast(FakeServer, self.servers.providers[name])

    async def call(self, tool: str, **arguments: Any) -> dict[str, Any]:
        provider, own = self.registry.resolve("tools", tool)
        ctx = CallContext(era="modern", protocol_version="2026-07-28", method="tools/call")
        return await provider.call("tools/call", {"name": own, "arguments": arguments}, ctx)


@pytest.fixture
async def fx() -> Any:
    fixture = Fixture()
    fixture.servers.load(
        settings(a=entry("echo", "wait"), b=entry("one"), off=entry("x", enabled=False))
    )
    fixture.changes.clear()
    yield fixture
    await fixture.servers.close()
    await fixture.registry.stop()


def test_load_serves_the_active_entries(fx: Fixture) -> None:
    assert fx.build.names() == ["a", "b"]
    assert fx.tools() == ["a__echo", "a__wait", "b__one"]


def test_the_gateway_builds_upstreams_and_per_user_upstreams() -> None:
    servers = ServerSet(Registry(), 12.0, SecretInjector())
    config = settings(plain=entry(), mine=entry(env={"TOKEN": "${secret:TOKEN}"}))
    plain = servers.build_upstream("plain", "p", config.servers["plain"])
    mine = servers.build_upstream("mine", "mine", config.servers["mine"])
    assert isinstance(plain, Upstream) and plain.namespace == "p" and plain.call_timeout == 12.0
    assert isinstance(mine, ProcessPool)


async def test_unchanged_entries_are_left_alone(fx: Fixture) -> None:
    a, b = fx.served("a"), fx.served("b")
    # the same entries, written differently (another order, defaults spelled out)
    same = settings(b=entry("one", era="auto"), a=entry("echo", "wait", enabled=True))
    assert await fx.servers.apply(same) is False
    assert fx.served("a") is a and fx.served("b") is b
    assert not a.stopped and not b.stopped and fx.build.names() == ["a", "b"]
    assert fx.changes == []


async def test_an_added_server_is_started_and_listed(fx: Fixture) -> None:
    a, b = fx.served("a"), fx.served("b")
    assert await fx.servers.apply(settings(a=entry("echo", "wait"), b=entry("one"), c=entry("two")))
    assert fx.build.names() == ["a", "b", "c"]  # only the new one built
    c = fx.served("c")
    assert c.started and fx.tools() == ["a__echo", "a__wait", "b__one", "c__two"]
    assert fx.served("a") is a and fx.served("b") is b
    assert fx.changes == [{"tools"}]


async def test_a_removed_server_stops_serving_and_is_stopped(fx: Fixture) -> None:
    b = fx.served("b")
    assert await fx.servers.apply(settings(a=entry("echo", "wait")))
    assert fx.tools() == ["a__echo", "a__wait"] and "b" not in fx.servers.providers
    await poll(lambda: b.stopped, what="the removed server stopped")
    assert fx.changes == [{"tools"}]


async def test_a_disabled_server_counts_as_removed(fx: Fixture) -> None:
    b = fx.served("b")
    assert await fx.servers.apply(settings(a=entry("echo", "wait"), b=entry("one", disabled=True)))
    assert "b" not in fx.servers.providers
    await poll(lambda: b.stopped, what="the disabled server stopped")


async def test_a_changed_server_is_restarted(fx: Fixture) -> None:
    b = fx.served("b")
    assert await fx.servers.apply(settings(a=entry("echo", "wait"), b=entry("one", "two")))
    new = fx.served("b")
    assert new is not b and new.started and new.config.args == ["one", "two"]
    assert fx.tools() == ["a__echo", "a__wait", "b__one", "b__two"]
    await poll(lambda: b.stopped, what="the old server stopped")
    assert not new.stopped
    assert fx.changes == [{"tools"}]  # one notification for the whole edit


async def test_a_restart_that_lists_the_same_tells_no_client(fx: Fixture) -> None:
    b = fx.served("b")
    assert await fx.servers.apply(
        settings(a=entry("echo", "wait"), b=entry("one", env={"MODE": "fast"}))
    )
    assert fx.served("b") is not b
    await poll(lambda: b.stopped, what="the old server stopped")
    assert fx.changes == []  # the lists did not change


async def test_a_namespace_change_renames_the_tools(fx: Fixture) -> None:
    assert await fx.servers.apply(
        settings(a=entry("echo", "wait"), b=entry("one", namespace="bee"))
    )
    assert fx.tools() == ["a__echo", "a__wait", "bee__one"]


async def test_two_servers_may_swap_namespaces_in_one_edit(fx: Fixture) -> None:
    swapped = settings(a=entry("echo", "wait", namespace="b"), b=entry("one", namespace="a"))
    assert await fx.servers.apply(swapped)
    assert sorted(fx.tools()) == ["a__one", "b__echo", "b__wait"]


async def test_a_call_in_flight_survives_an_edit_of_another_server(fx: Fixture) -> None:
    a = fx.served("a")
    call = asyncio.create_task(fx.call("a__wait"))
    await a.entered.wait()
    assert await fx.servers.apply(settings(a=entry("echo", "wait"), b=entry("changed")))
    assert fx.served("a") is a
    a.release.set()
    assert (await call)["content"][0]["text"] == "released"
    assert not a.stopped and (await fx.call("a__echo", text="hi"))["content"][0]["text"] == "hi"


async def test_calls_in_flight_finish_before_a_replaced_server_is_stopped(fx: Fixture) -> None:
    a = fx.served("a")
    call = asyncio.create_task(fx.call("a__wait"))
    await a.entered.wait()
    assert await fx.servers.apply(settings(a=entry("echo", "wait", "more"), b=entry("one")))
    assert fx.served("a") is not a  # new calls go to the new server at once ...
    assert (await fx.call("a__echo", text="new"))["content"][0]["text"] == "new"
    await asyncio.sleep(0.1)
    assert not a.stopped  # ... while the old one finishes its call
    a.release.set()
    assert (await call)["content"][0]["text"] == "released"
    await poll(lambda: a.stopped, what="the old server stopped once idle")


async def test_a_call_longer_than_its_time_limit_does_not_keep_a_server_alive(
    fx: Fixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(serverset, "RETIRE_MARGIN_SECONDS", 0.0)
    assert await fx.servers.apply(
        settings(a=entry("echo", "wait", timeout_seconds=0.2), b=entry("one"))
    )
    a = fx.served("a")
    call = asyncio.create_task(fx.call("a__wait"))
    await a.entered.wait()
    assert await fx.servers.apply(settings(b=entry("one")))
    await poll(lambda: a.stopped, timeout=5, what="the removed server stopped after 0.2 s")
    assert a.drained and not call.done()
    call.cancel()


async def test_the_old_server_serves_until_the_new_one_has_started(fx: Fixture) -> None:
    b = fx.served("b")
    fx.build.hold = True
    applying = asyncio.create_task(
        fx.servers.apply(settings(a=entry("echo", "wait"), b=entry("two")))
    )
    await poll(lambda: len(fx.build.built) == 3, what="the new server built")
    new = fx.build.built[-1]
    await poll(lambda: new.started, what="the new server started")
    assert fx.tools() == ["a__echo", "a__wait", "b__one"] and fx.served("b") is b
    new.settled.set()
    assert await applying
    assert fx.tools() == ["a__echo", "a__wait", "b__two"] and fx.served("b") is new


async def test_a_name_or_namespace_of_another_provider_is_a_conflict() -> None:
    fixture = Fixture(FakeProvider("pack:people", "people"))
    fixture.servers.load(settings(a=entry("echo")))
    before = fixture.tools()
    try:
        wanted = settings(a=entry("echo"), people=entry("x"), b=entry("y", namespace="people"))
        assert fixture.servers.conflicts(wanted) == {
            "b": "namespace 'people' is already used by pack:people; give the server another "
            "`namespace:`",
            "people": "namespace 'people' is already used by pack:people; give the server "
            "another `namespace:`",
        }
        with pytest.raises(ValueError, match="namespace 'people' is already used"):
            await fixture.servers.apply(wanted)
        assert fixture.build.names() == ["a"]  # nothing started, nothing changed
        assert fixture.tools() == before
    finally:
        await fixture.servers.close()
        await fixture.registry.stop()


async def test_close_stops_servers_still_starting(fx: Fixture) -> None:
    fx.build.hold = True
    applying = asyncio.create_task(
        fx.servers.apply(settings(a=entry("echo", "wait"), c=entry("x")))
    )
    await poll(lambda: len(fx.build.built) == 3 and fx.build.built[-1].started, what="c started")
    c = fx.build.built[-1]
    await fx.servers.close()
    assert c.stopped
    c.settled.set()
    assert await applying is False
    assert "c" not in fx.servers.providers and "b" in fx.servers.providers
