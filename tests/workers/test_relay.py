"""A worker's side of the relay: its API's announced changes go up the control line, the other
workers' are applied with the announcements' appliers; nothing is relayed when Redis carries the
changes or the build announces none."""

from __future__ import annotations

import asyncio
import socket
from types import SimpleNamespace
from typing import Any

from catalyst_mcp.workers.control import ControlLine
from catalyst_mcp.workers.relay import Relay, announcements
from tests.live import poll


def gateway(redis_url: str | None = None) -> Any:
    settings = SimpleNamespace(redis=SimpleNamespace(url=redis_url))
    return SimpleNamespace(settings=settings, api=SimpleNamespace(change_listeners=[]))


class Announce:
    """What catalyst_mcp.cluster.announce provides: the announced actions and their appliers."""

    ANNOUNCED = frozenset({"admin.roles.put"})

    def __init__(self) -> None:
        self.applied: list[tuple[dict[str, str], str]] = []

    def appliers_for(self, gateway: Any) -> dict[str, Any]:
        async def roles(params: dict[str, str], by: str) -> None:
            self.applied.append((params, by))

        async def broken(params: dict[str, str], by: str) -> None:
            raise RuntimeError("no database")

        return {"admin.roles.put": roles, "admin.rules.put": broken}


async def pair() -> tuple[ControlLine, ControlLine]:
    ours, theirs = socket.socketpair()
    return await ControlLine.open(ours), await ControlLine.open(theirs)


async def test_a_change_goes_up_the_line_and_another_is_applied() -> None:
    worker, supervisor = await pair()
    module, gw = Announce(), gateway()
    relay = Relay(worker)
    assert relay.attach(gw, module)
    assert gw.api.change_listeners == [relay.changed]
    await relay.changed("admin.roles.put", {"name": "ops"}, SimpleNamespace(subject="ada"))
    await relay.changed("admin.audit.read", {}, SimpleNamespace(subject="ada"))  # not announced
    message = await supervisor.receive()
    assert message == {"event": "config", "a": "admin.roles.put", "p": {"name": "ops"}, "by": "ada"}
    relay.received({"event": "config", "a": "admin.roles.put", "p": {"name": "x"}, "by": "bob"})
    relay.received({"event": "config", "a": "admin.rules.put", "p": {}, "by": "bob"})  # fails
    relay.received({"event": "config", "a": "admin.unknown", "p": {}, "by": "bob"})
    await poll(lambda: relay.applied == 1, what="applied")
    await asyncio.sleep(0.05)
    assert module.applied == [({"name": "x"}, "bob")] and relay.applied == 1
    worker.close()
    supervisor.close()


async def test_nothing_is_relayed_when_redis_carries_the_changes() -> None:
    worker, supervisor = await pair()
    gw = gateway("redis://127.0.0.1:6379/0")
    assert not Relay(worker).attach(gw, Announce())
    assert gw.api.change_listeners == []
    worker.close()
    supervisor.close()


async def test_nothing_is_relayed_by_a_build_that_announces_nothing() -> None:
    worker, supervisor = await pair()
    gw = gateway()
    if announcements() is None:
        assert not Relay(worker).attach(gw)
    no_hook = SimpleNamespace(settings=gw.settings, api=SimpleNamespace())
    assert not Relay(worker).attach(no_hook, Announce())
    worker.close()
    supervisor.close()
