"""What one gateway shares with the other instances of its deployment, built when
``redis.url`` is set: the bus, shared legacy sessions, parked calls resumed from any instance,
and configuration announcements. Without ``redis.url`` none of this exists and every request
path is the single-process one."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from catalyst_mcp.cluster.announce import Announcements, appliers_for
from catalyst_mcp.cluster.bus import Bus
from catalyst_mcp.cluster.parked import ParkedCalls
from catalyst_mcp.cluster.sessions import SharedSessions

if TYPE_CHECKING:
    from catalyst_mcp.app import Gateway

__all__ = ["PARK_MARGIN_SECONDS", "Cluster"]

PARK_MARGIN_SECONDS = 5.0  # a resumed call may take its time limit, plus this


class Cluster:
    """This instance's side of the shared state (``instance``: its id, else a new one)."""

    def __init__(self, gateway: Gateway, instance: str | None = None) -> None:
        settings = gateway.settings
        self.bus = Bus(settings.redis, instance)
        self.instance = self.bus.instance
        self.sessions = SharedSessions(self.bus, gateway.dispatcher, gateway.registry)
        self.parked = ParkedCalls(
            self.bus,
            gateway.server.bridge,
            settings.gateway.call_timeout_seconds + PARK_MARGIN_SECONDS,
        )
        self.announcements = Announcements(self.bus, appliers_for(gateway))
        gateway.mcp.shared = self.sessions
        gateway.sse.shared = self.sessions
        self.sessions.posted = gateway.sse.accept
        gateway.hub.shared_updates = self.sessions.resource_updated
        gateway.api.change_listeners.append(self.announcements.changed)
        self._connected = False
        self._limiter: Callable[[], Awaitable[None]] | None = getattr(
            gateway.access.limiter, "ping", None
        )

    async def connect(self) -> None:
        """Listen to the other instances (before anything else starts: SharedStateUnavailable
        when Redis cannot be reached)."""
        await self.bus.start()
        self._connected = True

    async def start(self) -> None:
        """Follow what the sessions follow, and keep them alive (the servers are up now)."""
        await self.sessions.start()

    async def stop(self) -> None:
        if self._connected:
            self._connected = False
            await self.sessions.stop()
            await self.bus.stop()

    async def ping(self) -> None:
        """Check that Redis answers (for /ready); raises RedisError if it does not."""
        await self.bus.redis.ping()
        limiter = self._limiter
        if limiter is not None:  # rate limits on a Redis of their own: it must answer too
            await limiter()
