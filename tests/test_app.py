"""The composition root: routes, health checks and the ASGI lifespan."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from catalyst_mcp.app import Gateway
from catalyst_mcp.settings import GatewaySettings, Settings
from tests.asgiclient import AsgiClient
from tests.fakes import (
    JSON_HEADERS,
    FakeProvider,
    initialize_request,
    modern_headers,
    modern_request,
    tool,
)


async def lifespan(gateway: Gateway, *events: str) -> list[dict[str, Any]]:
    """Drive the ASGI lifespan protocol through ``events``; return what the app sent."""
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for event in events:
        inbox.put_nowait({"type": f"lifespan.{event}"})
    sent: list[dict[str, Any]] = []

    async def send(message: Any) -> None:
        sent.append(dict(message))

    await asyncio.wait_for(gateway.asgi({"type": "lifespan"}, inbox.get, send), 5)
    return sent


async def test_health_is_always_ok(asgi_client: AsgiClient) -> None:
    response = await asgi_client.get("/health")
    assert (response.status, response.json()) == (200, {"status": "ok"})


async def test_ready_reports_starting_then_ready(
    inproc_gateway: Gateway, asgi_client: AsgiClient
) -> None:
    before = await asgi_client.get("/ready")
    assert before.status == 503
    assert before.json()["status"] == "starting"
    await inproc_gateway.start()
    after = await asgi_client.get("/ready")
    assert after.status == 200
    report = after.json()
    assert report["status"] == "ready"
    assert report["gateway"]["name"] == "catalyst"
    assert report["servers"] == [{"name": "fake", "kind": "fake", "status": "ready"}]
    assert "collisions" not in report


async def test_ready_degraded_is_503_only_when_strict() -> None:
    up, down = FakeProvider("up"), FakeProvider("down")
    down.status = "failed"
    gateway = Gateway(Settings(), [up, down])
    await gateway.start()
    client = AsgiClient(gateway.asgi)
    relaxed = await client.get("/ready")
    assert (relaxed.status, relaxed.json()["status"]) == (200, "degraded")
    strict = await client.get("/ready?strict")
    assert strict.status == 503


async def test_ready_lists_collisions() -> None:
    first = FakeProvider("a", namespace="", tools=[tool("same")])
    second = FakeProvider("b", namespace="", tools=[tool("same")])
    gateway = Gateway(Settings(), [first, second])
    report = (await AsgiClient(gateway.asgi).get("/ready")).json()
    assert report["collisions"]["tools"] == {"same": ["a", "b"]}


async def test_lifespan_starts_and_stops(
    inproc_gateway: Gateway, fake_provider: FakeProvider
) -> None:
    sent = await lifespan(inproc_gateway, "startup", "shutdown")
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert fake_provider.started and fake_provider.stopped
    assert inproc_gateway.readiness()["status"] == "stopping"


async def test_lifespan_shutdown_closes_sessions(
    inproc_gateway: Gateway, asgi_client: AsgiClient
) -> None:
    await asgi_client.post("/mcp", initialize_request(), JSON_HEADERS)
    assert len(inproc_gateway.sessions) == 1
    await lifespan(inproc_gateway, "startup", "shutdown")
    assert len(inproc_gateway.sessions) == 0


async def test_lifespan_startup_failure_is_reported() -> None:
    provider = FakeProvider()

    async def broken_start() -> None:
        raise RuntimeError("cannot start")

    provider.start = broken_start  # type: ignore[method-assign]
    sent = await lifespan(Gateway(Settings(), [provider]), "startup")
    assert sent == [{"type": "lifespan.startup.failed", "message": "cannot start"}]


async def test_custom_mcp_path() -> None:
    gateway = Gateway(Settings(gateway=GatewaySettings(mcp_path="/v1/mcp")), [FakeProvider()])
    client = AsgiClient(gateway.asgi)
    message = modern_request("tools/list")
    assert (await client.post("/v1/mcp", message, modern_headers(message))).status == 200
    assert (await client.post("/mcp", message, modern_headers(message))).status == 404


@pytest.mark.parametrize("path", ["/", "/mcp/", "/healthz", "/messages/x", "/ready/"])
async def test_unknown_paths_are_404(asgi_client: AsgiClient, path: str) -> None:
    assert (await asgi_client.get(path)).status == 404


async def test_other_scope_types_are_ignored(inproc_gateway: Gateway) -> None:
    async def receive() -> dict[str, Any]:
        raise AssertionError("not called")

    async def send(message: Any) -> None:
        raise AssertionError("not called")

    await inproc_gateway.asgi({"type": "websocket"}, receive, send)


def test_disabled_servers_are_not_built() -> None:
    settings = Settings.model_validate(
        {
            "servers": {
                "on": {"command": "x"},
                "off": {"command": "x", "enabled": False},
                "dis": {"command": "x", "disabled": True},
            }
        }
    )
    gateway = Gateway(settings)
    assert [p.name for p in gateway.registry.providers] == ["on"]
