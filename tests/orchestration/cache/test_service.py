"""The result cache on the request path, in process: who gets a cached result (user scope
isolation, shared scope, an upstream's hints), for how long (an injected clock), what is never
stored, and that a hit is still authorized, rate-limited, checked by the rules and audited."""

from __future__ import annotations

from pathlib import Path

from catalyst_mcp.orchestration.cache.config import CacheSpec
from tests.fakes import modern_headers, modern_request, tool
from tests.orchestration.cache.conftest import (
    CacheGateway,
    cache_settings,
    start_cache_gateway,
    token,
)

# ---- who gets a cached result -----------------------------------------------------------------


async def test_a_user_scoped_result_never_reaches_another_user(cached: CacheGateway) -> None:
    first = await cached.result("alice", "lookup", {"id": 7})
    again = await cached.result("alice", "lookup", {"id": 7})
    assert first["structuredContent"] == {"user": "alice", "arguments": {"id": 7}, "n": 1}
    assert again["structuredContent"] == first["structuredContent"]
    assert cached.reached("lookup") == 1  # alice's second call was a hit
    bob = await cached.result("bob", "lookup", {"id": 7})
    assert bob["structuredContent"]["user"] == "bob"  # never alice's result
    assert cached.reached("lookup") == 2
    assert (await cached.result("bob", "lookup", {"id": 7}))["structuredContent"]["n"] == 2
    assert cached.reached("lookup") == 2


async def test_a_shared_result_is_served_to_every_allowed_caller(cached: CacheGateway) -> None:
    first = await cached.result("alice", "catalog", {"q": "x"})
    for user in ("bob", "carol"):
        assert (await cached.result(user, "catalog", {"q": "x"})) == first
    assert cached.reached("catalog") == 1
    assert (await cached.result("bob", "catalog", {"q": "y"}))["structuredContent"]["n"] == 2


async def test_equal_arguments_written_differently_share_a_key(cached: CacheGateway) -> None:
    await cached.result("alice", "lookup", {"a": 1, "b": {"c": 2.0, "d": [1, 0.5]}})
    await cached.result("alice", "lookup", {"b": {"d": [1.0, 0.5], "c": 2}, "a": 1.0})
    assert cached.reached("lookup") == 1
    await cached.result("alice", "lookup", {"a": 1, "b": {"c": 2, "d": [0.5, 1]}})
    assert cached.reached("lookup") == 2  # list order is part of the arguments


async def test_no_arguments_and_empty_arguments_are_one_call(cached: CacheGateway) -> None:
    await cached.result("alice", "lookup", None)
    await cached.result("alice", "lookup", {})
    assert cached.reached("lookup") == 1


async def test_an_upstream_saying_private_keeps_a_shared_tools_result_for_its_caller(
    cached: CacheGateway,
) -> None:
    private = {"scope": "private"}
    first = await cached.result("alice", "hinted", private)
    assert first["cacheScope"] == "private"
    assert (await cached.result("bob", "hinted", private))["structuredContent"]["user"] == "bob"
    assert cached.reached("hinted") == 2
    assert (await cached.result("alice", "hinted", private))["structuredContent"]["n"] == 1
    assert (await cached.result("bob", "hinted", private))["structuredContent"]["n"] == 2
    assert cached.reached("hinted") == 2


# ---- for how long ------------------------------------------------------------------------------


async def test_results_expire_after_their_ttl(cached: CacheGateway) -> None:
    await cached.result("alice", "lookup", {"id": 1})
    cached.clock.now += 59.9
    assert (await cached.result("alice", "lookup", {"id": 1}))["ttlMs"] == 100
    assert cached.reached("lookup") == 1
    cached.clock.now += 0.1
    assert (await cached.result("alice", "lookup", {"id": 1}))["structuredContent"]["n"] == 2
    assert cached.reached("lookup") == 2


