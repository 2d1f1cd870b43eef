"""``GET /metrics``: known traffic, then the counts read back with prometheus-client's parser."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.openmetrics.parser import (
    text_string_to_metric_families as openmetrics_families,
)
from prometheus_client.parser import text_string_to_metric_families

from catalyst_mcp.app import Gateway
from catalyst_mcp.observability.metrics import LATENCY_BUCKETS, Metrics
from catalyst_mcp.settings import Settings
from tests.asgiclient import AsgiClient
from tests.fakes import (
    JSON_HEADERS,
    FakeProvider,
    initialize_request,
    legacy_request,
    modern_headers,
    modern_request,
    tool,
)

SECRET = "an-hs256-secret-of-at-least-32-bytes!!"
RESOURCE = "http://testserver/mcp"
SCRAPE_TOKEN = "scrape-canary-7d1e"


def parse(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape, by (name, sorted labels)."""
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(client: AsgiClient, headers: dict[str, str] | None = None) -> dict[Any, float]:
    response = await client.get("/metrics", headers)
    assert response.status == 200, response.body
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return parse(response.body.decode())


async def call(
    client: AsgiClient, name: str, headers: dict[str, str] | None = None, **arguments: Any
) -> dict[str, Any]:
    message = modern_request("tools/call", {"name": name, "arguments": arguments})
    response = await client.post("/mcp", message, {**modern_headers(message), **(headers or {})})
    return response.message()


@pytest_asyncio.fixture
async def gateway() -> AsyncIterator[Gateway]:
    settings = Settings.model_validate({"packs": {"path": None}, "audit": {"enabled": False}})
    gw = Gateway(settings, [FakeProvider()])
    await gw.start()
    yield gw
    await gw.stop()


async def test_calls_are_counted_by_server_tool_and_outcome(gateway: Gateway) -> None:
    client = AsgiClient(gateway.asgi)
    for _ in range(3):
        assert "result" in await call(client, "fake__echo", text="hi")
    assert (await call(client, "fake__fail"))["result"]["isError"] is True  # the server is down
    assert "error" in await call(client, "fake__boom")  # a bug: internal error
    assert "error" in await call(client, "fake__nope")  # no such tool: no tool label made up
    listing = modern_request("tools/list")
    await client.post("/mcp", listing, modern_headers(listing))

    samples = await scrape(client)
    calls = "catalyst_tool_calls_total"
    assert value(samples, calls, server="fake", tool="fake__echo", outcome="ok") == 3
    assert value(samples, calls, server="fake", tool="fake__fail", outcome="tool_error") == 1
    assert value(samples, calls, server="fake", tool="fake__boom", outcome="error") == 1
    assert not [k for k in samples if ("tool", "fake__nope") in k[1]]
    assert value(samples, calls, server="fake", tool="other", outcome="error") == 1
    seconds = "catalyst_tool_call_duration_seconds_count"
    assert value(samples, seconds, server="fake", tool="fake__echo") == 3
    requests = "catalyst_requests_total"
    modern = {"era": "modern", "transport": "streamable-http"}
    assert value(samples, requests, method="tools/call", outcome="ok", **modern) == 3
    assert value(samples, requests, method="tools/call", outcome="tool_error", **modern) == 1
    assert value(samples, requests, method="tools/call", outcome="error", **modern) == 2
    assert value(samples, requests, method="tools/list", outcome="ok", **modern) == 1
    assert value(samples, "catalyst_calls_in_flight", server="fake") == 0
    assert value(samples, "catalyst_server_up", server="fake", kind="server") == 1
    assert value(samples, "catalyst_ready") == 1
    assert value(samples, "catalyst_info", version=__import__("catalyst_mcp").__version__) == 1
    assert value(samples, "process_cpu_seconds_total") > 0  # the process collector


async def test_legacy_sessions_and_their_requests(gateway: Gateway) -> None:
    client = AsgiClient(gateway.asgi)
    opened = await client.post("/mcp", initialize_request(), JSON_HEADERS)
    session = {**JSON_HEADERS, "mcp-session-id": opened.headers["mcp-session-id"]}
    await client.post("/mcp", legacy_request("ping"), session)
    await client.post(
        "/mcp", legacy_request("tools/call", {"name": "fake__echo", "arguments": {}}), session
    )
    samples = await scrape(client)
    legacy = {"era": "legacy", "transport": "streamable-http", "outcome": "ok"}
    for method in ("initialize", "ping", "tools/call"):
        assert value(samples, "catalyst_requests_total", method=method, **legacy) == 1, method
    assert value(samples, "catalyst_legacy_sessions") == 1


