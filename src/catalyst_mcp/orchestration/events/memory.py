"""The in-process transport: each envelope goes to the inbox of every consumer that accepts
its type, and into a ring of the latest events (``events.recent``, for the admin API).

Which consumers take a type is worked out once; a consumer whose wishes change while it runs
(workflow triggers: files are edited) says so with a true ``dynamic`` attribute and is asked
for every event instead."""

from __future__ import annotations

import asyncio
from collections import deque

from catalyst_mcp.orchestration.events.bus import Consumer, Inbox
from catalyst_mcp.orchestration.events.metrics import EventStats
from catalyst_mcp.orchestration.events.types import EVENT_TYPES, Envelope

__all__ = ["MemoryTransport"]


class MemoryTransport:
    """Delivery inside this process (at most once; docs/events.md)."""

    backend = "memory"

    def __init__(self, queue_size: int, recent: int, stats: EventStats) -> None:
        self.queue_size = queue_size
        self.stats = stats
        self.inboxes: list[Inbox] = []
        self.latest: deque[Envelope] = deque(maxlen=recent)
        self._routes: dict[str, tuple[Inbox, ...]] = {}

    async def start(self, consumers: list[Consumer]) -> None:
        self.inboxes = [Inbox(c, self.queue_size, self.stats) for c in consumers]
        for inbox in self.inboxes:
            inbox.start()
        self._routes = {
            name: tuple(i for i in self.inboxes if _dynamic(i) or i.consumer.accepts(name))
            for name in EVENT_TYPES
        }

    async def publish(self, batch: list[Envelope]) -> None:
        routes = self._routes
        self.latest.extend(batch)
        for envelope in batch:
            kind = envelope.type
            for inbox in routes.get(kind, ()):
                if inbox.dynamic and not inbox.consumer.accepts(kind):
                    continue
                inbox.put(envelope)

    async def stop(self, deadline: float) -> None:
        await asyncio.gather(*(inbox.stop(deadline) for inbox in self.inboxes))

    async def recent(self, limit: int, types: frozenset[str] | None) -> list[Envelope]:
        found: list[Envelope] = []
        for envelope in reversed(self.latest):
            if len(found) >= limit:
                break
            if types is None or envelope.type in types:
                found.append(envelope)
        return found


def _dynamic(inbox: Inbox) -> bool:
    return inbox.dynamic