async def test_an_upstreams_ttl_ms_shortens_the_time(cached: CacheGateway) -> None:
    short = {"ttl_ms": 2000}
    assert (await cached.result("alice", "hinted", short))["ttlMs"] == 2000
    cached.clock.now += 1.5
    hit = await cached.result("bob", "hinted", short)
    assert (hit["ttlMs"], hit["cacheScope"]) == (500, "public")
    cached.clock.now += 0.5
    await cached.result("bob", "hinted", short)
    assert cached.reached("hinted") == 2
    long = {"ttl_ms": 10_000_000}  # longer than the tool's ttl: the tool's wins
    assert (await cached.result("alice", "hinted", long))["ttlMs"] == 60_000


async def test_an_upstreams_ttl_ms_of_zero_or_less_is_not_stored(cached: CacheGateway) -> None:
    for ttl in (0, -5):
        for _ in range(2):
            result = await cached.result("alice", "hinted", {"ttl_ms": ttl})
            assert result["ttlMs"] == ttl  # the upstream's own answer, as it was
    assert cached.reached("hinted") == 4


# ---- what is never stored ----------------------------------------------------------------------


async def test_errors_failures_and_large_results_are_not_stored(cached: CacheGateway) -> None:
    for _ in range(2):
        assert (await cached.result("alice", "err"))["isError"] is True
        assert "ttlMs" not in await cached.result("alice", "big")
    assert cached.reached("err") == cached.reached("big") == 2
    counts = (await cached.gateway.cache.stats())["counts"]
    assert counts["not_stored"] == 4 and counts["stored"] == 0


async def test_an_upstream_that_is_down_is_not_remembered(cached: CacheGateway) -> None:
    handler = cached.db.handler
    cached.db.handler = None  # the fake's own tools: "fail" raises UpstreamUnavailable
    cached.db.lists["tools"] = [*cached.db.lists["tools"], tool("fail")]
    try:
        for _ in range(2):
            failed = await cached.modern("alice", "fail")
            assert failed["result"]["isError"] is True
    finally:
        cached.db.handler = handler
    assert cached.reached("fail") == 2


async def test_write_tools_tasks_and_opted_out_tools_are_not_cached(cached: CacheGateway) -> None:
    for _ in range(2):
        assert "ttlMs" not in await cached.result("alice", "write", {"x": 1})
        assert "ttlMs" not in await cached.result("alice", "nocache", {"x": 1})
    assert cached.reached("write") == cached.reached("nocache") == 2
    assert not cached.gateway.cache.is_cached(cached.db, "write")
    assert cached.gateway.cache.is_cached(cached.db, "lookup")


async def test_a_multi_round_trip_retry_is_neither_served_nor_stored(
    cached: CacheGateway,
) -> None:
    await cached.result("alice", "lookup", {"id": 1})
    params = {"name": "db__lookup", "arguments": {"id": 1}, "requestState": "abc"}
    message = modern_request("tools/call", params)
    headers = {**modern_headers(message), "authorization": f"Bearer {token('alice')}"}
    answer = (await cached.client.post("/mcp", message, headers)).message()
    assert answer["result"]["structuredContent"]["n"] == 2  # reached the server
    assert cached.reached("lookup") == 2


async def test_nothing_is_cached_with_the_cache_off(tmp_path: Path) -> None:
    served = await start_cache_gateway(cache_settings(tmp_path, cache={"enabled": False}), tmp_path)
    try:
        assert served.gateway.server.cache is None
        for _ in range(2):
            assert "ttlMs" not in await served.result("alice", "catalog")
        assert served.reached("catalog") == 2
    finally:
        await served.gateway.stop()


# ---- a hit is still a call ---------------------------------------------------------------------


async def test_a_hit_is_still_denied_by_rbac(cached: CacheGateway) -> None:
    await cached.result("alice", "catalog", {"q": 1})
    await cached.result("carol", "catalog", {"q": 1}, "catalog_only")
    denied = await cached.modern("carol", "lookup", {"q": 1}, "catalog_only")
    assert denied["error"]["code"] == -32003
    nobody = await cached.modern("dave", "catalog", {"q": 1}, "nobody")
    assert nobody["error"]["code"] == -32003  # the shared result is there; dave may not have it
    assert cached.reached("catalog") == 1


