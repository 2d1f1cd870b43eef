"""The supervisor with stand-in workers (tests/workers/fake_worker.py, real processes that start
in milliseconds): configuration changes relayed to the other workers, a crashed worker restarted,
workers that cannot start reported with their reason, and a stop that stops them all."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.workers.listeners import Listeners
from catalyst_mcp.workers.supervisor import Supervisor, WorkersFailed
from tests.conftest import ROOT
from tests.live import poll

pytestmark = [pytest.mark.subprocess, pytest.mark.network]


def supervisor(tmp_path: Path, count: int, **fake: Any) -> Supervisor:
    listeners = Listeners("127.0.0.1", 0)
    spec = {"fake": {"record": str(tmp_path), **fake}}
    return Supervisor(
        count,
        listeners,
        spec,
        environ={"PYTHONPATH": str(ROOT)},
        module="tests.workers.fake_worker",
    )


@contextlib.asynccontextmanager
async def running(sup: Supervisor) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(sup.run())
    try:
        await poll(
            lambda: task.done() or all(w.ready.is_set() for w in sup.workers),
            what="workers ready",
        )
        yield task
    finally:
        sup.stop()
        await asyncio.wait_for(task, 30)
        sup.listeners.close()


def recorded(tmp_path: Path, index: int) -> list[dict[str, Any]]:
    path = tmp_path / f"{index}.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_a_change_made_on_one_worker_reaches_every_other(tmp_path: Path) -> None:
    sup = supervisor(tmp_path, 3, publish=[1])
    async with running(sup):
        (tmp_path / "go").touch()
        await poll(lambda: recorded(tmp_path, 2) and recorded(tmp_path, 3), what="relayed")
        change = {"event": "config", "a": "admin.roles.put", "p": {"name": "r"}, "by": "ada"}
        assert recorded(tmp_path, 2) == recorded(tmp_path, 3) == [change]
        assert recorded(tmp_path, 1) == []  # not echoed to the worker that made it
        assert sup.relayed == 1


async def test_a_worker_that_exits_is_restarted(tmp_path: Path) -> None:
    sup = supervisor(tmp_path, 2, crash_once=True)
    async with running(sup) as task:
        await poll(lambda: all(w.restarts == 1 for w in sup.workers), what="restarts")
        await poll(lambda: all(w.ready.is_set() for w in sup.workers), what="ready again")
        for worker in sup.workers:  # each crashed once (its pid in the marker), now a new one
            crashed = int((tmp_path / f"crashed-{worker.index}").read_text())
            assert worker.pid is not None and worker.pid != crashed
        assert not task.done()
    for worker in sup.workers:  # stopped: every process gone
        assert worker.process is not None and worker.process.returncode == 0


async def test_workers_that_cannot_start_are_reported_with_their_reason(tmp_path: Path) -> None:
    sup = supervisor(tmp_path, 2, fail="the database at db:5432 refused the connection")
    with pytest.raises(WorkersFailed) as info:
        await asyncio.wait_for(sup.run(), 30)
    sup.listeners.close()
    assert str(info.value) == (
        "the workers could not start:\nworker 1: the database at db:5432 refused the connection"
    )
    assert info.value.exit_code == 3
    assert sup.workers[1].process is None  # the first starts alone: the others never did


async def test_stop_ends_every_worker_and_reports_their_exit(tmp_path: Path) -> None:
    exited: list[int] = []
    sup = supervisor(tmp_path, 2)
    sup.on_exit = exited.append
    async with running(sup):
        pids = sup.pids
        assert len(pids) == 2 and all(os.path.exists(f"/proc/{pid}") for pid in pids)
    assert sorted(exited) == sorted(pids)
