"""The Redis transport: one stream every instance writes and reads, through consumer groups.

::

    pump ── XADD <stream> MAXLEN ~ <max_len> * i <id> t <type> s <source> at <unix time>
                                               d <data JSON>
            (every entry of a batch in one script call: EVALSHA with the batch as JSON)

    per consumer kind (group ``audit``, ``metrics``, ``workflows``, ``webhook.<name>``), on
    every instance (consumer ``<instance>``):
        XREADGROUP GROUP <group> <instance> COUNT n BLOCK 1000 STREAMS <stream> >
        handle each entry, then XACK it        (a handler that raised: left pending)
        every claim_idle/2 s:  XAUTOCLAIM <stream> <group> <instance> <claim_idle> 0-0
            entries another consumer (a dead instance, a failed handler) left unacknowledged
            for claim_idle: delivered here again, unless already delivered max_deliveries
            times (then acknowledged, dropped and counted: ``undeliverable``)

So every event is handled by one instance per consumer kind, at least once. Groups are created
at ``$`` (``MKSTREAM``) before this instance writes its first event: a consumer kind that
appears later (a new webhook) sees the events from then on, not the stream's past. A consumer
that may take long (a webhook retrying, a workflow run being recorded) acknowledges at once
the entries it does not want, then handles and acknowledges the others one by one, keeping the
rest of its batch claimed while it works (``XCLAIM ... JUSTID`` every claim_idle/3 s), so no
other instance takes them over meanwhile. Consumers of dead instances that hold nothing are
removed from their groups after an hour.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import orjson

from catalyst_mcp.aio import cancel_and_wait
from catalyst_mcp.orchestration.events.bus import Consumer
from catalyst_mcp.orchestration.events.config import EventsSettings
from catalyst_mcp.orchestration.events.metrics import EventStats
from catalyst_mcp.orchestration.events.types import Envelope

if TYPE_CHECKING:
    from redis.asyncio import Redis
    from redis.commands.core import AsyncScript

__all__ = ["APPEND", "FIELD", "GroupReader", "RedisTransport", "decode"]

log = logging.getLogger("catalyst.events")

FIELD = b"d"  # the field of an entry that holds the event's data (JSON)
# One batch in one command: its entries as a JSON array of [id, type, source, time, data],
# each added with XADD MAXLEN ~ (the per-command cost of a pipeline, in Python, was most of
# the cost of an event; decision 025).
APPEND = """
local rows = cjson.decode(ARGV[2])
for _, e in ipairs(rows) do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
             'i', e[1], 't', e[2], 's', e[3], 'at', e[4], 'd', e[5])
end
return #rows
"""
BLOCK_MS = 1000  # longest wait of one XREADGROUP
READ_COUNT = 100  # entries read at once by a fast consumer
DEAD_CONSUMER_SECONDS = 3600.0  # an idle consumer holding nothing is forgotten after this
RETRY_MAX_SECONDS = 5.0
MAX_SCAN = 10_000  # entries looked at by recent() when filtering by type


class RedisTransport:
    """Events through the Redis stream ``settings.stream`` at ``url``; ``consumer`` names this
    instance in every group."""

    backend = "redis"

    def __init__(
        self,
        url: str,
        settings: EventsSettings,
        stats: EventStats,
        consumer: str,
        *,
        block_ms: int = BLOCK_MS,
    ) -> None:
        self.url = url
        self.settings = settings
        self.stats = stats
        self.consumer = consumer[:200]
        self.stream = settings.stream
        self.block_ms = max(10, min(block_ms, int(settings.claim_idle_seconds * 500)))
        self.readers: list[GroupReader] = []
        self._client: Redis | None = None
        self._groups: list[str] = []
        self.ready = False  # every group exists
        self._append: AsyncScript | None = None

    @property
    def client(self) -> Redis:
        if self._client is None:
            from redis.asyncio import Redis

            self._client = Redis.from_url(
                self.url, socket_connect_timeout=5, socket_timeout=10 + self.block_ms / 1000
            )
        return self._client

    async def start(self, consumers: list[Consumer]) -> None:
        self._groups = [c.name for c in consumers]
        self.readers = [GroupReader(self, c) for c in consumers]
        with contextlib.suppress(Exception):  # Redis away: the first publish tries again
            await asyncio.wait_for(self.ensure_groups(), 2.0)
        for reader in self.readers:
            reader.start()

    async def ensure_groups(self) -> None:
        from redis.exceptions import ResponseError

        client = self.client
        for group in self._groups:
            try:
                await client.xgroup_create(self.stream, group, id="$", mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self.ready = True

    async def publish(self, batch: list[Envelope]) -> None:
        if not self.ready:
            await self.ensure_groups()  # before the first event: no group misses it
        if self._append is None:
            self._append = self.client.register_script(APPEND)
        rows = [
            [e.id, e.type, e.source, repr(e.time), orjson.dumps(e.data).decode()] for e in batch
        ]
        await self._append(keys=[self.stream], args=[self.settings.max_len, orjson.dumps(rows)])

    async def stop(self, deadline: float) -> None:
        await asyncio.gather(*(reader.stop() for reader in self.readers))
        client, self._client = self._client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    async def recent(self, limit: int, types: frozenset[str] | None) -> list[Envelope]:
        scan = limit if types is None else min(MAX_SCAN, max(limit * 10, 1000))
        entries = await self.client.xrevrange(self.stream, count=scan)
        found: list[Envelope] = []
        for _, fields in entries or ():
            envelope = decode(fields)
            if envelope is not None and (types is None or envelope.type in types):
                found.append(envelope)
                if len(found) >= limit:
                    break
        return found


def decode(fields: Mapping[Any, Any] | None) -> Envelope | None:
    """The envelope of an entry's fields, or None if it is not one of ours."""
    if not fields:
        return None
    try:
        return Envelope(
            fields[b"i"].decode(),
            fields[b"t"].decode(),
            float(fields[b"at"]),
            fields[b"s"].decode(),
            raw=bytes(fields[FIELD]),
        )
    except (KeyError, ValueError, TypeError, AttributeError, UnicodeDecodeError):
        return None


