"""What the event tests share: a consumer that records what it gets, and a bus over memory."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from catalyst_mcp.orchestration.events.bus import EventBus
from catalyst_mcp.orchestration.events.config import EventsSettings
from catalyst_mcp.orchestration.events.memory import MemoryTransport
from catalyst_mcp.orchestration.events.metrics import EventStats
from catalyst_mcp.orchestration.events.types import Envelope, UpstreamStateChanged

__all__ = ["Recorder", "memory_bus", "state", "wait_until"]


class Recorder:
    """A consumer that keeps every envelope it is handed (``types``: the ones it accepts;
    ``fail``: raise for these event ids; ``gate``: wait for it before each one)."""

    def __init__(
        self,
        name: str = "recorder",
        types: set[str] | None = None,
        *,
        fail: Callable[[Envelope], bool] | None = None,
        gate: asyncio.Event | None = None,
    ) -> None:
        self.name = name
        self.types = types
        self.fail = fail
        self.gate = gate
        self.got: list[Envelope] = []

    def accepts(self, event_type: str) -> bool:
        return self.types is None or event_type in self.types

    async def handle(self, envelope: Envelope) -> None:
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None and self.fail(envelope):
            raise RuntimeError(f"refused {envelope.id}")
        self.got.append(envelope)


def memory_bus(**settings: Any) -> EventBus:
    config = EventsSettings.model_validate(settings)
    stats = EventStats()
    transport = MemoryTransport(config.queue_size, config.recent, stats)
    return EventBus(config, transport, source="test-instance", stats=stats)


def state(server: str, now: str = "ready", restarts: int = 0) -> UpstreamStateChanged:
    return UpstreamStateChanged(server, now, None, restarts, None)


async def wait_until(check: Callable[[], Any], timeout: float = 5.0) -> None:
    """Until ``check()`` is true (AssertionError after ``timeout`` seconds)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        if loop.time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.01)
