"""Single flight: concurrent misses of one key make one upstream call in a process. Through the
gateway (the server ``db`` held by a gate while callers pile up): one call for N callers, never
across users of a ``user`` tool, waiters still refused and limited and audited (``coalesced``),
a failed call not shared; on the cache alone: a cancelled leader or waiter, and the flight table
itself."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.context import CallContext, Identity
from catalyst_mcp.errors import UpstreamUnavailable
from catalyst_mcp.orchestration.cache.config import CacheSettings, CacheSpec
from catalyst_mcp.orchestration.cache.flight import CANCELLED, FAILED, Flights, Landed
from catalyst_mcp.orchestration.cache.memory import Entry
from catalyst_mcp.orchestration.cache.service import ResultCache
from catalyst_mcp.providers import Provider
from tests.fakes import FakeProvider, tool
from tests.orchestration.cache.conftest import (
    CacheGateway,
    cache_settings,
    start_cache_gateway,
    token,
    until,
)

N = 16

# ---- through the gateway -----------------------------------------------------------------------


async def test_concurrent_identical_misses_make_one_call(cached: CacheGateway) -> None:
    gate = cached.gate()
    calls = [asyncio.create_task(cached.result("alice", "lookup", {"id": 1})) for _ in range(N)]
    await cached.waiting(N - 1)
    assert cached.reached("lookup") == 1
    gate.open()
    results = await asyncio.gather(*calls)
    assert all(
        r["structuredContent"] == {"user": "alice", "arguments": {"id": 1}, "n": 1} for r in results
    )
    assert all(r["ttlMs"] == 60_000 and r["cacheScope"] == "private" for r in results)
    assert cached.reached("lookup") == 1
    counts = cached.gateway.cache.counts
    assert (counts["misses"], counts["coalesced"], counts["stored"]) == (1, N - 1, 1)
    assert len(cached.gateway.cache.flights) == 0
    records = await cached.audit()
    assert [r["outcome"] for r in records] == ["ok"] * N
    notes = sorted(str(r["detail"].get("note")) for r in records)
    assert notes == ["None"] + ["{'cache': 'coalesced'}"] * (N - 1)
    admin = {"authorization": f"Bearer {token('root', 'admin')}"}
    text = (await cached.client.get("/metrics", admin)).body.decode()
    assert (
        f'catalyst_cache_lookups_total{{layer="flight",result="hit",server="db"}} {N - 1}.0' in text
    )


async def test_a_user_tool_coalesces_per_user_only(cached: CacheGateway) -> None:
    gate = cached.gate()
    calls = {
        user: [asyncio.create_task(cached.result(user, "lookup", {"id": 1})) for _ in range(3)]
        for user in ("alice", "bob")
    }
    await cached.waiting(4)
    assert cached.reached("lookup") == 2  # one each: never one user's call for the other
    gate.open()
    for user, tasks in calls.items():
        for result in await asyncio.gather(*tasks):
            assert result["structuredContent"]["user"] == user
    assert cached.reached("lookup") == 2


async def test_a_shared_tool_coalesces_across_users(cached: CacheGateway) -> None:
    gate = cached.gate()
    users = ("alice", "bob", "carol", "dave")
    calls = [asyncio.create_task(cached.result(user, "catalog", {"q": 1})) for user in users]
    await cached.waiting(3)
    gate.open()
    results = await asyncio.gather(*calls)
    assert {r["structuredContent"]["n"] for r in results} == {1}
    assert cached.reached("catalog") == 1


async def test_a_private_answer_to_a_shared_call_reaches_only_its_users_waiters(
    cached: CacheGateway,
) -> None:
    gate = cached.gate()
    private = {"scope": "private"}
    leader = asyncio.create_task(cached.result("alice", "hinted", private))
    await until(lambda: cached.reached("hinted") == 1, "alice's call reached db")
    alice = asyncio.create_task(cached.result("alice", "hinted", private))
    bob = asyncio.create_task(cached.result("bob", "hinted", private))
    await cached.waiting(2)
    gate.open()
    first, again, bobs = await asyncio.gather(leader, alice, bob)
    assert again["structuredContent"] == first["structuredContent"]
    assert bobs["structuredContent"]["user"] == "bob"  # his own call, after alice's
    assert cached.reached("hinted") == 2


async def test_a_waiter_is_still_refused_and_rate_limited(tmp_path: Path) -> None:
    limit = {"per_tool": {"rate_per_second": 0.001, "burst": 2}}
    served = await start_cache_gateway(cache_settings(tmp_path, rate_limits=limit), tmp_path)
    try:
        gate = served.gate()
        leader = asyncio.create_task(served.result("alice", "catalog"))
        await until(lambda: served.reached("catalog") == 1, "the leader reached db")
        waiter = asyncio.create_task(served.result("alice", "catalog"))
        await served.waiting(1)
        limited = await served.modern("alice", "catalog")  # the third of a burst of 2
        assert limited["error"]["code"] == -32029
        nobody = await served.modern("dave", "catalog", None, "nobody")
        assert nobody["error"]["code"] == -32003
        assert served.gateway.cache.flights.waiting() == 1  # neither of them waited
        gate.open()
        assert (await leader) == (await waiter)
        assert sorted(r["outcome"] for r in await served.audit()) == [
            "denied",
            "limited",
            "ok",
            "ok",
        ]
    finally:
        await served.gateway.stop()


async def test_a_failed_call_is_not_shared_each_waiter_calls(cached: CacheGateway) -> None:
    gate = cached.gate()
    calls = [asyncio.create_task(cached.result("alice", "err")) for _ in range(4)]
    await cached.waiting(3)
    gate.open()
    results = await asyncio.gather(*calls)
    assert all(r["isError"] is True for r in results)
    assert sorted(r["structuredContent"]["n"] for r in results) == [1, 2, 3, 4]  # their own
    assert cached.reached("err") == 4
    counts = cached.gateway.cache.counts
    assert (counts["misses"], counts["coalesced"], counts["stored"]) == (4, 0, 0)


async def test_a_waiters_span_says_hit_flight_the_leaders_miss(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from catalyst_mcp.observability import tracing

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    served = await start_cache_gateway(cache_settings(tmp_path), tmp_path, tracer_provider=provider)

    async def burst(name: str) -> list[str | None]:
        """A leader and 3 waiters of ``name``: their spans' ``catalyst.cache``, leader first."""
        memory.clear()
        gate = served.gate()
        leader = asyncio.create_task(served.modern("alice", name))
        await until(lambda: served.reached(name) == 1, "the leader reached db")
        waiters = [asyncio.create_task(served.modern("alice", name)) for _ in range(3)]
        await served.waiting(3)
        gate.open()
        await asyncio.gather(leader, *waiters)
        spans = [s for s in memory.get_finished_spans() if s.name == f"tools/call db__{name}"]
        spans.sort(key=lambda s: s.start_time or 0)
        return [(s.attributes or {}).get("catalyst.cache") for s in spans]

    try:
        assert await burst("lookup") == ["miss", "hit:flight", "hit:flight", "hit:flight"]
        assert await burst("err") == ["miss"] * 4  # not shared: each waiter's own call
    finally:
        await served.gateway.stop()
        tracing.deactivate()


