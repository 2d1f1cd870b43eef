"""``GET /events``: the latest events, newest first, administrators only."""

from __future__ import annotations

import asyncio
from pathlib import Path

from catalyst_mcp.app import Gateway
from catalyst_mcp.settings import Settings
from tests.api.conftest import ToolsApi, error_of, settings, start_tools_api


async def latest(api: ToolsApi, query: str = "", count: int = 1) -> dict[str, object]:
    for _ in range(500):
        answer = await api.call("GET", f"/events{query}")
        assert answer.status == 200, answer.body
        found: dict[str, object] = answer.json()
        if len(found["events"]) >= count:  # type: ignore[arg-type]
            return found
        await asyncio.sleep(0.01)
    raise AssertionError("no events")


async def test_the_latest_events(tools_api: ToolsApi) -> None:
    api = tools_api
    await api.mcp("tools/call", {"name": "fake__echo", "arguments": {"text": "secret words"}})
    await api.mcp("tools/call", {"name": "other__secret", "arguments": {}}, token="bob")
    found = await latest(api, "?type=call.*", 2)
    assert found["backend"] == "memory"
    refused, done = found["events"]  # type: ignore[misc]
    assert refused["type"] == "call.refused" and refused["data"]["subject"] == "bob"
    assert done["type"] == "call.finished" and done["data"]["tool"] == "fake__echo"
    assert done["id"].startswith("ev_") and done["time"].endswith("Z")
    assert "secret words" not in str(found)
    one = await latest(api, "?type=call.finished&limit=1")
    assert [e["type"] for e in one["events"]] == ["call.finished"]  # type: ignore[attr-defined]


async def test_bad_queries_and_who_may_ask(tools_api: ToolsApi) -> None:
    api = tools_api
    bad = await api.call("GET", "/events?type=cal.*")
    assert bad.status == 422 and "matches no event type" in str(error_of(bad))
    assert (await api.call("GET", "/events?limit=0")).status == 422
    refused = await api.call("GET", "/events", token="bob")
    assert refused.status == 403
    assert (await api.call("GET", "/events", token=None)).status == 401


async def test_off_is_404(tmp_path: Path) -> None:
    api = await start_tools_api(settings(tmp_path, events={"enabled": False}))
    try:
        answer = await api.call("GET", "/events")
        assert answer.status == 404 and "events.enabled" in error_of(answer)["message"]
    finally:
        await api.gateway.stop()


def test_events_need_no_storage() -> None:
    gateway = Gateway(
        Settings.model_validate({"packs": {"path": None}, "audit": {"enabled": False}})
    )
    route = next(r for r in gateway.api.router.routes if r.path == "/events")
    assert route.admin and not route.needs_storage


def test_the_docs_list_the_route() -> None:
    from tests.conftest import ROOT

    text = (ROOT / "docs" / "api.md").read_text()
    assert "| `GET /events?limit=&type=` |" in text
