"""``GET /api/v1/cache`` and ``DELETE /api/v1/cache``: statistics and clearing (all, a server, a
tool), administrators only, audited, documented."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio

from catalyst_mcp.api.cache import CacheHandlers
from catalyst_mcp.orchestration.cache.config import CacheSettings
from catalyst_mcp.orchestration.cache.service import ResultCache
from tests.conftest import ROOT
from tests.orchestration.cache.conftest import CacheGateway, cache_settings, start_cache_gateway


@pytest_asyncio.fixture
async def cached(tmp_path: Path) -> AsyncIterator[CacheGateway]:
    served = await start_cache_gateway(cache_settings(tmp_path), tmp_path)
    try:
        yield served
    finally:
        await served.gateway.stop()


async def fill(cached: CacheGateway) -> None:
    for user in ("alice", "bob"):
        await cached.result(user, "lookup", {"id": 1})
        await cached.result(user, "catalog", {"id": 1})


async def test_stats_count_what_this_instance_did(cached: CacheGateway) -> None:
    await fill(cached)
    stats = (await cached.api("GET", "/cache")).json()
    assert stats["enabled"] is True
    assert stats["counts"] == {
        "hits_memory": 1,
        "hits_redis": 0,
        "coalesced": 0,
        "misses": 3,
        "stored": 3,
        "not_stored": 0,
    }
    assert stats["memory"]["entries"] == 3 and stats["memory"]["max_entries"] == 10_000
    assert stats["redis"] == {
        "enabled": False,
        "location": None,
        "prefix": None,
        "reachable": None,
        "listening": None,
        "errors": None,
    }
    (server,) = stats["servers"]
    assert (server["server"], server["entries"]) == ("db", 3)
    assert server["bytes"] == stats["memory"]["bytes"] > 0


async def test_clear_a_tool_a_server_or_everything(cached: CacheGateway) -> None:
    await fill(cached)
    cleared = (await cached.api("DELETE", "/cache?tool=db__lookup")).json()
    assert cleared == {"server": "db", "tool": "db__lookup", "memory": 2, "redis": 0}
    await cached.result("alice", "lookup", {"id": 1})
    await cached.result("alice", "catalog", {"id": 1})
    assert (cached.reached("lookup"), cached.reached("catalog")) == (3, 1)
    cleared = (await cached.api("DELETE", "/cache?server=db")).json()
    assert cleared == {"server": "db", "tool": None, "memory": 2, "redis": 0}
    await cached.result("alice", "catalog", {"id": 1})
    assert (await cached.api("DELETE", "/cache")).json()["memory"] == 1
    assert len(cached.gateway.cache.memory) == 0


async def test_bad_filters_are_refused(cached: CacheGateway) -> None:
    unknown = await cached.api("DELETE", "/cache?tool=nowhere__x")
    assert unknown.status == 404
    assert unknown.json()["error"]["message"] == "Unknown tool: nowhere__x"
    wrong = await cached.api("DELETE", "/cache?server=other&tool=db__lookup")
    assert wrong.status == 422
    assert "served by 'db', not 'other'" in wrong.json()["error"]["message"]
    typo = await cached.api("DELETE", "/cache?servr=db")
    assert typo.status == 422


async def test_only_administrators_and_clears_are_audited(cached: CacheGateway) -> None:
    await fill(cached)
    for method in ("GET", "DELETE"):
        refused = await cached.api(method, "/cache", user="bob", roles=("reader",))
        assert refused.status == 403
    assert len(cached.gateway.cache.memory) == 3
    assert (await cached.api("DELETE", "/cache?server=db")).status == 200
    refused, done = await cached.audit("admin.cache.clear")
    assert (refused["actor"], refused["outcome"]) == ("bob", "denied")
    assert (done["actor"], done["target"], done["outcome"]) == ("root", "db", "ok")


async def test_the_openapi_document_and_the_docs_list_the_routes(cached: CacheGateway) -> None:
    document = (await cached.api("GET", "/openapi.json")).json()
    assert set(document["paths"]["/api/v1/cache"]) == {"get", "delete"}
    text = (ROOT / "docs" / "api.md").read_text()
    for route in CacheHandlers(ResultCache(CacheSettings()), None).routes():
        assert f"`{route.method} {route.path}" in text, route.path