async def test_coalescing_can_be_turned_off(tmp_path: Path) -> None:
    settings = cache_settings(tmp_path, cache={"coalesce": False})
    served = await start_cache_gateway(settings, tmp_path)
    try:
        gate = served.gate()
        calls = [asyncio.create_task(served.result("alice", "lookup")) for _ in range(4)]
        await until(lambda: served.reached("lookup") == 4, "every call reached db")
        gate.open()
        await asyncio.gather(*calls)
        assert served.gateway.cache.counts["coalesced"] == 0
    finally:
        await served.gateway.stop()


# ---- the cache alone: failures and cancellations ----------------------------------------------


class Upstream:
    """A relay that counts its calls, holds them until ``opened``, and answers as ``answers``
    says for the n-th call (default: a result naming n)."""

    def __init__(self) -> None:
        self.calls = 0
        self.opened = asyncio.Event()
        self.failing: set[int] = set()  # calls (1-based) that raise UpstreamUnavailable

    async def __call__(
        self, provider: Provider, name: str, params: dict[str, Any], ctx: CallContext
    ) -> dict[str, Any]:
        self.calls += 1
        n = self.calls
        await self.opened.wait()
        if n in self.failing:
            raise UpstreamUnavailable("db", "db is down")
        return {"content": [{"type": "text", "text": f"call {n}"}]}


@pytest.fixture
def cache() -> ResultCache:
    cache = ResultCache(CacheSettings())
    cache.configure("db", CacheSpec(ttl=60))
    return cache


PROVIDER = FakeProvider("db", tools=[tool("get")])


def call(cache: ResultCache, upstream: Upstream) -> asyncio.Task[dict[str, Any]]:
    ctx = CallContext("modern", "2026-07-28", identity=Identity("alice", "user"))
    params = {"name": "get", "arguments": {"id": 1}}
    return asyncio.create_task(cache.call(PROVIDER, "get", params, ctx, upstream))


def text(result: dict[str, Any]) -> str:
    value: str = result["content"][0]["text"]
    return value


