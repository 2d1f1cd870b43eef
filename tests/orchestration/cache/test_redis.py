"""The Redis layer with the real Redis at 127.0.0.1:6379, shared by two gateways: one's stored
results are the other's hits (users still apart), expiry by the cache clock, a clear reaching
both, Redis alone (no memory layer); each test under a key prefix of its own, deleted after."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis

from tests.conftest import require_or_skip
from tests.orchestration.cache.conftest import CacheGateway, cache_settings, start_cache_gateway
from tests.security.test_ratelimit import REDIS_URL, redis_up

pytestmark = pytest.mark.redis


@pytest.fixture
def prefix() -> Iterator[str]:
    require_or_skip(redis_up(), "no Redis at 127.0.0.1:6379")
    prefix = f"catalyst-test-cache:{uuid.uuid4().hex}:"
    yield prefix
    with redis.Redis.from_url(REDIS_URL) as client:
        keys = list(client.scan_iter(match=prefix + "*"))
        if keys:
            client.delete(*keys)


def stored(prefix: str) -> list[bytes]:
    with redis.Redis.from_url(REDIS_URL) as client:
        return sorted(client.scan_iter(match=prefix + "*"))


@pytest.fixture
async def pair(tmp_path: Path, prefix: str) -> AsyncIterator[tuple[CacheGateway, CacheGateway]]:
    cache = {"redis_url": REDIS_URL, "redis_prefix": prefix}
    first = await start_cache_gateway(cache_settings(tmp_path / "a", cache=cache), tmp_path / "a")
    second = await start_cache_gateway(cache_settings(tmp_path / "b", cache=cache), tmp_path / "b")
    try:
        yield first, second
    finally:
        await first.gateway.stop()
        await second.gateway.stop()


@pytest.fixture(autouse=True)
def _folders(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()


async def test_one_instances_results_are_the_others_hits(
    pair: tuple[CacheGateway, CacheGateway], prefix: str
) -> None:
    one, two = pair
    alice = await one.result("alice", "lookup", {"id": 1})
    catalog = await one.result("alice", "catalog", {"id": 1})
    assert len(stored(prefix)) == 2
    assert all(key.startswith(f"{prefix}db/".encode()) for key in stored(prefix))
    assert await two.result("alice", "lookup", {"id": 1}) == {**alice, "ttlMs": 60_000}
    assert await two.result("bob", "catalog", {"id": 1}) == {**catalog, "ttlMs": 60_000}
    assert two.reached("lookup") == two.reached("catalog") == 0
    bob = await two.result("bob", "lookup", {"id": 1})
    assert bob["structuredContent"]["user"] == "bob"  # never alice's, on any instance
    assert two.reached("lookup") == 1
    counts = (await two.gateway.cache.stats())["counts"]
    assert (counts["hits_redis"], counts["misses"]) == (2, 1)
    await two.result("alice", "lookup", {"id": 1})  # now in two's memory too
    assert (await two.gateway.cache.stats())["counts"]["hits_memory"] == 1


async def test_redis_entries_expire_by_the_cache_clock(
    pair: tuple[CacheGateway, CacheGateway],
) -> None:
    one, two = pair
    await one.result("alice", "catalog", {"id": 1})
    two.clock.now = one.clock.now + 60
    assert (await two.result("bob", "catalog", {"id": 1}))["structuredContent"]["n"] == 1
    assert two.reached("catalog") == 1


async def test_a_clear_reaches_redis_and_every_instances_memory(
    pair: tuple[CacheGateway, CacheGateway], prefix: str
) -> None:
    one, two = pair
    await one.result("alice", "catalog", {"id": 1})
    await one.result("alice", "lookup", {"id": 1})
    await two.result("alice", "catalog", {"id": 1})  # in two's memory now
    assert len(two.gateway.cache.memory) == 1
    layers = [one.gateway.cache.redis, two.gateway.cache.redis]
    for _ in range(100):  # both listeners subscribed
        if all(layer is not None and layer.listening for layer in layers):
            break
        await asyncio.sleep(0.02)
    cleared = (await one.api("DELETE", "/cache?tool=db__catalog")).json()
    assert (cleared["memory"], cleared["redis"]) == (1, 1)
    assert len(stored(prefix)) == 1  # lookup's is left
    for _ in range(200):
        if len(two.gateway.cache.memory) == 0:
            break
        await asyncio.sleep(0.01)
    assert len(two.gateway.cache.memory) == 0
    await two.result("alice", "catalog", {"id": 1})
    assert two.reached("catalog") == 1
    stats = (await two.api("GET", "/cache")).json()["redis"]
    assert stats["enabled"] and stats["reachable"] and stats["listening"]
    assert stats["prefix"] == prefix and stats["location"] == "redis://127.0.0.1:6379/0"


async def test_without_a_memory_layer_every_lookup_asks_redis(tmp_path: Path, prefix: str) -> None:
    cache = {"redis_url": REDIS_URL, "redis_prefix": prefix, "max_entries": 0}
    served = await start_cache_gateway(cache_settings(tmp_path, cache=cache), tmp_path)
    try:
        for _ in range(3):
            await served.result("alice", "catalog")
        counts = (await served.gateway.cache.stats())["counts"]
        assert (counts["misses"], counts["hits_redis"], counts["hits_memory"]) == (1, 2, 0)
        assert len(served.gateway.cache.memory) == 0
    finally:
        await served.gateway.stop()


async def test_a_listener_that_lost_redis_empties_its_memory_when_back(
    pair: tuple[CacheGateway, CacheGateway], monkeypatch: pytest.MonkeyPatch
) -> None:
    from catalyst_mcp.orchestration.cache import redislayer

    monkeypatch.setattr(redislayer, "LISTEN_BACKOFF", (0.05, 0.05))
    one, _ = pair
    layer = one.gateway.cache.redis
    assert layer is not None
    for _ in range(100):
        if layer.listening:
            break
        await asyncio.sleep(0.02)
    await one.result("alice", "catalog", {"id": 1})
    assert len(one.gateway.cache.memory) == 1
    with redis.Redis.from_url(REDIS_URL) as client:
        (listener,) = [
            c for c in client.client_list() if c["name"] == f"catalyst-cache-{layer.instance}"
        ]
        client.client_kill_filter(_id=listener["id"])
    for _ in range(300):
        if len(one.gateway.cache.memory) == 0 and layer.listening:
            break
        await asyncio.sleep(0.01)
    assert len(one.gateway.cache.memory) == 0  # a clear may have been missed meanwhile
    assert layer.listening


async def test_concurrent_misses_make_one_call_and_one_redis_lookup(
    pair: tuple[CacheGateway, CacheGateway], prefix: str
) -> None:
    one, two = pair
    gate = one.gate()
    calls = [asyncio.create_task(one.result("alice", "catalog", {"id": 1})) for _ in range(8)]
    await one.waiting(7)  # none of them asked Redis: the leader's lookup was a miss for all
    gate.open()
    results = await asyncio.gather(*calls)
    assert {r["structuredContent"]["n"] for r in results} == {1}
    assert one.reached("catalog") == 1 and len(stored(prefix)) == 1
    counts = one.gateway.cache.counts
    assert (counts["misses"], counts["coalesced"], counts["hits_redis"]) == (1, 7, 0)
    # the other instance: one Redis lookup (the first caller's), the rest wait for it or hit
    # its memory; nobody calls the server
    calls = [asyncio.create_task(two.result("bob", "catalog", {"id": 1})) for _ in range(8)]
    assert {r["structuredContent"]["n"] for r in await asyncio.gather(*calls)} == {1}
    assert two.reached("catalog") == 0
    counts = two.gateway.cache.counts
    assert counts["hits_redis"] == 1 and counts["coalesced"] + counts["hits_memory"] == 7


async def test_without_a_memory_layer_waiters_get_the_leaders_result(
    tmp_path: Path, prefix: str
) -> None:
    cache = {"redis_url": REDIS_URL, "redis_prefix": prefix, "max_entries": 0}
    served = await start_cache_gateway(cache_settings(tmp_path, cache=cache), tmp_path)
    try:
        gate = served.gate()
        calls = [asyncio.create_task(served.result("alice", "lookup")) for _ in range(6)]
        await served.waiting(5)
        gate.open()
        assert {r["structuredContent"]["n"] for r in await asyncio.gather(*calls)} == {1}
        assert served.reached("lookup") == 1 and len(served.gateway.cache.memory) == 0
        assert served.gateway.cache.counts["coalesced"] == 5
        assert len(stored(prefix)) == 1
    finally:
        await served.gateway.stop()
