"""The Redis transport on the real Redis: one stream, consumer groups, at least once.

Every test works on a stream key of its own (``catalyst-test:<uuid>:events``), deleted
afterwards, so tests of other people running on the same Redis see nothing of it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

import catalyst_mcp.orchestration.events.bus as bus_module
from catalyst_mcp.orchestration.events.bus import EventBus
from catalyst_mcp.orchestration.events.config import EventsSettings
from catalyst_mcp.orchestration.events.metrics import EventStats
from catalyst_mcp.orchestration.events.redisstream import RedisTransport
from catalyst_mcp.orchestration.events.types import CallFinished, Envelope, PackReloaded
from tests.conftest import ROOT, require_or_skip
from tests.orchestration.events.support import Recorder, wait_until
from tests.security.test_ratelimit import REDIS_URL, redis_up

pytestmark = pytest.mark.redis


@pytest.fixture
def stream() -> Iterator[str]:
    """A stream key of this test's own, deleted afterwards."""
    require_or_skip(redis_up(), "no Redis at 127.0.0.1:6379")
    key = f"catalyst-test:{uuid.uuid4().hex}:events"
    yield key
    with redis.Redis.from_url(REDIS_URL) as client:
        client.delete(key)


@pytest.fixture
async def client() -> AsyncIterator[aioredis.Redis]:
    found = aioredis.Redis.from_url(REDIS_URL)
    yield found
    await found.aclose()


def redis_bus(stream: str, source: str, *consumers: Any, **settings: Any) -> EventBus:
    config = EventsSettings.model_validate({"stream": stream, **settings})
    stats = EventStats()
    transport = RedisTransport(REDIS_URL, config, stats, source)
    bus = EventBus(config, transport, source=source, stats=stats)
    for consumer in consumers:
        bus.subscribe(consumer)
    return bus


def finished(i: int) -> CallFinished:
    return CallFinished("crm", f"crm__t{i}", "ok", "alice", "user", "mcp", 1.0)


async def pending(client: aioredis.Redis, stream: str, group: str) -> int:
    summary: Any = await client.xpending(stream, group)
    return int(summary["pending"])


async def test_each_event_is_handled_once_per_group_across_instances(
    stream: str, client: aioredis.Redis
) -> None:
    a_rec, b_rec = Recorder("recorder"), Recorder("recorder")
    a_audit = Recorder("audit", {"pack.reloaded"})
    a = redis_bus(stream, "instance-a", a_rec, a_audit)
    b = redis_bus(stream, "instance-b", b_rec)
    await a.start()
    await b.start()
    try:
        for i in range(30):
            (a if i % 2 else b).emit(finished(i))
        a.emit(PackReloaded("crm.yaml", "crm", "added", 0, 2))
        await wait_until(lambda: len(a_rec.got) + len(b_rec.got) == 31)
        await wait_until(lambda: len(a_audit.got) == 1)
        ids = [e.id for e in a_rec.got + b_rec.got]
        assert len(set(ids)) == 31
        assert {e.source for e in a_rec.got + b_rec.got} == {"instance-a", "instance-b"}
        assert await client.xlen(stream) == 31
        for group in ("recorder", "audit"):
            for _ in range(100):
                if await pending(client, stream, group) == 0:
                    break
                await asyncio.sleep(0.02)
            assert await pending(client, stream, group) == 0, group
    finally:
        await a.stop()
        await b.stop()


async def test_an_entry_read_but_not_acknowledged_is_handled_by_another_instance(
    stream: str, client: aioredis.Redis
) -> None:
    """Instance A reads an event and stops before acknowledging it (its reader is stopped
    while the handler is stuck); instance B claims it after claim_idle and handles it."""
    stuck = asyncio.Event()
    a_rec = Recorder("recorder", gate=stuck)  # never released: A never finishes
    b_rec = Recorder("recorder")
    a = redis_bus(stream, "instance-a", a_rec, claim_idle_seconds=0.3)
    await a.start()
    a.emit(finished(1))
    reader = a.transport.readers[0]  # type: ignore[attr-defined]
    for _ in range(200):  # A has read it: pending to instance-a
        if await pending(client, stream, "recorder") == 1:
            break
        await asyncio.sleep(0.01)
    assert await pending(client, stream, "recorder") == 1
    await reader.stop()  # A "crashes" before the acknowledgement
    b = redis_bus(stream, "instance-b", b_rec, claim_idle_seconds=0.3)
    await b.start()
    try:
        await wait_until(lambda: len(b_rec.got) == 1)
        assert b_rec.got[0].data["tool"] == "crm__t1" and a_rec.got == []
        assert b.stats.deliveries[("recorder", "redelivered")] == 1
        for _ in range(100):
            if await pending(client, stream, "recorder") == 0:
                break
            await asyncio.sleep(0.02)
        assert await pending(client, stream, "recorder") == 0
    finally:
        await b.stop()
        await a.stop()


