"""The event bus: typed events in, envelopes out to every consumer, never a call held back.

::

    emit(event) ── on the call path: a type check, a bounded append, O(1), never awaits
        │            (queue full: dropped and counted, catalyst_events_dropped{reason=queue_full})
        ▼
    pump task ──── wraps each event in an Envelope (id, time, source), in batches
        │
        ├─ memory ─► each consumer's own bounded inbox and task (audit, metrics, workflows,
        │            webhook.<name>): a slow webhook never holds the others back
        └─ redis ──► XADD to one stream (MAXLEN ~); every consumer kind reads it through its
                     consumer group on every instance (:mod:`.redisstream`)

A :class:`Consumer` has a ``name`` (its consumer group with Redis), says which types it
``accepts`` and ``handle``\\ s one envelope at a time. Delivery semantics (docs/events.md):

* memory: at most once. An event is lost if the process dies before a consumer handled it, if
  a queue was full, or if its consumer raised (logged, counted ``failed``; a webhook retries
  inside its own handling first).
* redis: at least once from the moment the XADD succeeded: an entry is acknowledged only after
  its consumer handled it, and an entry left unacknowledged (its instance died, or the handler
  raised) is claimed by another instance after ``events.claim_idle_seconds`` and delivered
  again, up to ``events.max_deliveries`` times. Events still in this process's queue (Redis
  unreachable, or not yet written) are lost with the process, as in memory.

Order: in-process, each consumer sees the events of its instance in emission order; across
instances (Redis) there is no order between instances, and a redelivered entry comes late.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Protocol

from catalyst_mcp.aio import cancel_and_wait
from catalyst_mcp.orchestration.events.config import EventsSettings
from catalyst_mcp.orchestration.events.metrics import EventStats
from catalyst_mcp.orchestration.events.types import Envelope, Event, expand_patterns

__all__ = ["BATCH", "STOP_SECONDS", "Consumer", "EventBus", "Inbox", "Transport"]

log = logging.getLogger("catalyst.events")

BATCH = 256  # events wrapped and handed on at once
# Once woken, the pump lets events gather this long before it hands them on: one wake-up of
# the pump and of each consumer per batch, not per event (measured in decision 025).
GATHER_SECONDS = 0.002
STOP_SECONDS = 5.0  # how long a stopping bus keeps handing queued events on
RETRY_MAX_SECONDS = 5.0  # longest wait before a failed hand-over (Redis away) is tried again


class Consumer(Protocol):
    """Something that reacts to events: audit, metrics, workflow triggers, a webhook."""

    @property
    def name(self) -> str:
        """Its name: the consumer group with Redis, a metric label."""

    def accepts(self, event_type: str) -> bool:
        """Whether it wants events of this type (others are not handed to it)."""

    async def handle(self, envelope: Envelope) -> None:
        """React to one event; raising means it was not handled. (A consumer may also have
        ``handle_many(envelopes)``: then in-process batches are handed to it whole.)"""


class Transport(Protocol):
    """Where the pump hands envelopes: the consumers of this process, or a Redis stream."""

    backend: str  # memory or redis

    async def start(self, consumers: list[Consumer]) -> None: ...

    async def publish(self, batch: list[Envelope]) -> None:
        """Hand ``batch`` on; raise if it could not be (it is then tried again)."""

    async def stop(self, deadline: float) -> None:
        """Stop delivering (``deadline``: a ``time.monotonic()`` to finish by)."""

    async def recent(self, limit: int, types: frozenset[str] | None) -> list[Envelope]:
        """The latest events, newest first (``types``: only these)."""


class EventBus:
    """One gateway's bus. ``source`` names this instance in every envelope it emits."""

    def __init__(
        self,
        settings: EventsSettings,
        transport: Transport,
        *,
        source: str,
        stats: EventStats | None = None,
    ) -> None:
        self.settings = settings
        self.transport = transport
        self.source = source
        self.stats = stats or EventStats()
        self.types = expand_patterns(settings.types) if settings.enabled else frozenset()
        self.consumers: list[Consumer] = []
        self._queue: deque[tuple[Event, float]] = deque()
        self._max = settings.queue_size
        self._wake = asyncio.Event()
        self._awake = False
        self._prefix = f"ev_{secrets.token_hex(6)}_"
        self._seq = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._retry_wait = 0.0

    # ---- the call path -----------------------------------------------------------------------

    def publishes(self, event_type: str) -> bool:
        """Whether events of this type are published (else :meth:`emit` drops them)."""
        return event_type in self.types

    def emit(self, event: Event) -> None:
        """Take ``event`` (on the event loop's thread); never blocks, never raises."""
        if event.TYPE not in self.types:
            return
        queue = self._queue
        if len(queue) >= self._max:
            self.stats.drop(event.TYPE, "queue_full")
            return
        queue.append((event, time.time()))
        if not self._awake:
            self._awake = True
            self._wake.set()

    @property
    def queued(self) -> int:
        """Events emitted but not yet handed on."""
        return len(self._queue)

    # ---- life cycle --------------------------------------------------------------------------

    def subscribe(self, consumer: Consumer) -> None:
        """Add a consumer (before :meth:`start`)."""
        self.consumers.append(consumer)

    async def start(self) -> None:
        if self._task is not None:
            return
        await self.transport.start(self.consumers)
        self._task = asyncio.get_running_loop().create_task(self._pump(), name="catalyst-events")

    async def stop(self) -> None:
        """Hand on what is queued (for up to :data:`STOP_SECONDS`), then stop every consumer;
        what is still queued then is dropped and counted (``stopped``)."""
        deadline = time.monotonic() + STOP_SECONDS
        task, self._task = self._task, None
        if task is not None:
            self._stopping = True
            self._wake.set()
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(task), max(0.0, deadline - time.monotonic()))
            if not task.done():
                await cancel_and_wait(task)
            await self.transport.stop(deadline)
        for event, _ in self._queue:
            self.stats.drop(event.TYPE, "stopped")
        self._queue.clear()

    async def recent(self, limit: int, types: Iterable[str] | None = None) -> list[Envelope]:
        """The latest events, newest first (``types``: glob patterns)."""
        wanted = expand_patterns(types) if types else None
        return await self.transport.recent(limit, wanted)

    # ---- the pump ----------------------------------------------------------------------------

    async def _pump(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                if self._stopping:
                    return
                await self._wake.wait()
                self._wake.clear()
                if not self._stopping:
                    await asyncio.sleep(GATHER_SECONDS)
            self._awake = False  # an emit from now on wakes the next turn
            if not queue:
                continue
            count = min(len(queue), BATCH)
            prefix, seq, source = self._prefix, self._seq, self.source
            batch = []
            for _ in range(count):
                event, at = queue.popleft()
                batch.append(Envelope.wrap(event, f"{prefix}{next(seq):x}", at, source))
            await self._hand_on(batch)

    async def _hand_on(self, batch: list[Envelope]) -> None:
        """Publish ``batch``, trying again with backoff while the transport fails (events
        emitted meanwhile wait in the queue, and are dropped once it is full)."""
        try:
            while True:
                try:
                    await self.transport.publish(batch)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    if self._retry_wait == 0.0:
                        log.warning("events cannot be handed on (%s); trying again", _why(exc))
                    self._retry_wait = min(max(self._retry_wait * 2, 0.05), RETRY_MAX_SECONDS)
                    await asyncio.sleep(self._retry_wait)
                    continue
                if self._retry_wait:
                    log.info("events are handed on again")
                    self._retry_wait = 0.0
                return
        except asyncio.CancelledError:  # stopped while the batch was not handed on
            for envelope in batch:
                self.stats.drop(envelope.type, "stopped")
            raise


class Inbox:
    """One consumer's bounded queue in this process, and the task that feeds it."""

    def __init__(self, consumer: Consumer, size: int, stats: EventStats) -> None:
        self.consumer = consumer
        self.name = consumer.name
        # its accepts() may change while it runs: asked for each event, not once per type
        self.dynamic = bool(getattr(consumer, "dynamic", False))
        # a consumer may take a whole batch at once: handle_many(envelopes)
        self.many: Callable[[list[Envelope]], Awaitable[None]] | None = getattr(
            consumer, "handle_many", None
        )
        self.size = size
        self.stats = stats
        self.queue: deque[Envelope] = deque()
        self._wake = asyncio.Event()
        self._awake = False
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def put(self, envelope: Envelope) -> None:
        if len(self.queue) >= self.size:
            self.stats.drop(envelope.type, "queue_full")
            return
        self.queue.append(envelope)
        if not self._awake:
            self._awake = True
            self._wake.set()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._loop(), name=f"catalyst-events-{self.name}"
        )

    async def stop(self, deadline: float) -> None:
        """Handle what is queued until ``deadline``; the rest is dropped (``stopped``)."""
        task, self._task = self._task, None
        if task is None:
            return
        self._closing = True
        self._wake.set()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(asyncio.shield(task), max(0.0, deadline - time.monotonic()))
        if not task.done():
            await cancel_and_wait(task)
        for envelope in self.queue:
            self.stats.drop(envelope.type, "stopped")
        self.queue.clear()

    async def _loop(self) -> None:
        queue, consumer, stats, name = self.queue, self.consumer, self.stats, self.name
        while True:
            if not queue:
                if self._closing:
                    return
                await self._wake.wait()
                self._wake.clear()
            self._awake = False
            if self.many is not None:  # the whole batch at once (metrics: a count per type)
                batch = list(queue)
                queue.clear()
                try:
                    await self.many(batch)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    stats.delivery(name, "failed", len(batch))
                    log.warning("event consumer %s failed: %s", name, _why(exc))
                else:
                    stats.delivery(name, "ok", len(batch))
                continue
            handled = 0
            try:
                while queue:
                    envelope = queue.popleft()
                    try:
                        await consumer.handle(envelope)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        stats.delivery(name, "failed")
                        log.warning(
                            "event consumer %s failed on %s %s: %s",
                            name,
                            envelope.type,
                            envelope.id,
                            _why(exc),
                        )
                    else:
                        handled += 1
            finally:  # counted once per batch
                if handled:
                    stats.delivery(name, "ok", handled)


def _why(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