async def test_openmetrics_when_asked(gateway: Gateway) -> None:
    client = AsgiClient(gateway.asgi)
    await call(client, "fake__echo")
    response = await client.get("/metrics", {"accept": "application/openmetrics-text"})
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    text = response.body.decode()
    assert text.endswith("# EOF\n")
    names = {f.name for f in openmetrics_families(text)}
    assert {"catalyst_tool_calls", "catalyst_requests", "catalyst_server_up"} <= names


def test_tool_labels_are_capped() -> None:
    metrics = Metrics(max_tool_labels=2)
    for name in ("a", "b", "c", "d", "a"):
        metrics.tool_call("srv", name, "ok", time.perf_counter())
    metrics.request("made/up", "modern", "stdio", "error", 0.001)
    samples = parse(__import__("prometheus_client").generate_latest(metrics.registry).decode())
    calls = "catalyst_tool_calls_total"
    assert value(samples, calls, server="srv", tool="a", outcome="ok") == 2
    assert value(samples, calls, server="srv", tool="b", outcome="ok") == 1
    assert value(samples, calls, server="srv", tool="other", outcome="ok") == 2
    tools = {dict(k[1]).get("tool") for k in samples if k[0] == calls}
    assert tools == {"a", "b", "other"}
    requests = "catalyst_requests_total"
    assert (
        value(samples, requests, method="other", era="modern", transport="stdio", outcome="error")
        == 1
    )


def test_what_is_tallied_reads_as_prometheus_clients_own_counting() -> None:
    """The request path counts in plain tallies, written into prometheus-client's values when
    the registry is read: a scrape shows what ``inc``/``observe`` one by one would have."""
    metrics = Metrics()
    reference = CollectorRegistry(auto_describe=False)
    requests = Counter(
        "catalyst_requests", "-", ["method", "era", "transport", "outcome"], registry=reference
    )
    timed = Histogram(
        "catalyst_request_duration_seconds",
        "-",
        ["method", "transport"],
        buckets=LATENCY_BUCKETS,
        registry=reference,
    )
    calls = Counter("catalyst_tool_calls", "-", ["server", "tool", "outcome"], registry=reference)
    call_seconds = Histogram(
        "catalyst_tool_call_duration_seconds",
        "-",
        ["server", "tool"],
        buckets=LATENCY_BUCKETS,
        registry=reference,
    )

    def counted() -> tuple[dict[Any, float], dict[Any, float]]:
        ours = parse(generate_latest(metrics.registry).decode())
        theirs = parse(generate_latest(reference).decode())
        keep = ("catalyst_requests", "catalyst_request_", "catalyst_tool_call")
        ours = {k: v for k, v in ours.items() if k[0].startswith(keep)}
        return (
            {k: v for k, v in ours.items() if not k[0].endswith("_created")},
            {k: v for k, v in theirs.items() if not k[0].endswith("_created")},
        )

    # bucket bounds exactly, just under and over them, 0, and beyond the last (+Inf)
    durations = [0.0, 0.0005, 0.00049, 0.00051, 0.001, 0.0031, 0.7, 60.0, 61.0, 1e6]
    for i, seconds in enumerate(durations):
        outcome = ("ok", "error", "tool_error")[i % 3]
        metrics.request("tools/call", "modern", "stdio", outcome, seconds)
        requests.labels("tools/call", "modern", "stdio", outcome).inc()
        timed.labels("tools/call", "stdio").observe(seconds)
        metrics.count("ping", "legacy", "stdio", "ok")
        requests.labels("ping", "legacy", "stdio", "ok").inc()
        timed.labels("ping", "stdio")  # bound (empty) as the gateway binds it
    for seconds in (0.0002, 0.003, 0.2, 3.0, 100.0):  # mid-bucket: the clock adds microseconds
        metrics.tool_call("srv", "t", "ok", time.perf_counter() - seconds)
        calls.labels("srv", "t", "ok").inc()
        call_seconds.labels("srv", "t").observe(seconds)
    ours, theirs = counted()
    assert ours.keys() == theirs.keys() and len(ours) > 40
    for key, expected in theirs.items():
        assert ours[key] == pytest.approx(expected, rel=1e-3), key
    metrics.request("tools/call", "modern", "stdio", "ok", 0.002)  # read again after more
    requests.labels("tools/call", "modern", "stdio", "ok").inc()
    timed.labels("tools/call", "stdio").observe(0.002)
    ours, theirs = counted()
    assert ours == pytest.approx(theirs, rel=1e-3)


