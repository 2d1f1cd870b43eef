"""Workflow triggers (``on:``): checked at load with file:line, a run per matching event, once
per event however often it is delivered, and no loops."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from catalyst_mcp.context import Identity
from catalyst_mcp.errors import ConfigError
from catalyst_mcp.orchestration.events.triggers import TriggerConsumer, claim_key
from catalyst_mcp.orchestration.events.types import (
    CallFinished,
    Envelope,
    PackReloaded,
    WorkflowRunFinished,
)
from catalyst_mcp.orchestration.workflows.loader import load_workflow
from tests.orchestration.events.support import wait_until
from tests.orchestration.workflows.support import ToolBox, running_gateway, write

ALICE = Identity(subject="alice", kind="user", roles=("admin",), via="api_key")
UNDO_ON_ECHO = """
name: undo-echo
steps:
  - id: undo
    tool: box__undo
    arguments: {what: "${inputs.what}"}
on:
  - event: call.finished
    when: "event.data.tool == 'box__echo' && event.data.outcome == 'ok'"
    inputs: {what: "${event.data.tool} by ${event.data.subject}"}
    as: ops-bot
    roles: [admin]
"""


# ---- loading ---------------------------------------------------------------------------------


def test_on_is_read_as_triggers(tmp_path: Path) -> None:
    plan = load_workflow(write(tmp_path, "w", UNDO_ON_ECHO))
    [trigger] = plan.triggers
    assert trigger.types == {"call.finished"} and trigger.index == 0
    assert trigger.as_user == "ops-bot" and trigger.roles == ("admin",)
    assert plan.workflow.on[0].event == "call.finished"


def test_trigger_problems_are_located(tmp_path: Path) -> None:
    file = write(
        tmp_path,
        "w",
        """
        name: w
        steps:
          - id: a
            tool: box__echo
        on:
          - event: upstream.changed
          - event: "call.*"
            when: "steps.a.result"
          - event: pack.reloaded
            inputs: {x: "${event.data.[}"}
          - evnt: call.finished
        """,
    )
    with pytest.raises(ConfigError) as caught:
        load_workflow(file)
    found = [str(p) for p in caught.value.problems]
    assert all(p.startswith(f"{file}:11:5: on.3.") for p in found), found
    assert any("on.3.evnt: unknown key" in p for p in found)
    file.write_text(file.read_text().replace("  - evnt: call.finished\n", ""))
    with pytest.raises(ConfigError) as caught:
        load_workflow(file)
    found = [str(p) for p in caught.value.problems]
    assert any(
        p.startswith(f"{file}:6:") and "'upstream.changed' matches no event type" in p
        for p in found
    ), found
    assert any(p.startswith(f"{file}:8:") and "a trigger sees only the event" in p for p in found)
    assert any(p.startswith(f"{file}:10:") and "invalid expression" in p for p in found), found


# ---- running ---------------------------------------------------------------------------------


async def test_an_event_starts_a_run_as_the_trigger_says(tmp_path: Path) -> None:
    write(tmp_path / "workflows", "undo-echo", UNDO_ON_ECHO)
    box = ToolBox()
    async with running_gateway(tmp_path, box) as gateway:
        call = gateway.dispatcher.direct
        await call("tools/call", {"name": "box__echo", "arguments": {"text": "x"}}, ALICE)
        await call("tools/call", {"name": "box__add", "arguments": {"a": 1, "b": 2}}, ALICE)
        await wait_until(lambda: box.undone == ["box__echo by alice"])
        runner = gateway.workflows.runner if gateway.workflows else None
        assert runner is not None
        await wait_until(lambda: not runner.local)
        runs = await runner.store.runs()
        [run] = [r for r in runs if r.workflow == "undo-echo"]
        assert run.trigger == "event" and run.status == "completed"
        assert run.subject == "ops-bot"
        assert box.callers[-1] == Identity("ops-bot", "service", ("admin",), None, "event")
        await asyncio.sleep(0.2)  # its own step's call.finished started nothing more
        assert box.undone == ["box__echo by alice"]


async def test_an_event_delivered_twice_starts_one_run(tmp_path: Path) -> None:
    write(tmp_path / "workflows", "undo-echo", UNDO_ON_ECHO)
    box = ToolBox()
    async with running_gateway(tmp_path, box, settings={"events": {"enabled": False}}) as gw:
        assert gw.workflows is not None and gw.events is None
        consumer = TriggerConsumer(gw.workflows)
        assert consumer.accepts("call.finished") and not consumer.accepts("call.refused")
        event = CallFinished("box", "box__echo", "ok", "bob", "user", "mcp", 1.0)
        envelope = Envelope.wrap(event, "ev_once", 1.7e9, "i1")
        await consumer.handle(envelope)
        await consumer.handle(envelope)  # a redelivery, or another instance
        await wait_until(lambda: box.undone == ["box__echo by bob"])
        assert len(consumer.started) == 1
        assert claim_key("ev_once", "undo-echo", 0) == "event:ev_once:undo-echo#0"
        # a false condition starts nothing
        other = CallFinished("box", "box__add", "ok", "bob", "user", "mcp", 1.0)
        await consumer.handle(Envelope.wrap(other, "ev_2", 1.7e9, "i1"))
        assert len(consumer.started) == 1


async def test_no_loops(tmp_path: Path) -> None:
    write(
        tmp_path / "workflows",
        "after",
        """
        name: after
        steps:
          - id: undo
            tool: box__undo
            arguments: {what: "${inputs.what}"}
        on:
          - event: workflow.run_finished
            inputs: {what: "${event.data.workflow}"}
            roles: [admin]
        """,
    )
    box = ToolBox()
    async with running_gateway(tmp_path, box, settings={"events": {"enabled": False}}) as gw:
        assert gw.workflows is not None
        consumer = TriggerConsumer(gw.workflows)

        def finished(workflow: str, trigger: str, event_id: str) -> Envelope:
            event = WorkflowRunFinished(workflow, "wr_1", "completed", trigger, "x", 1, None, None)
            return Envelope.wrap(event, event_id, 1.7e9, "i1")

        await consumer.handle(finished("after", "call", "ev_1"))  # its own run: no
        await consumer.handle(finished("report", "event", "ev_2"))  # started by an event: no
        await consumer.handle(finished("report", "schedule", "ev_3"))  # yes
        await wait_until(lambda: box.undone == ["report"])
        assert len(consumer.started) == 1


async def test_edited_triggers_apply_at_once(tmp_path: Path) -> None:
    folder = tmp_path / "workflows"
    write(folder, "undo-echo", UNDO_ON_ECHO)
    async with running_gateway(tmp_path, ToolBox()) as gw:
        assert gw.workflows is not None
        consumer = TriggerConsumer(gw.workflows)
        assert consumer.accepts("call.finished") and not consumer.accepts("pack.reloaded")
        write(folder, "undo-echo", UNDO_ON_ECHO.replace("call.finished", "pack.*"))
        await gw.workflows.files.rescan()
        assert consumer.accepts(PackReloaded.TYPE) and not consumer.accepts("call.finished")