async def test_a_failed_handling_is_delivered_again_then_given_up(
    stream: str, client: aioredis.Redis
) -> None:
    attempts: list[str] = []

    def fail_twice(envelope: Envelope) -> bool:
        attempts.append(envelope.data["tool"])
        return envelope.data["tool"] == "crm__t9" or attempts.count(envelope.data["tool"]) < 2

    picky = Recorder("picky", fail=fail_twice)
    bus = redis_bus(stream, "one", picky, claim_idle_seconds=0.2, max_deliveries=3)
    await bus.start()
    try:
        bus.emit(finished(1))  # fails once, then handled
        bus.emit(finished(9))  # fails every time: given up after 3 deliveries
        await wait_until(lambda: [e.data["tool"] for e in picky.got] == ["crm__t1"])
        await wait_until(lambda: bus.stats.dropped[("call.finished", "undeliverable")] == 1)
        assert attempts.count("crm__t9") == 3 and attempts.count("crm__t1") == 2
        for _ in range(100):
            if await pending(client, stream, "picky") == 0:
                break
            await asyncio.sleep(0.02)
        assert await pending(client, stream, "picky") == 0
    finally:
        await bus.stop()


async def test_the_stream_is_trimmed(stream: str, client: aioredis.Redis) -> None:
    bus = redis_bus(stream, "one", Recorder(), max_len=100)
    await bus.start()
    try:
        for i in range(2000):
            bus.emit(finished(i))
            if i % 100 == 0:
                await asyncio.sleep(0)
        await wait_until(lambda: bus.queued == 0)
        await asyncio.sleep(0.1)
        length = await client.xlen(stream)
        assert 100 <= length < 600  # MAXLEN ~: trimmed by whole nodes
    finally:
        await bus.stop()


async def test_recent_reads_the_stream_newest_first(stream: str) -> None:
    writer = redis_bus(stream, "writer", Recorder())
    reader = redis_bus(stream, "reader")  # another instance, no consumers
    await writer.start()
    await reader.start()
    try:
        for i in range(5):
            writer.emit(finished(i))
        writer.emit(PackReloaded("crm.yaml", "crm", "added", 0, 2))
        await wait_until(lambda: writer.queued == 0)
        for _ in range(100):
            latest = await reader.recent(3)
            if latest and latest[0].type == "pack.reloaded":
                break
            await asyncio.sleep(0.02)
        assert [e.type for e in latest] == ["pack.reloaded", "call.finished", "call.finished"]
        calls = await reader.recent(2, ["call.*"])
        assert [e.data["tool"] for e in calls] == ["crm__t4", "crm__t3"]
        assert calls[0].source == "writer"
    finally:
        await writer.stop()
        await reader.stop()


async def test_a_group_made_later_sees_only_later_events(stream: str) -> None:
    first = Recorder("first")
    bus = redis_bus(stream, "one", first)
    await bus.start()
    bus.emit(finished(1))
    await wait_until(lambda: len(first.got) == 1)
    await bus.stop()
    late = Recorder("late")
    again = redis_bus(stream, "two", Recorder("first"), late)
    await again.start()
    try:
        again.emit(finished(2))
        await wait_until(lambda: len(late.got) == 1)
        assert late.got[0].data["tool"] == "crm__t2"
    finally:
        await again.stop()


async def test_redis_away_holds_no_call_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bus_module, "STOP_SECONDS", 0.5)
    bus = redis_bus("catalyst-test:nowhere", "one", Recorder(), queue_size=50)
    bus.transport.url = "redis://127.0.0.1:9/0"  # type: ignore[attr-defined]
    await bus.start()
    try:
        for i in range(80):
            bus.emit(finished(i))  # never waits, never raises
        await asyncio.sleep(0.2)
        assert bus.stats.dropped[("call.finished", "queue_full")] == 30
    finally:
        await bus.stop()
    assert bus.queued == 0 and bus.stats.dropped[("call.finished", "stopped")] == 50


CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from catalyst_mcp.orchestration.events.bus import EventBus
    from catalyst_mcp.orchestration.events.config import EventsSettings
    from catalyst_mcp.orchestration.events.metrics import EventStats
    from catalyst_mcp.orchestration.events.redisstream import RedisTransport

    class Stuck:
        name = "recorder"
        def accepts(self, event_type): return True
        async def handle(self, envelope):
            print("got", envelope.id, flush=True)
            await asyncio.sleep(3600)  # killed before it is done: never acknowledged

    async def main():
        config = EventsSettings.model_validate(
            {"stream": sys.argv[1], "claim_idle_seconds": 0.5}
        )
        stats = EventStats()
        transport = RedisTransport(sys.argv[2], config, stats, "child")
        bus = EventBus(config, transport, source="child", stats=stats)
        bus.subscribe(Stuck())
        await bus.start()
        print("ready", flush=True)
        await asyncio.sleep(3600)

    asyncio.run(main())
    """
)


@pytest.mark.subprocess
async def test_a_killed_instance_s_entry_is_redelivered(
    stream: str, client: aioredis.Redis, tmp_path: Path
) -> None:
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    child = subprocess.Popen(
        [sys.executable, str(script), stream, REDIS_URL],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        start_new_session=True,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 30)
        assert line.strip() == "ready"
        writer = redis_bus(stream, "writer")
        await writer.start()
        writer.emit(finished(7))
        line = await asyncio.wait_for(asyncio.to_thread(child.stdout.readline), 30)
        assert line.startswith("got ev_")
        os.killpg(child.pid, signal.SIGKILL)  # kill -9 before it acknowledged
        child.wait(10)
        await writer.stop()
        assert await pending(client, stream, "recorder") == 1
        survivor = Recorder("recorder")
        other = redis_bus(stream, "survivor", survivor, claim_idle_seconds=0.5)
        await other.start()
        try:
            await wait_until(lambda: len(survivor.got) == 1, timeout=10)
            assert survivor.got[0].id == line.split()[1]
            assert survivor.got[0].data["tool"] == "crm__t7"
        finally:
            await other.stop()
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
            child.wait(10)
        if child.stdout is not None:
            child.stdout.close()


class Slow(Recorder):
    """A consumer whose handling takes longer than claim_idle (a webhook retrying)."""

    slow = True

    async def handle(self, envelope: Envelope) -> None:
        await asyncio.sleep(0.8)
        await super().handle(envelope)


async def test_a_slow_consumer_keeps_its_batch_claimed(stream: str, client: aioredis.Redis) -> None:
    a_slow, b_slow = Slow("slow", {"call.finished"}), Slow("slow", {"call.finished"})
    a = redis_bus(stream, "instance-a", a_slow, claim_idle_seconds=0.3)
    await a.start()
    try:
        a.emit(PackReloaded("crm.yaml", "crm", "added", 0, 2))  # not wanted: acknowledged
        a.emit(finished(1))
        a.emit(finished(2))
        await wait_until(lambda: a_slow.got == [] and a.queued == 0)
        await asyncio.sleep(0.1)  # A has read all three
        b = redis_bus(stream, "instance-b", b_slow, claim_idle_seconds=0.3)
        await b.start()
        try:
            await wait_until(lambda: len(a_slow.got) + len(b_slow.got) >= 2, timeout=10)
            await asyncio.sleep(0.5)
            handled = [e.data["tool"] for e in a_slow.got + b_slow.got]
            assert sorted(handled) == ["crm__t1", "crm__t2"]  # none twice: kept claimed
            assert b.stats.deliveries[("slow", "redelivered")] == 0
            assert await pending(client, stream, "slow") == 0
        finally:
            await b.stop()
    finally:
        await a.stop()


async def test_readers_stop_every_time(stream: str) -> None:
    """Stopping a reader whose Redis command is being sent: on Python 3.11 redis-py's
    ``wait_for`` around the send loses that cancellation about one time in ten, and stopping
    waited for ever (a gateway with redis.url hung at exit)."""
    config = EventsSettings.model_validate({"stream": stream})
    for attempt in range(60):
        transport = RedisTransport(REDIS_URL, config, EventStats(), "instance-a", block_ms=10)
        await transport.start([Recorder("recorder"), Recorder("audit")])
        await asyncio.sleep((attempt % 7) * 0.003)
        async with asyncio.timeout(5):
            await transport.stop(time.monotonic() + 1)