async def test_metrics_off_is_404_and_counts_nothing() -> None:
    settings = Settings.model_validate({"packs": {"path": None}, "metrics": {"enabled": False}})
    gw = Gateway(settings, [FakeProvider()])
    assert gw.telemetry.metrics is None and gw.server.metrics is None
    client = AsgiClient(gw.asgi)
    assert (await client.get("/metrics")).status == 404


# ---- with auth on: refusals, failed authentications, who may scrape --------------------------


def token(subject: str, roles: list[str], expired: bool = False) -> str:
    exp = int(time.time()) + (-3600 if expired else 60)
    claims = {"sub": subject, "aud": RESOURCE, "exp": exp, "roles": roles}
    return jwt.encode(claims, SECRET, algorithm="HS256")


@pytest_asyncio.fixture
async def secured(tmp_path: Path) -> AsyncIterator[Gateway]:
    settings = Settings.model_validate(
        {
            "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/c.db"},
            "auth": {"enabled": True, "resource_url": RESOURCE, "jwt": {"hs256_secret": SECRET}},
            "rbac": {
                "roles": {
                    "user": {
                        "rules": [{"effect": "allow", "kinds": ["tool"], "match": ["fake__echo"]}]
                    }
                }
            },
            "rate_limits": {"per_tool": {"rate_per_second": 0.001, "burst": 2}},
            "metrics": {"scrape_token": SCRAPE_TOKEN},
            "packs": {"path": None},
        }
    )
    gw = Gateway(settings, [FakeProvider(tools=[tool("echo"), tool("secret")])])
    await gw.start()
    yield gw
    await gw.stop()


async def test_refusals_and_failed_authentications(secured: Gateway) -> None:
    client = AsgiClient(secured.asgi)
    user = {"authorization": f"Bearer {token('ada', ['user'])}"}
    assert "result" in await call(client, "fake__echo", user)
    assert "result" in await call(client, "fake__echo", user)
    limited = await call(client, "fake__echo", user)  # the burst of 2 is spent
    assert limited["error"]["code"] == -32029
    denied = await call(client, "fake__secret", user)  # listed, but the role does not allow it
    assert denied["error"]["code"] == -32003
    listing = modern_request("tools/list")
    for headers in (
        {},
        {"authorization": "Basic abc"},
        {"authorization": "Bearer cat_notakey_0000000000000000000000"},
        {"authorization": f"Bearer {token('ada', ['user'], expired=True)}"},
        {"authorization": "Bearer not.a.jwt"},
    ):
        response = await client.post("/mcp", listing, {**modern_headers(listing), **headers})
        assert response.status == 401

    scraper = {"authorization": f"Bearer {SCRAPE_TOKEN}"}
    samples = await scrape(client, scraper)
    calls = "catalyst_tool_calls_total"
    assert value(samples, calls, server="fake", tool="fake__echo", outcome="ok") == 2
    assert value(samples, calls, server="fake", tool="fake__echo", outcome="refused") == 1
    assert value(samples, calls, server="fake", tool="fake__secret", outcome="refused") == 1
    requests = "catalyst_requests_total"
    modern = {"method": "tools/call", "era": "modern", "transport": "streamable-http"}
    assert value(samples, requests, outcome="refused", **modern) == 2
    refusals = "catalyst_refusals_total"
    assert value(samples, refusals, reason="rate_limited") == 1
    assert value(samples, refusals, reason="denied") == 1
    assert value(samples, refusals, reason="unauthenticated") == 5
    failures = "catalyst_auth_failures_total"
    assert value(samples, failures, reason="missing") == 1
    assert value(samples, failures, reason="malformed") == 1
    assert value(samples, failures, reason="api_key") == 1  # no such key
    assert value(samples, failures, reason="token_expired") == 1
    assert value(samples, failures, reason="token") == 1
    assert value(samples, "catalyst_audit_written_records_total") >= 0  # the family exists


@pytest.mark.parametrize(
    ("who", "status"),
    [
        (None, 401),
        ("Bearer wrong-token", 401),
        (f"Bearer {SCRAPE_TOKEN}", 200),
        ("admin", 200),
        ("user", 401),
    ],
    ids=["nothing", "wrong-token", "scrape-token", "admin", "non-admin"],
)
async def test_who_may_scrape_with_auth_on(secured: Gateway, who: str | None, status: int) -> None:
    headers = {}
    if who in ("admin", "user"):
        headers["authorization"] = f"Bearer {token('someone', [who])}"
    elif who is not None:
        headers["authorization"] = who
    response = await AsgiClient(secured.asgi).get("/metrics", headers)
    assert response.status == status
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert b"catalyst_" not in response.body