async def test_a_hit_is_still_denied_by_a_rule(cached: CacheGateway) -> None:
    await cached.result("alice", "catalog", {"q": "secret"})
    await cached.write_rules(
        """
- id: no-secrets
  tools: [db__catalog]
  if: arguments.q == "secret"
  action: deny
  message: not today
"""
    )
    denied = await cached.modern("bob", "catalog", {"q": "secret"})
    assert denied["error"]["message"] == "not today"
    records = await cached.audit()
    assert records[-1]["outcome"] == "denied"


async def test_result_rules_apply_to_hits(cached: CacheGateway) -> None:
    await cached.result("alice", "catalog", {"q": 1})
    await cached.write_rules(
        """
- id: hide-user
  tools: [db__catalog]
  action: transform
  redact: [result.user]
"""
    )
    hit = await cached.result("bob", "catalog", {"q": 1})
    assert hit["structuredContent"]["user"] == "[redacted]"
    assert cached.reached("catalog") == 1


async def test_a_rules_transformed_arguments_are_part_of_the_key(cached: CacheGateway) -> None:
    await cached.write_rules(
        """
- id: tenant
  tools: [db__catalog]
  if: user == "alice"
  action: transform
  set: {arguments.tenant: a}
"""
    )
    alice = await cached.result("alice", "catalog", {"q": 1})
    bob = await cached.result("bob", "catalog", {"q": 1})
    assert alice["structuredContent"]["arguments"] == {"q": 1, "tenant": "a"}
    assert bob["structuredContent"]["arguments"] == {"q": 1}  # not alice's (shared scope)
    assert cached.reached("catalog") == 2
    assert (await cached.result("alice", "catalog", {"q": 1})) == alice
    assert cached.reached("catalog") == 2


async def test_hits_are_charged_by_the_rate_limits(tmp_path: Path) -> None:
    limit = {"per_tool": {"rate_per_second": 0.001, "burst": 2}}
    settings = cache_settings(tmp_path, rate_limits=limit)
    served = await start_cache_gateway(settings, tmp_path)
    try:
        await served.result("alice", "catalog")
        await served.result("alice", "catalog")  # a hit
        limited = await served.modern("alice", "catalog")
        assert limited["error"]["code"] == -32029
        assert served.reached("catalog") == 1
        assert (await served.audit())[-1]["outcome"] == "limited"
    finally:
        await served.gateway.stop()


async def test_the_audit_trail_and_metrics_say_hit(cached: CacheGateway) -> None:
    await cached.result("alice", "lookup", {"id": 1})
    await cached.result("alice", "lookup", {"id": 1})
    await cached.result("alice", "write", {"id": 1})
    miss, hit, write = await cached.audit()
    assert miss["outcome"] == hit["outcome"] == "ok"
    assert "note" not in miss["detail"]
    assert hit["detail"]["note"] == {"cache": "hit"}
    assert "note" not in write["detail"]
    admin = {"authorization": f"Bearer {token('root', 'admin')}"}
    text = (await cached.client.get("/metrics", admin)).body.decode()
    assert 'catalyst_cache_lookups_total{layer="memory",result="hit",server="db"} 1.0' in text
    assert 'catalyst_cache_lookups_total{layer="none",result="miss",server="db"} 1.0' in text


# ---- eras and the REST API ---------------------------------------------------------------------


async def test_modern_clients_see_freshness_legacy_and_rest_do_not(cached: CacheGateway) -> None:
    modern = await cached.result("alice", "catalog", {"q": 1})
    assert (modern["ttlMs"], modern["cacheScope"]) == (60_000, "public")
    legacy = (await cached.legacy("alice", "catalog", {"q": 1}))["result"]
    assert "ttlMs" not in legacy and "cacheScope" not in legacy
    assert legacy["structuredContent"] == modern["structuredContent"]
    rest = await cached.rest("bob", "catalog", {"q": 1})
    assert rest.status == 200
    assert "ttlMs" not in rest.json() and rest.json()["structuredContent"]["n"] == 1
    assert cached.reached("catalog") == 1
    mine = await cached.result("alice", "lookup", {"q": 1})
    assert mine["cacheScope"] == "private"


# ---- invalidation ------------------------------------------------------------------------------


