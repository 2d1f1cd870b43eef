"""Fan-out of change notifications to legacy sessions and modern listeners."""

from __future__ import annotations

from typing import Any

import pytest

from catalyst_mcp.protocol import hub as hub_module
from catalyst_mcp.protocol.hub import Listener, NotificationHub, accepted_filter
from catalyst_mcp.protocol.legacy import SessionStore
from catalyst_mcp.protocol.versions import SUBSCRIPTION_ID_KEY
from catalyst_mcp.registry import Registry
from tests.fakes import FakeProvider


@pytest.mark.parametrize(
    ("requested", "accepted"),
    [
        (None, {}),
        ([], {}),
        ({"toolsListChanged": True, "promptsListChanged": False}, {"toolsListChanged": True}),
        ({"resourcesListChanged": "yes"}, {}),
        ({"resourceSubscriptions": ["a", "b", "a"]}, {"resourceSubscriptions": ["a", "b"]}),
        ({"resourceSubscriptions": ["a", 1]}, {}),
        ({"resourceSubscriptions": "a"}, {}),
        ({"somethingElse": True}, {}),
    ],
)
def test_accepted_filter(requested: Any, accepted: dict[str, Any]) -> None:
    assert accepted_filter(requested) == accepted


def test_listener_tags_and_drops_the_oldest(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hub_module, "QUEUE_LIMIT", 2)
    listener = Listener(5, {})
    tagged = listener.tagged("m", {"uri": "u"})
    assert tagged["params"] == {"uri": "u", "_meta": {SUBSCRIPTION_ID_KEY: 5}}
    for n in range(3):
        listener.offer({"n": n})
    assert [listener.queue.get_nowait()["n"] for _ in range(2)] == [1, 2]


def build() -> tuple[FakeProvider, NotificationHub, SessionStore]:
    provider = FakeProvider()
    registry = Registry()
    registry.add(provider)
    sessions = SessionStore(60)
    return provider, NotificationHub(registry, sessions), sessions


async def test_list_changes_reach_sessions_and_interested_listeners() -> None:
    provider, hub, sessions = build()
    session = sessions.create("2025-11-25", {})
    quiet = sessions.create("2025-11-25", {})  # no stream open: nothing piles up for it
    session.listening = True
    tools_only = Listener("t", {"toolsListChanged": True})
    resources_only = Listener("r", {"resourcesListChanged": True})
    await hub.add(tools_only)
    await hub.add(resources_only)
    provider.on_change(provider, {"resources", "resourceTemplates", "tools"})
    methods = sorted(m["method"] for m in session.outbox)
    assert methods == ["notifications/resources/list_changed", "notifications/tools/list_changed"]
    assert not quiet.outbox
    assert tools_only.queue.qsize() == 1
    assert tools_only.queue.get_nowait()["method"] == "notifications/tools/list_changed"
    assert resources_only.queue.qsize() == 1  # templates and resources: one notification
    await hub.remove(tools_only)
    provider.on_change(provider, {"tools"})
    assert tools_only.queue.qsize() == 0


async def test_resource_updates_reach_subscribers_only() -> None:
    provider, hub, sessions = build()
    subscribed = sessions.create("2025-11-25", {})
    subscribed.subscribe("catalyst://fake/mem://a")
    other = sessions.create("2025-11-25", {})
    listener = Listener(1, {"resourceSubscriptions": ["catalyst://fake/mem://a"]})
    await hub.add(listener)
    assert provider.subscribed == ["mem://a"]
    await provider.on_resource_updated(provider, "mem://a")
    await provider.on_resource_updated(provider, "mem://b")
    assert list(subscribed.outbox) == [
        {
            "jsonrpc": "2.0",
            "method": "notifications/resources/updated",
            "params": {"uri": "catalyst://fake/mem://a"},
        }
    ]
    assert list(other.outbox) == []
    assert listener.queue.qsize() == 1
    await hub.remove(listener)
    assert provider.unsubscribed == ["mem://a"]