async def test_a_leader_that_raises_leaves_each_waiter_its_own_call(cache: ResultCache) -> None:
    upstream = Upstream()
    upstream.failing = {1}
    leader = call(cache, upstream)
    await until(lambda: upstream.calls == 1, "the leader called")
    waiters = [call(cache, upstream) for _ in range(3)]
    await until(lambda: cache.flights.waiting() == 3, "3 waiting")
    upstream.opened.set()
    with pytest.raises(UpstreamUnavailable):
        await leader
    assert sorted(text(r) for r in await asyncio.gather(*waiters)) == ["call 2", "call 3", "call 4"]
    assert upstream.calls == 4
    assert len(cache.memory) == 1  # the waiters' results were stored (the last one kept)


async def test_a_cancelled_leader_hands_the_call_to_a_waiter(cache: ResultCache) -> None:
    upstream = Upstream()
    leader = call(cache, upstream)
    await until(lambda: upstream.calls == 1, "the leader called")
    waiters = [call(cache, upstream) for _ in range(3)]
    await until(lambda: cache.flights.waiting() == 3, "3 waiting")
    leader.cancel()  # its client went away (or its deadline passed)
    await until(lambda: upstream.calls == 2, "a waiter leads")
    await until(lambda: cache.flights.waiting() == 2, "the other two wait for it")
    upstream.opened.set()
    assert [text(r) for r in await asyncio.gather(*waiters)] == ["call 2"] * 3
    with pytest.raises(asyncio.CancelledError):
        await leader
    assert upstream.calls == 2
    assert cache.counts["coalesced"] == 2


async def test_the_spans_of_a_cancelled_leader_and_its_successor_say_miss(
    cache: ResultCache,
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("test")
    upstream = Upstream()

    def traced(name: str) -> asyncio.Task[dict[str, Any]]:
        async def run() -> dict[str, Any]:
            with tracer.start_as_current_span(name):
                return await call(cache, upstream)

        return asyncio.create_task(run())

    leader = traced("leader")
    await until(lambda: upstream.calls == 1, "the leader called")
    waiters = [traced(f"waiter {n}") for n in range(3)]
    await until(lambda: cache.flights.waiting() == 3, "3 waiting")
    leader.cancel()
    await until(lambda: upstream.calls == 2, "a waiter leads")
    upstream.opened.set()
    await asyncio.gather(*waiters)
    with pytest.raises(asyncio.CancelledError):
        await leader
    spans = memory.get_finished_spans()
    found = {s.name: (s.attributes or {}).get("catalyst.cache") for s in spans}
    assert found.pop("leader") == "miss"
    assert sorted(found.values()) == ["hit:flight", "hit:flight", "miss"]  # one led the next


async def test_a_cancelled_waiter_leaves_the_call_to_the_others(cache: ResultCache) -> None:
    upstream = Upstream()
    leader = call(cache, upstream)
    await until(lambda: upstream.calls == 1, "the leader called")
    waiters = [call(cache, upstream) for _ in range(3)]
    await until(lambda: cache.flights.waiting() == 3, "3 waiting")

    async def impatient() -> None:
        async with asyncio.timeout(0.05):  # its own deadline
            await call(cache, upstream)

    with pytest.raises(TimeoutError):
        await impatient()
    waiters[0].cancel()
    await until(lambda: cache.flights.waiting() == 2, "2 still waiting")
    assert not leader.done()
    upstream.opened.set()
    assert text(await leader) == "call 1"
    assert [text(r) for r in await asyncio.gather(*waiters[1:])] == ["call 1"] * 2
    assert waiters[0].cancelled()
    assert upstream.calls == 1


# ---- the flight table --------------------------------------------------------------------------


async def test_a_flight_lands_fails_or_is_cancelled() -> None:
    flights = Flights()
    entry = Entry({"content": []}, 1.0, 10, "user")
    with flights.leading("k") as flight:
        assert flights.joined("k") is flight and len(flights) == 1
        flight.land("k", entry)
    assert flights.joined("k") is None and flight.outcome == Landed("k", entry)
    with pytest.raises(RuntimeError), flights.leading("k") as flight:
        raise RuntimeError("a bug")
    assert flight.outcome == FAILED and len(flights) == 0

    async def cancelled() -> None:
        with flights.leading("k"):
            await asyncio.sleep(10)

    task = asyncio.create_task(cancelled())
    await until(lambda: flights.joined("k") is not None, "leading")
    flight = flights.joined("k")
    assert flight is not None
    waiter = asyncio.create_task(flight.wait())
    await until(lambda: flights.waiting() == 1, "one waiting")
    task.cancel()
    assert await waiter == CANCELLED
    assert len(flights) == 0


def test_a_disabled_table_coalesces_nothing() -> None:
    flights = Flights(enabled=False)
    with flights.leading("k") as flight:
        assert flights.joined("k") is None and len(flights) == 0
        flight.land("k", Entry({}, 1.0, 2, "user"))
