"""Runs are persisted and resumed: a run whose gateway died continues from its last completed
step on the next instance, and no completed step (unless retry_safe) runs again; a gateway
that stops hands its runs on at once; cancellation reaches a run through the store."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.context import CallContext, Identity
from catalyst_mcp.orchestration.workflows.runstate import RunState, StepState
from catalyst_mcp.orchestration.workflows.store import RunStore
from catalyst_mcp.providers import ListKind, Provider
from catalyst_mcp.storage.models import utcnow
from tests.orchestration.workflows.support import ToolBox, database_url, running_gateway, write

ALICE = Identity(subject="alice", kind="user", roles=("admin",), via="api_key")
THREE = """
name: three
steps:
  - {id: one, tool: box__echo, arguments: {text: one}}
  - {id: two, tool: box__add, arguments: {a: 1, b: 1}, retry_safe: true}
  - {id: three, tool: box__echo, arguments: {text: "${steps.one.result.text}-${steps.two.result}"}}
"""


async def test_a_run_left_by_a_dead_instance_resumes_after_its_last_step(tmp_path: Path) -> None:
    write(tmp_path / "workflows", "three", THREE)
    box = ToolBox()
    async with running_gateway(tmp_path, box) as gateway:
        assert gateway.workflows is not None
        store = gateway.workflows.store
        run = RunState("wr_orphan", "three", {}, ALICE, trigger="task", task_era="modern")
        await store.save_run(run, durable=True)
        done = StepState("completed", attempts=1, result={"text": "one"}, finished_at=utcnow())
        await store.step(run, "one", done, durable=True)
        await store.step(run, "two", StepState("running", started_at=utcnow()), durable=True)
        # its instance died: the heartbeat goes stale, and the runner's loop takes it over
        await asyncio.wait_for(gateway.workflows.runner.wait("wr_orphan", poll=0.05), 10)
        record = await store.get("wr_orphan")
        assert gateway.workflows.runner.resumed == 1
    assert record is not None and record.status == "completed"
    assert record.output == {"text": "one-2"}
    assert box.counts == {"add": 1, "echo": 1}  # step one was not called again


async def test_a_stopped_gateway_hands_its_runs_to_the_next_at_once(tmp_path: Path) -> None:
    write(tmp_path / "workflows", "held", "name: held\nsteps: [{id: g, tool: box__gate}]\n")
    first_box = ToolBox()
    async with running_gateway(
        tmp_path, first_box, settings={"workflows": {"heartbeat_seconds": 30}}
    ) as first:
        assert first.workflows is not None
        plan = first.workflows.provider.plan("held")
        assert plan is not None
        run = first.workflows.runner.new_run(plan, {}, ALICE, trigger="task")
        await first.workflows.runner.start(plan, run)
        await first_box.entered.wait()
    second_box = ToolBox()
    second_box.release.set()
    async with running_gateway(
        tmp_path, second_box, settings={"workflows": {"heartbeat_seconds": 30}}
    ) as second:
        assert second.workflows is not None
        await second.workflows.runner.wait(run.id)
        record = await second.workflows.store.get(run.id)
    assert record is not None and record.status == "completed"
    assert second.workflows.runner.resumed == 1


async def test_cancel_through_the_store_reaches_the_running_instance(tmp_path: Path) -> None:
    write(tmp_path / "workflows", "held", "name: held\nsteps: [{id: g, tool: box__gate}]\n")
    box = ToolBox()
    async with running_gateway(tmp_path, box) as gateway:
        assert gateway.workflows is not None
        runner = gateway.workflows.runner
        plan = gateway.workflows.provider.plan("held")
        assert plan is not None
        run = runner.new_run(plan, {}, ALICE, trigger="task")
        await runner.start(plan, run)
        await box.entered.wait()
        assert await gateway.workflows.store.request_cancel(run.id)  # as the CLI does
        await asyncio.wait_for(runner.wait(run.id), 5)
        record = await gateway.workflows.store.get(run.id)
        steps = await gateway.workflows.store.steps(run.id)
    assert record is not None and record.status == "cancelled"
    # the step it was in is not left "running": it ended with the run
    assert [(s.key, s.status) for s in steps] == [("g", "cancelled")]
    assert steps[0].finished_at == record.finished_at is not None


async def orphan(store: RunStore, workflow: str) -> RunState:
    """A run left by a dead instance: step ``one`` completed, ``two`` was running."""
    run = RunState("wr_orphan", workflow, {}, ALICE, trigger="task", task_era="modern")
    await store.save_run(run, durable=True)
    done = StepState("completed", attempts=1, result={"text": "one"}, finished_at=utcnow())
    await store.step(run, "one", done, durable=True)
    await store.step(run, "two", StepState("running", started_at=utcnow()), durable=True)
    return run


async def test_a_run_cancelled_while_its_instance_was_dead_is_not_resumed(
    tmp_path: Path,
) -> None:
    write(tmp_path / "workflows", "three", THREE)
    box = ToolBox()
    async with running_gateway(tmp_path, box) as gateway:
        assert gateway.workflows is not None
        store = gateway.workflows.store
        run = await orphan(store, "three")
        assert await store.request_cancel(run.id)  # the CLI, while nobody runs it
        await asyncio.wait_for(gateway.workflows.runner.wait(run.id, poll=0.05), 10)
        record = await store.get(run.id)
        steps = {s.key: s.status for s in await store.steps(run.id)}
    assert record is not None and record.status == "cancelled"
    assert box.counts == {}  # taken over only to be ended: step two was not called again
    assert steps == {"one": "completed", "two": "cancelled"}


async def test_a_resumed_run_whose_workflow_is_gone_ends_its_running_steps(
    tmp_path: Path,
) -> None:
    (tmp_path / "workflows").mkdir()
    async with running_gateway(tmp_path, ToolBox()) as gateway:
        assert gateway.workflows is not None
        store = gateway.workflows.store
        run = await orphan(store, "gone")
        await asyncio.wait_for(gateway.workflows.runner.wait(run.id, poll=0.05), 10)
        record = await store.get(run.id)
        steps = await store.steps(run.id)
    assert record is not None and record.status == "failed"
    assert record.error == {"step": None, "message": "workflow 'gone' is gone"}
    assert {s.key: s.status for s in steps} == {"one": "completed", "two": "cancelled"}
    assert all(s.finished_at is not None for s in steps)


async def test_runs_and_steps_are_recorded(tmp_path: Path) -> None:
    write(tmp_path / "workflows", "three", THREE)
    async with running_gateway(tmp_path, ToolBox()) as gateway:
        await gateway.dispatcher.direct("tools/call", {"name": "workflows__three"}, ALICE)
        assert gateway.workflows is not None
        [record] = await gateway.workflows.store.runs(workflow="three")
        steps = await gateway.workflows.store.steps(record.id)
    assert record.status == "completed" and record.subject == "alice"
    assert record.trigger == "call" and record.output == {"text": "one-2"}
    assert [(s.key, s.status) for s in steps] == [
        ("one", "completed"),
        ("two", "completed"),
        ("three", "completed"),
    ]


async def test_an_edited_file_is_served_and_a_broken_one_reported(tmp_path: Path) -> None:
    folder = tmp_path / "workflows"
    write(folder, "three", THREE)
    async with running_gateway(tmp_path, ToolBox()) as gateway:
        assert gateway.workflows is not None
        files = gateway.workflows.files
        write(folder, "added", "name: added\nsteps: [{id: a, tool: box__echo}]\n")
        write(folder, "three", "name: three\nsteps: [{id: a, tool: box__echo, when: '${[}'}]\n")
        await files.reload([folder / "added.yaml", folder / "three.yaml"])
        names = {t["name"] for t in gateway.registry.items("tools")}
        report = gateway.readiness()
    assert {"workflows__added", "workflows__three"} <= names  # three keeps its last good version
    assert report["status"] == "degraded"
    assert any(
        "three.yaml:2:" in p and "invalid expression" in p for p in report["workflow_problems"]
    )


async def test_a_trigger_starts_a_run_as_its_identity(tmp_path: Path) -> None:
    write(tmp_path / "workflows", "three", THREE)
    box = ToolBox()
    async with running_gateway(tmp_path, box) as gateway:
        assert gateway.workflows is not None
        run_id = await gateway.workflows.fire("three", {}, ALICE, trigger="event")
        await gateway.workflows.runner.wait(run_id)
        record = await gateway.workflows.store.get(run_id)
    assert record is not None and (record.status, record.trigger) == ("completed", "event")
    assert box.callers == [ALICE, ALICE, ALICE]


class Probe(Provider):
    """``probe__look``: answers which steps of the running runs another connection sees
    committed, read from ``store`` (set once the gateway is up)."""

    def __init__(self) -> None:
        super().__init__("probe", "probe")
        self.store: RunStore | None = None
        self.seen: list[dict[str, str]] = []

    def items(self, kind: ListKind) -> list[dict[str, Any]]:
        return [{"name": "look", "inputSchema": {"type": "object"}}] if kind == "tools" else []

    def health(self) -> dict[str, Any]:
        return {"name": self.name, "status": "ready"}

    async def call(self, method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        assert self.store is not None
        reader = RunStore(self.store.db, "reader")
        [running] = await reader.runs(status="running")
        self.seen.append({s.key: s.status for s in await reader.steps(running.id)})
        return {"content": [{"type": "text", "text": "looked"}]}


PROBED = """
name: probed
steps:
  - {id: one, tool: box__echo, arguments: {text: one}}
  - {id: quick, tool: box__echo, arguments: {text: quick}, retry_safe: true}
  - {id: look, tool: probe__look}
  - {id: last, tool: box__echo, arguments: {text: last}}