class GroupReader:
    """One consumer kind on this instance: reads its group, hands entries to the consumer,
    acknowledges them, and claims what others left behind."""

    def __init__(self, transport: RedisTransport, consumer: Consumer) -> None:
        self.transport = transport
        self.consumer = consumer
        self.group = consumer.name
        self.slow = bool(getattr(consumer, "slow", False))
        # a fast consumer that takes batches (metrics) gets each read whole
        self.many: Callable[[list[Envelope]], Awaitable[None]] | None = (
            None if self.slow else getattr(consumer, "handle_many", None)
        )
        self.count = READ_COUNT
        settings = transport.settings
        self.claim_idle_ms = int(settings.claim_idle_seconds * 1000)
        self.claim_every = settings.claim_idle_seconds / 2
        self.max_deliveries = settings.max_deliveries
        self._task: asyncio.Task[None] | None = None
        self._acks: set[asyncio.Future[Any]] = set()
        self.handled = 0  # entries handled and acknowledged here (tests)

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(
            self._loop(), name=f"catalyst-events-redis-{self.group}"
        )

    async def stop(self) -> None:
        """Stop reading; an entry being handled is left pending, for another instance."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)
        if self._acks:
            await asyncio.wait(set(self._acks), timeout=2.0)

    async def _loop(self) -> None:
        transport = self.transport
        wait = 0.0
        next_claim = 0.0  # a first look at once: what a dead instance left
        while True:
            try:
                if not transport.ready:
                    await transport.ensure_groups()  # Redis was away at start
                if time.monotonic() >= next_claim:
                    await self.claim()
                    next_claim = time.monotonic() + self.claim_every
                answer: Any = await transport.client.xreadgroup(
                    self.group,
                    transport.consumer,
                    {transport.stream: ">"},
                    count=self.count,
                    block=transport.block_ms,
                )
                for _, entries in answer or ():
                    await self._deliver(entries, redelivered=False)
                wait = 0.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if _missing_group(exc):
                    transport.ready = False  # the stream or group was deleted: make it again
                    with contextlib.suppress(Exception):
                        await transport.ensure_groups()
                    continue
                if wait == 0.0:
                    log.warning("events: reading group %s failed (%s)", self.group, exc)
                wait = min(max(wait * 2, 0.1), RETRY_MAX_SECONDS)
                await asyncio.sleep(wait)

    async def _deliver(self, entries: list[Any], *, redelivered: bool) -> None:
        """Handle ``entries`` in order and acknowledge them: those the consumer does not want
        at once, the handled ones after their handling (one by one for a slow consumer, whose
        handling takes a while: the rest of the batch stays claimed meanwhile)."""
        stats = self.transport.stats
        skipped: list[bytes] = []
        wanted: list[tuple[bytes, Envelope]] = []
        for entry_id, fields in entries:
            envelope = decode(fields)
            if envelope is None or not self.consumer.accepts(envelope.type):
                skipped.append(entry_id)
            else:
                wanted.append((entry_id, envelope))
        if redelivered and wanted:
            stats.delivery(self.group, "redelivered", len(wanted))
        if self.slow or not wanted:
            await self._ack(skipped)
            skipped = []
        if self.many is not None and wanted:  # the whole batch at once
            handled = await self._handle_many([envelope for _, envelope in wanted])
            await self._ack(skipped + ([i for i, _ in wanted] if handled else []))
            if handled:
                self.handled += len(wanted)
            return
        done = skipped
        try:
            for index, (entry_id, envelope) in enumerate(wanted):
                held = [i for i, _ in wanted[index:]]
                if await self._handle(entry_id, envelope, held):
                    self.handled += 1
                    if self.slow:
                        await self._ack([entry_id])
                    else:
                        done.append(entry_id)
        finally:
            await self._ack(done)

    async def _ack(self, ids: list[bytes]) -> None:
        """Acknowledge ``ids``, even while the reader is being stopped (stop waits for it)."""
        if not ids:
            return
        transport = self.transport
        ack = asyncio.ensure_future(transport.client.xack(transport.stream, self.group, *ids))
        self._acks.add(ack)
        ack.add_done_callback(self._acked)
        await asyncio.shield(ack)

    def _acked(self, ack: asyncio.Future[Any]) -> None:
        self._acks.discard(ack)
        if not ack.cancelled() and ack.exception() is not None:  # left pending: redelivered
            log.warning("events: acknowledging in group %s failed: %s", self.group, ack.exception())

    async def _handle(self, entry_id: bytes, envelope: Envelope, held: list[bytes]) -> bool:
        """Handle one entry (``held``: the entries of its batch not yet acknowledged)."""
        stats = self.transport.stats
        try:
            if self.slow:
                await self._keeping_claimed(held, envelope)
            else:
                await self.consumer.handle(envelope)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            stats.delivery(self.group, "failed")
            log.warning(
                "event consumer %s failed on %s %s (delivered again in %gs): %s",
                self.group,
                envelope.type,
                envelope.id,
                self.claim_idle_ms / 1000,
                str(exc) or type(exc).__name__,
            )
            return False
        stats.delivery(self.group, "ok")
        return True

    async def _handle_many(self, envelopes: list[Envelope]) -> bool:
        assert self.many is not None
        stats = self.transport.stats
        try:
            await self.many(envelopes)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            stats.delivery(self.group, "failed", len(envelopes))
            log.warning("event consumer %s failed on a batch: %s", self.group, exc)
            return False
        stats.delivery(self.group, "ok", len(envelopes))
        return True

    async def _keeping_claimed(self, held: list[bytes], envelope: Envelope) -> None:
        """Handle ``envelope``, resetting the idle time of the ``held`` entries (its own and
        the rest of its batch) while that takes long."""
        transport = self.transport
        ids: list[Any] = list(held)
        task = asyncio.ensure_future(self.consumer.handle(envelope))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=self.claim_idle_ms / 3000)
                if done:
                    task.result()
                    return
                with contextlib.suppress(Exception):
                    await transport.client.xclaim(
                        transport.stream,
                        self.group,
                        transport.consumer,
                        0,
                        ids,
                        justid=True,
                    )
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def claim(self) -> int:
        """Take over the entries left unacknowledged for ``claim_idle``; how many."""
        transport = self.transport
        client, stream, group = transport.client, transport.stream, self.group
        start: Any = "0-0"
        claimed_total = 0
        while True:
            answer = await client.xautoclaim(
                stream,
                group,
                transport.consumer,
                self.claim_idle_ms,
                start_id=start,
                count=READ_COUNT,
            )
            start, entries = answer[0], answer[1]
            trimmed = answer[2] if len(answer) > 2 else []
            if trimmed:
                transport.stats.drop("unknown", "trimmed", len(trimmed))
            live = [(i, f) for i, f in entries if f is not None]
            if live:
                claimed_total += len(live)
                counts = await self._deliveries([i for i, _ in live])
                keep = []
                for entry_id, fields in live:
                    if counts.get(entry_id, 1) > self.max_deliveries:
                        await self._give_up(entry_id, fields)
                    else:
                        keep.append((entry_id, fields))
                await self._deliver(keep, redelivered=True)
            if start in (b"0-0", "0-0"):
                break
        await self._forget_dead_consumers()
        return claimed_total

    async def _deliveries(self, ids: list[bytes]) -> dict[bytes, int]:
        transport = self.transport
        pending: Any = await transport.client.xpending_range(
            transport.stream,
            self.group,
            min=min(ids, key=_id_key),
            max=max(ids, key=_id_key),
            count=len(ids) + READ_COUNT,
            consumername=transport.consumer,
        )
        return {p["message_id"]: int(p["times_delivered"]) for p in pending}

    async def _give_up(self, entry_id: bytes, fields: Mapping[Any, Any] | None) -> None:
        envelope = decode(fields)
        kind = envelope.type if envelope is not None else "unknown"
        self.transport.stats.drop(kind, "undeliverable")
        log.error(
            "event consumer %s: giving up on %s %s after %d deliveries",
            self.group,
            kind,
            envelope.id if envelope is not None else entry_id.decode(),
            self.max_deliveries,
        )
        transport = self.transport
        await transport.client.xack(transport.stream, self.group, entry_id)

    async def _forget_dead_consumers(self) -> None:
        transport = self.transport
        with contextlib.suppress(Exception):
            for info in await transport.client.xinfo_consumers(transport.stream, self.group):
                name = info.get("name")
                name = name.decode() if isinstance(name, bytes) else str(name)
                idle = int(info.get("idle", 0)) / 1000
                if (
                    name != transport.consumer
                    and int(info.get("pending", 0)) == 0
                    and idle > DEAD_CONSUMER_SECONDS
                ):
                    await transport.client.xgroup_delconsumer(transport.stream, self.group, name)


def _id_key(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms), int(seq or 0)


def _missing_group(exc: Exception) -> bool:
    return "NOGROUP" in str(exc)