async def test_a_changed_tool_list_makes_older_results_unreachable(cached: CacheGateway) -> None:
    await cached.result("alice", "lookup", {"id": 1})
    await cached.result("alice", "catalog", {"id": 1})
    assert len(cached.gateway.cache.memory) == 2
    cached.db.set_items("tools", [*cached.db.lists["tools"], tool("new")])  # list_changed
    assert (await cached.result("alice", "lookup", {"id": 1}))["structuredContent"]["n"] == 2
    assert len(cached.gateway.cache.memory) == 1  # the older epoch's entries were dropped
    same = [dict(t) for t in cached.db.lists["tools"]]  # the same list, as a new object
    cached.db.set_items("tools", same)
    await cached.result("alice", "lookup", {"id": 1})
    assert cached.reached("lookup") == 2


async def test_reconfiguring_a_provider_makes_older_results_unreachable(
    cached: CacheGateway,
) -> None:
    await cached.result("alice", "catalog", {"id": 1})
    cached.gateway.cache.configure("db", CacheSpec(ttl=60, scope="shared"))
    await cached.result("alice", "catalog", {"id": 1})
    assert cached.reached("catalog") == 2


async def test_the_span_says_hit_or_miss(tmp_path: Path) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from catalyst_mcp.observability import tracing

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    served = await start_cache_gateway(cache_settings(tmp_path), tmp_path, tracer_provider=provider)
    try:
        for _ in range(2):
            await served.result("alice", "lookup", {"id": 1})
        await served.result("alice", "write", {"id": 1})
        spans = [s for s in memory.get_finished_spans() if s.name.startswith("tools/call")]
        found = [(s.attributes or {}).get("catalyst.cache") for s in spans]
        assert found == ["miss", "hit:memory", None]
    finally:
        await served.gateway.stop()
        tracing.deactivate()


async def test_a_request_left_out_by_the_sampler_marks_no_span(tmp_path: Path) -> None:
    """Not even the span current around it (an embedding application's): only the request's
    own span says ``catalyst.cache``, as with the rules' attributes."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from catalyst_mcp.observability import tracing
    from catalyst_mcp.observability.sampling import new_provider

    memory = InMemorySpanExporter()
    embedding = TracerProvider()
    embedding.add_span_processor(SimpleSpanProcessor(memory))
    settings = cache_settings(tmp_path)
    served = await start_cache_gateway(settings, tmp_path, tracer_provider=new_provider(0.0))
    try:
        with embedding.get_tracer("app").start_as_current_span("the application's"):
            for _ in range(2):
                await served.result("alice", "lookup", {"id": 1})
        (span,) = memory.get_finished_spans()
        assert "catalyst.cache" not in (span.attributes or {})
        assert served.gateway.cache.counts["hits_memory"] == 1  # the lookups happened
    finally:
        await served.gateway.stop()
        tracing.deactivate()


async def test_a_result_the_server_asked_the_client_for_is_not_stored() -> None:
    from catalyst_mcp.context import CallContext, Identity
    from catalyst_mcp.orchestration.cache.config import CacheSettings
    from catalyst_mcp.orchestration.cache.service import ResultCache
    from tests.fakes import FakeProvider

    cache = ResultCache(CacheSettings())
    cache.configure("db", CacheSpec(ttl=60))
    provider = FakeProvider("db", tools=[tool("greet")])
    answers = iter(["Ann", "Bo"])

    async def client(method: str, params: dict) -> dict:
        return {"action": "accept", "content": {"name": next(answers)}}

    async def relay(provider: object, name: str, params: dict, ctx: CallContext) -> dict:
        assert ctx.ask is not None
        answer = await ctx.ask("elicitation/create", {"message": "name?"})
        return {"content": [{"type": "text", "text": f"hello {answer['content']['name']}"}]}

    ctx = CallContext("legacy", "2025-11-25", identity=Identity("alice", "user"), ask=client)
    first = await cache.call(provider, "greet", {"name": "greet"}, ctx, relay)
    second = await cache.call(provider, "greet", {"name": "greet"}, ctx, relay)
    assert [first["content"][0]["text"], second["content"][0]["text"]] == ["hello Ann", "hello Bo"]
    assert ctx.ask is client  # given back
    assert cache.counts["not_stored"] == 2 and len(cache.memory) == 0
