"""Fan-out of change notifications to every connected client, in its era's way.

Legacy sessions get them in their outbox (drained by the GET or SSE stream); modern clients get
them on their ``subscriptions/listen`` streams, filtered by what each asked for and tagged with
the listen request's id.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from catalyst_mcp.errors import NotFound
from catalyst_mcp.protocol.jsonrpc import Message, RequestId, notification
from catalyst_mcp.protocol.legacy import SessionStore
from catalyst_mcp.protocol.versions import SUBSCRIPTION_ID_KEY
from catalyst_mcp.providers import ListKind
from catalyst_mcp.registry import Registry

__all__ = ["Listener", "NotificationHub", "accepted_filter"]

CHANGED_METHOD: dict[ListKind, tuple[str, str]] = {
    "tools": ("notifications/tools/list_changed", "toolsListChanged"),
    "resources": ("notifications/resources/list_changed", "resourcesListChanged"),
    "resourceTemplates": ("notifications/resources/list_changed", "resourcesListChanged"),
    "prompts": ("notifications/prompts/list_changed", "promptsListChanged"),
}
QUEUE_LIMIT = 1000
MAX_SUBSCRIPTIONS = 256  # resource URIs one listener or legacy session may subscribe to


def accepted_filter(requested: Any) -> dict[str, Any]:
    """The subset of a SubscriptionFilter the gateway honours (all of it, when well formed)."""
    if not isinstance(requested, dict):
        return {}
    accepted: dict[str, Any] = {
        key: True
        for key in ("toolsListChanged", "promptsListChanged", "resourcesListChanged")
        if requested.get(key) is True
    }
    uris = requested.get("resourceSubscriptions")
    if isinstance(uris, list) and all(isinstance(u, str) for u in uris):
        accepted["resourceSubscriptions"] = list(dict.fromkeys(uris))
    return accepted


@dataclass(eq=False)
class Listener:
    """One modern ``subscriptions/listen`` stream."""

    subscription_id: RequestId
    filter: dict[str, Any]
    queue: asyncio.Queue[Message] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))

    def tagged(self, method: str, params: dict[str, Any] | None = None) -> Message:
        return notification(
            method, {**(params or {}), "_meta": {SUBSCRIPTION_ID_KEY: self.subscription_id}}
        )

    def offer(self, message: Message) -> None:
        if self.queue.full():
            self.queue.get_nowait()  # a slow reader loses the oldest, not the newest
        self.queue.put_nowait(message)


class NotificationHub:
    def __init__(self, registry: Registry, sessions: SessionStore) -> None:
        self.registry = registry
        self.sessions = sessions
        self.listeners: set[Listener] = set()
        # with redis.url: tells the shared sessions subscribed to a URI, on any instance
        self.shared_updates: Callable[[str], Awaitable[None]] | None = None
        registry.change_listeners.append(self.lists_changed)
        registry.update_listeners.append(self.resource_updated)

    def lists_changed(self, kinds: set[ListKind]) -> None:
        sent: set[str] = set()
        for kind in kinds:
            method, flag = CHANGED_METHOD[kind]
            if method in sent:
                continue
            sent.add(method)
            for session in self.sessions:
                if session.listening:
                    session.post(notification(method))
            for listener in self.listeners:
                if listener.filter.get(flag):
                    listener.offer(listener.tagged(method))

    async def resource_updated(self, uri: str) -> None:
        for session in self.sessions:  # (a shared session's subscriptions are in Redis)
            if uri in session.subscriptions:
                session.post(notification("notifications/resources/updated", {"uri": uri}))
        if self.shared_updates is not None:
            await self.shared_updates(uri)
        for listener in self.listeners:
            if uri in listener.filter.get("resourceSubscriptions", ()):
                listener.offer(listener.tagged("notifications/resources/updated", {"uri": uri}))

    async def add(self, listener: Listener, allowed: Callable[[str], bool] | None = None) -> None:
        """Register a listener. Resource URIs nobody serves, and those ``allowed`` refuses
        (RBAC: the caller may not read them), are dropped from its filter alike; at most
        :data:`MAX_SUBSCRIPTIONS` are kept."""
        uris = listener.filter.get("resourceSubscriptions")
        if uris is not None:
            kept: list[str] = []
            for uri in uris:
                if len(kept) >= MAX_SUBSCRIPTIONS:
                    break
                if allowed is not None and not allowed(uri):
                    continue
                try:
                    await self.registry.subscribe(uri)
                except NotFound:
                    continue
                kept.append(uri)
            listener.filter["resourceSubscriptions"] = kept
        self.listeners.add(listener)

    async def remove(self, listener: Listener) -> None:
        self.listeners.discard(listener)
        for uri in listener.filter.get("resourceSubscriptions", ()):
            await self.registry.unsubscribe(uri)
