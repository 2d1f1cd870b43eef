"""The cache's settings as docs/configuration.md and docs/cache.md describe them: durations,
``cache: false``, shared scope refused where credentials are per caller (a server entry and a
pack, located at their line), environment overrides, and the memory layer's bounds."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from catalyst_mcp.errors import ConfigError
from catalyst_mcp.orchestration.cache.config import CacheSpec, parse_duration
from catalyst_mcp.packs.loader import load_pack
from catalyst_mcp.settings import Settings, parse_settings
from catalyst_mcp.yamlsource import load_yaml
from tests.orchestration.cache.conftest import cache_settings, start_cache_gateway


def parse(text: str, environ: dict[str, str] | None = None) -> Settings:
    return parse_settings(load_yaml(text, "c.yaml"), environ or {})


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(text)
    return [str(p) for p in caught.value.problems]


@pytest.mark.parametrize(
    ("given", "seconds"),
    [
        (30, 30.0),
        (1.5, 1.5),
        ("500ms", 0.5),
        ("60s", 60.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("1d", 86400.0),
        ("2.5", 2.5),
        (" 10 s ", 10.0),
    ],
)
def test_durations(given: object, seconds: float) -> None:
    assert CacheSpec.model_validate({"ttl": given}).ttl == seconds


@pytest.mark.parametrize("given", ["soon", "5 minutes", "-1s", True, "31d"])
def test_bad_durations_are_refused(given: object) -> None:
    with pytest.raises(ValidationError, match="ttl"):
        CacheSpec.model_validate({"ttl": given})


def test_a_bad_duration_says_how_to_write_one() -> None:
    with pytest.raises(ValueError, match=r"give seconds, or a number with ms, s, m, h or d"):
        parse_duration("soon")


def test_a_server_entry_with_cache_and_tools() -> None:
    settings = parse(
        "servers:\n"
        "  docs:\n"
        "    url: https://docs.example.com/mcp\n"
        "    cache: {ttl: 5m, scope: shared}\n"
        "    tools:\n"
        "      write_page: {cache: false}\n"
        "      search: {cache: {ttl: 30s}}\n"
    )
    docs = settings.servers["docs"]
    assert docs.cache == CacheSpec(ttl=300, scope="shared")
    assert docs.tools["write_page"].cache == CacheSpec(ttl=0)
    assert docs.tools["search"].cache == CacheSpec(ttl=30, scope="user")


def test_cache_true_asks_for_a_ttl() -> None:
    found = problems("servers:\n  a:\n    url: http://x/mcp\n    cache: true\n")
    assert found == [
        "c.yaml:4: servers.a.cache: give the cache's ttl: cache: {ttl: 60s} (false turns it off)"
    ]


@pytest.mark.parametrize(
    ("entry", "why"),
    [
        (
            "    url: http://x/mcp\n    headers: {Authorization: 'Bearer ${secret:TOKEN}'}\n",
            "env or headers reference ${secret:...}",
        ),
        ("    command: srv\n    sharing: per-session\n", "the server runs per-session"),
        (
            "    database: {url: 'postgresql://app:${secret:PW}@db/shop'}\n",
            "its database options use ${secret:...}",
        ),
    ],
    ids=["secret header", "per-session", "built-in secret"],
)
def test_shared_scope_is_refused_with_per_caller_credentials(entry: str, why: str) -> None:
    text = "servers:\n  a:\n" + entry + "    tools: {q: {cache: {ttl: 1m, scope: shared}}}\n"
    (problem,) = problems(text)
    assert problem.startswith(
        f"c.yaml:2: servers.a: tools.q.cache: scope 'shared' is refused because {why}"
    )
    parse(text.replace("scope: shared", "scope: user"))  # the user's own results are fine


def test_a_packs_shared_cache_with_secrets_is_a_located_problem(tmp_path: Path) -> None:
    pack = tmp_path / "p.yaml"
    pack.write_text(
        "pack: p\n"
        "connections:\n"
        "  api:\n"
        "    {type: rest, base_url: 'https://api.example.com', headers: {X-Key: '${secret:K}'}}\n"
        "cache: {ttl: 1m, scope: shared}\n"
        "tools:\n"
        "  - name: get\n"
        "    description: Get it\n"
        "    rest: {connection: api, path: /x}\n"
        "    cache:\n"
        "      ttl: 1m\n"
        "      scope: shared\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_pack(pack)
    found = [str(p) for p in caught.value.problems]
    assert [p.split(": scope")[0] for p in found] == [
        f"{pack}:5:18: cache.scope",
        f"{pack}:12:7: tools.0.cache.scope",
    ]
    assert "connection 'api' uses ${secret:...}" in found[0]


def test_environment_overrides() -> None:
    settings = parse(
        "servers:\n  a: {url: 'http://x/mcp'}\n",
        {
            "CATALYST_CACHE__MAX_ENTRIES": "5",
            "CATALYST_CACHE__COALESCE": "false",
            "CATALYST_CACHE__REDIS_URL": "redis://127.0.0.1:1/3",
            "CATALYST_SERVERS__A__CACHE__TTL": "45s",
            "CATALYST_SERVERS__A__TOOLS": "{write: {cache: false}}",
        },
    )
    assert settings.cache.max_entries == 5
    assert settings.cache.coalesce is False and Settings().cache.coalesce is True
    assert settings.cache.redis_url == "redis://127.0.0.1:1/3"
    assert settings.servers["a"].cache == CacheSpec(ttl=45)
    assert settings.servers["a"].tools["write"].cache == CacheSpec(ttl=0)
    assert "redis_url" not in repr(settings.cache)  # may carry a password


def test_a_redis_url_must_be_redis() -> None:
    (problem,) = problems("cache: {redis_url: 'http://x'}\n")
    assert "redis_url must start with redis://" in problem


async def test_max_entries_and_max_bytes_bound_the_memory(tmp_path: Path) -> None:
    served = await start_cache_gateway(
        cache_settings(tmp_path, cache={"max_entries": 2, "max_bytes": 100_000}), tmp_path
    )
    try:
        for n in range(3):
            await served.result("alice", "catalog", {"n": n})
        memory = served.gateway.cache.memory
        assert len(memory) == 2 and memory.evictions == 1
        await served.result("alice", "catalog", {"n": 0})  # evicted: the server again
        assert served.reached("catalog") == 4
    finally:
        await served.gateway.stop()
    served = await start_cache_gateway(cache_settings(tmp_path, cache={"max_bytes": 300}), tmp_path)
    try:
        for n in range(3):
            await served.result("alice", "catalog", {"n": n})
        assert 0 < served.gateway.cache.memory.bytes <= 300
        assert len(served.gateway.cache.memory) < 3
    finally:
        await served.gateway.stop()


async def test_max_entry_bytes_keeps_large_results_out(tmp_path: Path) -> None:
    served = await start_cache_gateway(
        cache_settings(tmp_path, cache={"max_entry_bytes": 20_000}), tmp_path
    )
    try:
        for _ in range(2):
            await served.result("alice", "big")  # 5000 characters: fits now
        assert served.reached("big") == 1
    finally:
        await served.gateway.stop()
