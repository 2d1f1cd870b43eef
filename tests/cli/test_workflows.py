"""``catalyst workflows list|runs|show|cancel`` on a database a gateway wrote runs to."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from catalyst_mcp.context import Identity
from catalyst_mcp.orchestration.workflows.runstate import RunState, StepState
from catalyst_mcp.orchestration.workflows.store import RunStore
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.migrate import upgrade
from catalyst_mcp.storage.models import utcnow
from tests.cli.helpers import run, write_config
from tests.orchestration.workflows.support import write

ALICE = Identity(subject="alice", kind="user")


def setup(tmp_path: Path) -> Path:
    folder = tmp_path / "workflows"
    write(
        folder,
        "good",
        "name: good\nsteps: [{id: a, tool: x__y}]\nschedules: [{cron: '0 7 * * *'}]\n",
    )
    write(folder, "bad", "name: bad\nsteps: [{id: a, tool: x__y, when: '${[}'}]\n")
    url = f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"

    async def seed() -> None:
        db = Database(url)
        await upgrade(db)
        store = RunStore(db, "test")
        done = RunState("wr_done", "good", {"n": 1}, ALICE, status="completed", output={"ok": 1})
        await store.save_run(done)
        await store.step(done, "a", StepState("completed", attempts=2, result=1), durable=True)
        live = RunState("wr_live", "good", {}, ALICE)
        await store.save_run(live, durable=True)
        stopped = RunState("wr_stopped", "good", {}, ALICE)  # cancelled in step a
        stopped.steps["a"] = StepState("running", started_at=utcnow())
        await store.step(stopped, "a", stopped.steps["a"], durable=True)
        stopped.status, stopped.finished_at = "cancelled", utcnow()
        await store.save_run(stopped, durable=True)
        await store.close()
        await db.close()

    asyncio.run(seed())
    return write_config(
        tmp_path / "c.yaml",
        {},
        storage={"url": url},
        workflows={"path": str(folder)},
        packs={"path": None},
    )


def test_list_shows_workflows_and_problems(tmp_path: Path) -> None:
    config = setup(tmp_path)
    result = run("workflows", "list", "--config", str(config), "--json")
    assert result.exit_code == 1
    listed = json.loads(result.stdout)
    assert [w["name"] for w in listed["workflows"]] == ["good"]
    assert listed["workflows"][0]["tool"] == "workflows__good"
    assert "bad.yaml:2:" in listed["problems"][0]


def test_runs_show_and_cancel(tmp_path: Path) -> None:
    config = setup(tmp_path)
    listed = json.loads(run("workflows", "runs", "--config", str(config), "--json").stdout)
    assert {r["id"]: r["status"] for r in listed} == {
        "wr_done": "completed",
        "wr_live": "running",
        "wr_stopped": "cancelled",
    }
    only = run("workflows", "runs", "--status", "running", "--config", str(config), "--json")
    assert [r["id"] for r in json.loads(only.stdout)] == ["wr_live"]
    shown = json.loads(
        run("workflows", "show", "wr_done", "--config", str(config), "--json").stdout
    )
    assert shown["output"] == {"ok": 1}
    assert shown["steps"][0]["attempts"] == 2
    table = run("workflows", "show", "wr_done", "--config", str(config))
    assert "status: completed" in table.stdout
    stopped = run("workflows", "show", "wr_stopped", "--config", str(config))
    assert "status: cancelled" in stopped.stdout
    [row] = [line.split() for line in stopped.stdout.splitlines() if line.startswith("a ")]
    assert row[1] == "cancelled" and len(row) >= 5  # with its start and end
    assert run("workflows", "cancel", "wr_live", "--config", str(config)).exit_code == 0
    again = run("workflows", "cancel", "wr_done", "--config", str(config))
    assert again.exit_code == 1 and "is not running" in again.stderr
    assert run("workflows", "show", "wr_nope", "--config", str(config)).exit_code == 1
