"""A Redis that fails never fails a call: nobody listening, or a server that never answers
within ``cache.redis_timeout_seconds``; the cache goes on from memory and skips Redis a while."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from catalyst_mcp.orchestration.cache.redislayer import escape_glob, location
from tests.conftest import free_port
from tests.orchestration.cache.conftest import cache_settings, start_cache_gateway


def test_glob_escapes_and_locations() -> None:
    assert escape_glob("a*b?[c]\\") == "a\\*b\\?\\[c\\]\\\\"
    assert location("redis://user:secret@host:6380/2?x=1") == "redis://host:6380/2"
    assert location("unix:///run/redis.sock") == "unix:/run/redis.sock"


@pytest.mark.network
async def test_an_unreachable_redis_is_skipped(tmp_path: Path) -> None:
    cache = {"redis_url": f"redis://127.0.0.1:{free_port()}/0"}
    served = await start_cache_gateway(cache_settings(tmp_path, cache=cache), tmp_path)
    try:
        for _ in range(3):
            await served.result("alice", "catalog")
        assert served.reached("catalog") == 1  # memory still serves
        layer = served.gateway.cache.redis
        assert layer is not None and not layer.available
        assert layer.errors == 1  # the first lookup; then it is left alone (the write too)
        stats = (await served.api("GET", "/cache")).json()["redis"]
        assert stats["reachable"] is False and stats["errors"] == 1
        refused = await served.api("DELETE", "/cache")
        assert refused.status == 503
        assert "could not be cleared" in refused.json()["error"]["message"]
    finally:
        await served.gateway.stop()


@pytest.mark.network
async def test_a_silent_redis_costs_one_timeout(tmp_path: Path) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never answers
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    cache = {"redis_url": f"redis://127.0.0.1:{port}/0", "redis_timeout_seconds": 0.2}
    served = await start_cache_gateway(cache_settings(tmp_path, cache=cache), tmp_path)
    try:
        started = time.monotonic()
        await served.result("alice", "catalog")
        first = time.monotonic() - started
        started = time.monotonic()
        await served.result("bob", "lookup")
        second = time.monotonic() - started
        assert 0.2 <= first < 5.0  # one lookup waited for its timeout, then the call went on
        assert second < first  # Redis is skipped now
        assert served.gateway.cache.redis is not None
        assert served.gateway.cache.redis.errors == 1
    finally:
        await served.gateway.stop()
        server.close()
        await server.wait_closed()


def test_the_cache_shares_the_deployments_redis_unless_given_its_own(tmp_path: Path) -> None:
    from catalyst_mcp.app import Gateway

    shared = cache_settings(tmp_path, redis={"url": "redis://127.0.0.1:1/3"})
    layer = Gateway(shared, []).cache.redis
    assert layer is not None and layer.where == location("redis://127.0.0.1:1/3")

    own = cache_settings(
        tmp_path,
        redis={"url": "redis://127.0.0.1:1/3"},
        cache={"redis_url": "redis://127.0.0.1:2/4"},
    )
    layer = Gateway(own, []).cache.redis
    assert layer is not None and layer.where == location("redis://127.0.0.1:2/4")

    assert Gateway(cache_settings(tmp_path), []).cache.redis is None
