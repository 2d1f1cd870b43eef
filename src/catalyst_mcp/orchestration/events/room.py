"""The events room of one gateway, built from the settings: the bus and its transport (memory,
or a Redis stream), the consumers (audit, metrics, workflow triggers, webhooks) and the
sources wired into the gateway's parts (calls, upstream states, pack reloads, tool definition
changes, workflow steps and runs, rule alerts and approvals). docs/events.md tells the whole
story."""

from __future__ import annotations

import os
import secrets
import socket
from typing import TYPE_CHECKING

from catalyst_mcp.orchestration.events.auditing import AuditConsumer
from catalyst_mcp.orchestration.events.bus import EventBus, Transport
from catalyst_mcp.orchestration.events.memory import MemoryTransport
from catalyst_mcp.orchestration.events.metrics import EventStats, MetricsConsumer
from catalyst_mcp.orchestration.events.sources import (
    CallEvents,
    RuleEvents,
    UpstreamWatch,
    pack_event,
    pin_events,
    run_event,
    step_event,
)
from catalyst_mcp.orchestration.events.webhooks import Webhook

if TYPE_CHECKING:
    from catalyst_mcp.app import Gateway
    from catalyst_mcp.net.netguard import Resolver
    from catalyst_mcp.observability.metrics import Metrics
    from catalyst_mcp.settings import Settings

__all__ = ["Events", "backend_of", "instance_name"]


def instance_name() -> str:
    """This process among the gateways sharing a Redis: host, pid and a random part."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(4)}"


def backend_of(settings: Settings) -> str:
    """The transport in effect: ``memory`` or ``redis``."""
    backend = settings.events.backend
    if backend == "auto":
        return "redis" if settings.redis.url else "memory"
    return backend


class Events:
    """The bus of one gateway and everything around it (``resolver``: the webhooks' name
    lookup, for tests)."""

    def __init__(
        self,
        settings: Settings,
        *,
        metrics: Metrics | None = None,
        source: str | None = None,
        resolver: Resolver | None = None,
    ) -> None:
        self.settings = settings
        config = settings.events
        self.source = source or instance_name()
        self.stats = EventStats(metrics)
        self.backend = backend_of(settings)
        transport: Transport
        if self.backend == "redis":
            from catalyst_mcp.orchestration.events.redisstream import RedisTransport

            assert settings.redis.url is not None  # the settings check it
            transport = RedisTransport(settings.redis.url, config, self.stats, self.source)
        else:
            transport = MemoryTransport(config.queue_size, config.recent, self.stats)
        self.bus = EventBus(config, transport, source=self.source, stats=self.stats)
        self.webhooks = [
            Webhook(name, hook, self.stats, resolver=resolver)
            for name, hook in sorted(config.webhooks.items())
        ]
        self.watch: UpstreamWatch | None = None
        self._gateway: Gateway | None = None
        self._pins_wired = False

    def attach(self, gateway: Gateway) -> None:
        """Subscribe the consumers and wire the sources into ``gateway``'s parts (before it
        starts)."""
        self._gateway = gateway
        bus, emit = self.bus, self.bus.emit
        if gateway.settings.audit.enabled:
            access = gateway.access
            bus.subscribe(AuditConsumer(lambda: access.audit))
        bus.subscribe(MetricsConsumer(self.stats))
        if gateway.workflows is not None:
            from catalyst_mcp.orchestration.events.triggers import TriggerConsumer

            bus.subscribe(TriggerConsumer(gateway.workflows))
            store = gateway.workflows.store
            store.on_step_end = step_event(emit)
            store.on_run_end = run_event(emit)
        for webhook in self.webhooks:
            bus.subscribe(webhook)
        gateway.server.events = CallEvents(emit, bus.publishes)
        if gateway.packs is not None:
            gateway.packs.on_reload = pack_event(emit)
        rules = gateway.rules
        sink = RuleEvents(rules.events, emit)
        rules.events = sink
        rules.hook.events = sink
        servers = gateway.servers
        self.watch = UpstreamWatch(
            lambda: servers.providers, emit, self.settings.events.state_poll_seconds
        )

    async def start(self) -> None:
        """Start delivering (after the audit trail is open, before the servers start)."""
        gateway = self._gateway
        if gateway is not None and not self._pins_wired:  # its audit hook, and the events
            gateway.pinning.audit = pin_events(gateway.pinning.audit, self.bus.emit)
            self._pins_wired = True
        await self.bus.start()
        if self.watch is not None:
            self.watch.start()

    async def stop(self) -> None:
        """Hand on what is queued (a few seconds at most), then stop every consumer."""
        if self.watch is not None:
            await self.watch.stop()
        await self.bus.stop()
        for webhook in self.webhooks:
            await webhook.aclose()