"""


@pytest.mark.parametrize("synchronous", ["normal", "full"])
@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
async def test_a_steps_end_is_committed_before_the_next_step_runs(
    tmp_path: Path, backend: str, synchronous: str
) -> None:
    write(tmp_path / "workflows", "probed", PROBED)
    probe = Probe()
    async with (
        database_url(backend, tmp_path) as url,
        running_gateway(
            tmp_path,
            ToolBox(),
            database=url,
            settings={"workflows": {"synchronous": synchronous}},
            providers=[probe],
        ) as gateway,
    ):
        assert gateway.workflows is not None
        store = gateway.workflows.store
        assert store.synchronous == synchronous
        probe.store = store
        # no writer behind: a reader sees only what durable writes committed
        assert store._task is not None
        store._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await store._task
        store._task = None
        before = store.batches
        result = await gateway.dispatcher.direct("tools/call", {"name": "workflows__probed"}, ALICE)
        # one commit per durable step, the last one's with the run's end; the rest rode along
        assert store.batches - before == 3
        # answered: the run's end and its last step's are committed
        reader = RunStore(gateway.workflows.store.db, "reader")
        [record] = await reader.runs(workflow="probed")
        steps = {s.key: s.status for s in await reader.steps(record.id)}
    assert result["structuredContent"] == {"text": "last"}
    # "one" (durable) was committed before "look" ran; "quick" (retry_safe) may be behind,
    # and "look" itself was at most started
    [seen] = probe.seen
    assert seen["one"] == "completed"
    assert seen.get("look", "running") == "running"
    assert record.status == "completed"
    assert steps == dict.fromkeys(["one", "quick", "look", "last"], "completed")
