"""The bus over memory: emit never waits, queues are bounded, every consumer gets what it accepts
in order, a failing or slow consumer holds no other back, stop hands on what is queued."""

from __future__ import annotations

import asyncio

import pytest

import catalyst_mcp.orchestration.events.bus as bus_module
from catalyst_mcp.orchestration.events.types import CallFinished, PackReloaded
from tests.orchestration.events.support import Recorder, memory_bus, state, wait_until


def finished(tool: str = "crm__find") -> CallFinished:
    return CallFinished("crm", tool, "ok", "alice", "user", "mcp", 1.5)


async def test_every_consumer_gets_what_it_accepts_in_order() -> None:
    bus = memory_bus()
    everything = Recorder("all")
    calls = Recorder("calls", {"call.finished"})
    bus.subscribe(everything)
    bus.subscribe(calls)
    await bus.start()
    try:
        for i in range(5):
            bus.emit(finished(f"crm__t{i}"))
        bus.emit(state("crm"))
        await wait_until(lambda: len(everything.got) == 6 and len(calls.got) == 5)
        assert [e.data["tool"] for e in calls.got] == [f"crm__t{i}" for i in range(5)]
        assert everything.got[-1].type == "upstream.state_changed"
        ids = [e.id for e in everything.got]
        assert len(set(ids)) == 6 and all(i.startswith("ev_") for i in ids)
        first = everything.got[0]
        assert first.source == "test-instance" and first.age < 5
        assert first.data == {
            "server": "crm",
            "tool": "crm__t0",
            "outcome": "ok",
            "subject": "alice",
            "subject_kind": "user",
            "channel": "mcp",
            "duration_ms": 1.5,
        }
    finally:
        await bus.stop()


async def test_emit_never_waits_and_drops_past_the_queue_size() -> None:
    bus = memory_bus(queue_size=3)
    bus.subscribe(Recorder())
    # not started: nothing hands the queue on, so it fills up
    for _ in range(5):
        bus.emit(finished())
    assert bus.queued == 3
    assert bus.stats.dropped[("call.finished", "queue_full")] == 2


async def test_a_consumers_own_queue_is_bounded_too() -> None:
    gate = asyncio.Event()
    slow = Recorder("slow", gate=gate)
    fast = Recorder("fast")
    bus = memory_bus(queue_size=4)
    bus.subscribe(slow)
    bus.subscribe(fast)
    await bus.start()
    try:
        for i in range(10):
            bus.emit(finished(f"t{i}"))
            await asyncio.sleep(0.01)  # the pump hands each on before the next comes
        await wait_until(lambda: len(fast.got) == 10)  # the slow one holds nobody back
        assert slow.got == []
        assert bus.stats.dropped[("call.finished", "queue_full")] >= 5
        gate.set()
        await wait_until(lambda: len(slow.got) >= 4)
    finally:
        await bus.stop()


async def test_a_failing_consumer_is_counted_and_goes_on() -> None:
    picky = Recorder("picky", fail=lambda e: e.data["tool"] == "bad")
    bus = memory_bus()
    bus.subscribe(picky)
    await bus.start()
    try:
        for tool in ("a", "bad", "b"):
            bus.emit(finished(tool))
        await wait_until(lambda: len(picky.got) == 2)
        assert [e.data["tool"] for e in picky.got] == ["a", "b"]
        assert bus.stats.deliveries[("picky", "failed")] == 1
        assert bus.stats.deliveries[("picky", "ok")] == 2
    finally:
        await bus.stop()


async def test_types_not_published_are_not_queued() -> None:
    bus = memory_bus(types=["upstream.*", "pack.reloaded"])
    assert bus.publishes("pack.reloaded") and not bus.publishes("call.finished")
    bus.emit(finished())
    bus.emit(PackReloaded("crm.yaml", "crm", "added", 0, 3))
    assert bus.queued == 1


async def test_disabled_bus_publishes_nothing() -> None:
    bus = memory_bus(enabled=False)
    bus.emit(finished())
    assert bus.queued == 0 and not bus.publishes("call.finished")


async def test_stop_hands_on_what_is_queued() -> None:
    got = Recorder()
    bus = memory_bus()
    bus.subscribe(got)
    await bus.start()
    for _ in range(50):
        bus.emit(finished())
    await bus.stop()
    assert len(got.got) == 50


async def test_stop_gives_up_on_a_stuck_consumer(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bus_module, "STOP_SECONDS", 0.2)
    stuck = Recorder("stuck", gate=asyncio.Event())
    bus = memory_bus()
    bus.subscribe(stuck)
    await bus.start()
    for _ in range(3):
        bus.emit(finished())
    await asyncio.sleep(0.05)
    await bus.stop()
    assert stuck.got == []
    assert bus.stats.dropped[("call.finished", "stopped")] == 2  # one was being handled


async def test_recent_events_newest_first_and_by_type() -> None:
    bus = memory_bus(recent=3)
    bus.subscribe(Recorder())
    await bus.start()
    try:
        for i in range(4):
            bus.emit(finished(f"t{i}"))
        bus.emit(state("crm"))
        await wait_until(lambda: bus.queued == 0)
        await asyncio.sleep(0)
        latest = await bus.recent(10)
        assert [e.type for e in latest] == [
            "upstream.state_changed",
            "call.finished",
            "call.finished",
        ]
        assert [e.data["tool"] for e in await bus.recent(10, ["call.*"])] == ["t3", "t2"]
        assert len(await bus.recent(1)) == 1
    finally:
        await bus.stop()


class Dynamic(Recorder):
    """A consumer whose wishes change while it runs."""

    dynamic = True


async def test_a_dynamic_consumer_is_asked_for_every_event() -> None:
    changing = Dynamic("changing", set())
    bus = memory_bus()
    bus.subscribe(changing)
    await bus.start()
    try:
        bus.emit(finished("before"))
        await asyncio.sleep(0.05)
        changing.types = {"call.finished"}
        bus.emit(finished("after"))
        await wait_until(lambda: len(changing.got) == 1)
        assert changing.got[0].data["tool"] == "after"
    finally:
        await bus.stop()
