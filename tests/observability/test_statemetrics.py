"""State read at scrape time: upstream restarts and circuit breakers, packs, audit, sessions."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.app import Gateway
from catalyst_mcp.settings import Settings
from catalyst_mcp.upstreams.breaker import CircuitBreaker
from tests.asgiclient import AsgiClient
from tests.conftest import stdio_upstream
from tests.fakes import FakeProvider
from tests.live import poll
from tests.observability.test_metrics import call, scrape, value
from tests.packs.conftest import people_pack, write_pack


@pytest.mark.subprocess
async def test_an_upstream_restart_and_its_breaker(tmp_path: Path) -> None:
    server = stdio_upstream(breaker_failures=1, restart_initial_seconds=0.1)
    settings = Settings.model_validate(
        {"servers": {"up": server}, "packs": {"path": None}, "audit": {"enabled": False}}
    )
    gateway = Gateway(settings)
    await gateway.start()
    try:
        client = AsgiClient(gateway.asgi)
        assert "result" in await call(client, "up__echo", text="before")
        before = await scrape(client)
        assert value(before, "catalyst_server_restarts_total", server="up") == 0
        assert value(before, "catalyst_server_state", server="up", state="ready") == 1
        assert value(before, "catalyst_circuit_state", server="up", state="closed") == 1
        crashed = await call(client, "up__crash")  # the process exits mid-call
        assert crashed["result"]["isError"] is True

        upstream = gateway.registry.provider("up")
        await poll(lambda: upstream.health()["status"] == "ready" and upstream.restarts == 1)
        after = await scrape(client)
    finally:
        await gateway.stop()
    assert value(after, "catalyst_server_restarts_total", server="up") == 1
    assert value(after, "catalyst_circuit_transitions_total", server="up", to="open") == 1
    assert value(after, "catalyst_circuit_transitions_total", server="up", to="closed") == 1
    assert value(after, "catalyst_server_up", server="up", kind="server") == 1
    assert value(after, "catalyst_server_tools", server="up") > 0
    calls = "catalyst_tool_calls_total"
    assert value(after, calls, server="up", tool="up__crash", outcome="tool_error") == 1


def test_breaker_transitions_are_counted() -> None:
    breaker = CircuitBreaker(failures=2, reset_seconds=0.0)
    breaker.failure()
    assert (breaker.opens, breaker.closes) == (0, 0)
    breaker.failure()  # the second failure opens it
    assert breaker.opens == 1
    assert breaker.allow()  # reset time passed: half-open, one trial
    breaker.failure()  # the trial failed: open again
    assert breaker.opens == 2
    breaker.success()
    assert (breaker.opens, breaker.closes) == (2, 1)
    breaker.success()  # already closed: no transition
    assert breaker.closes == 1


async def test_packs_audit_and_sessions(tmp_path: Path) -> None:
    sqlite_db = tmp_path / "people.db"
    with contextlib.closing(sqlite3.connect(sqlite_db)) as db:
        db.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, email TEXT)")
        db.commit()
    folder = tmp_path / "packs"
    folder.mkdir()
    pack: dict[str, Any] = people_pack(f"sqlite:///{sqlite_db}")
    write_pack(folder, "people.yaml", pack)
    settings = Settings.model_validate(
        {
            "packs": {"path": str(folder), "watch": False},
            "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/c.db"},
        }
    )
    gateway = Gateway(settings, [FakeProvider()])
    await gateway.start()
    try:
        client = AsgiClient(gateway.asgi)
        assert "result" in await call(client, "people__count")
        assert gateway.packs is not None and gateway.access.audit is not None
        await gateway.access.audit.flush()
        write_pack(folder, "people.yaml", {**pack, "tools": pack["tools"][:1]})  # a valid edit
        await gateway.packs.reload([folder / "people.yaml"])
        write_pack(folder, "people.yaml", "pack: [not, a, pack")  # an invalid one
        await gateway.packs.reload([folder / "people.yaml"])
        # the reloads' events reach the audit trail through the event bus, a moment later
        for _ in range(100):
            await gateway.access.audit.flush()
            samples = await scrape(client)
            if value(samples, "catalyst_audit_queue_depth") == 0:
                break
            await asyncio.sleep(0.02)
        ready = (await client.get("/ready")).json()
    finally:
        await gateway.stop()
    assert value(samples, "catalyst_packs_served") == 1  # the last good version
    assert value(samples, "catalyst_pack_problems") == 1
    assert value(samples, "catalyst_pack_reloads_total", outcome="ok") == 1
    assert value(samples, "catalyst_pack_reloads_total", outcome="failed") == 1
    assert value(samples, "catalyst_server_up", server="pack:people", kind="pack") == 1
    assert value(samples, "catalyst_audit_written_records_total") >= 1
    assert value(samples, "catalyst_audit_write_seconds_count") >= 1
    assert value(samples, "catalyst_audit_queue_depth") == 0
    assert value(samples, "catalyst_audit_writable") == 1
    assert value(samples, "catalyst_legacy_sessions") == 0
    assert ready["packs"] == {"status": "failed", "served": 1, "problems": 1}
    assert ready["database"] == {"status": "ready"}
