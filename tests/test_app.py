"""The composition root: routes, health checks and the ASGI lifespan."""

from __future__ import annotations

import asyncio
from pathlib import Path
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
from tests.live import poll


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
    await gateway.stop()


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

    await inproc_gateway.asgi({"type": "webtransport"}, receive, send)


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


# ---- knowledge packs: loaded at construction, watched while running ---------------------------

NOTES_PACK = """\
pack: notes
prompts:
  - name: hello
    messages:
      - {role: user, text: Hi}
"""


def test_packs_default_to_knowledge_packs_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Gateway(Settings()).registry.providers == []  # no folder: no packs, no problem
    (tmp_path / "knowledge-packs").mkdir()
    (tmp_path / "knowledge-packs" / "notes.yaml").write_text(NOTES_PACK)
    gateway = Gateway(Settings())
    assert [p.name for p in gateway.registry.providers] == ["pack:notes"]
    assert gateway.pack_problems == []


def test_a_null_packs_path_turns_packs_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "knowledge-packs").mkdir()
    (tmp_path / "knowledge-packs" / "notes.yaml").write_text(NOTES_PACK)
    gateway = Gateway(Settings.model_validate({"packs": {"path": None}}))
    assert gateway.registry.providers == [] and gateway.packs is None


async def test_the_pack_watcher_runs_from_start_to_stop(tmp_path: Path) -> None:
    gateway = Gateway(Settings.model_validate({"packs": {"path": str(tmp_path)}}))
    assert gateway.pack_watcher is None
    await gateway.start()
    watcher = gateway.pack_watcher
    assert watcher is not None and watcher.running
    await poll(lambda: watcher.watching, what="the watcher is watching")
    (tmp_path / "notes.yaml").write_text(NOTES_PACK)
    await poll(lambda: gateway.registry.items("prompts"), what="the new pack")
    (tmp_path / "notes.yaml").write_text("pack: notes\nprompts: 3\n")
    await poll(lambda: gateway.pack_problems, what="its problem")
    assert gateway.readiness()["pack_problems"] == [
        f"{tmp_path / 'notes.yaml'}:2:1: prompts: Input should be a valid list"
    ]
    await gateway.stop()
    assert not watcher.running


async def test_watch_off_loads_the_packs_once(tmp_path: Path) -> None:
    (tmp_path / "notes.yaml").write_text(NOTES_PACK)
    settings = Settings.model_validate({"packs": {"path": str(tmp_path), "watch": False}})
    gateway = Gateway(settings)
    await gateway.start()
    assert gateway.pack_watcher is None
    assert [p.name for p in gateway.registry.providers] == ["pack:notes"]
    await gateway.stop()
