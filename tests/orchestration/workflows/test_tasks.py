"""Workflows as MCP tasks, in both eras: created durably, read back with the result inlined
(modern) or through tasks/result (legacy), cancelled, visible to their creator only, and gated
on the client declaring the extension; RBAC at every step of a run."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.app import Gateway
from catalyst_mcp.context import CallContext, Identity
from catalyst_mcp.errors import InvalidParams, MethodNotFound, MissingCapability
from catalyst_mcp.orchestration.workflows.tasks import TASKS_EXTENSION
from tests.orchestration.workflows.support import ToolBox, running_gateway, write

ALICE = Identity(subject="alice", kind="user", roles=("admin",), via="api_key")
MALLORY = Identity(subject="mallory", kind="user", roles=("admin",), via="api_key")


def modern(method: str, identity: Identity = ALICE, *, tasks: bool = True) -> CallContext:
    caps: dict[str, Any] = {"extensions": {TASKS_EXTENSION: {}}} if tasks else {}
    return CallContext(
        era="modern",
        protocol_version="2026-07-28",
        method=method,
        client_capabilities=caps,
        identity=identity,
    )


def legacy(method: str, identity: Identity = ALICE) -> CallContext:
    return CallContext(
        era="legacy", protocol_version="2025-11-25", method=method, identity=identity
    )


HELD = """
name: held
steps: [{id: g, tool: box__gate}, {id: e, tool: box__echo, arguments: {text: done}}]
"""


async def _poll(gateway: Gateway, task_id: str, ctx_of: Any, until: set[str]) -> dict[str, Any]:
    for _ in range(200):
        got = await gateway.server.handle("tasks/get", {"taskId": task_id}, ctx_of("tasks/get"))
        if got["status"] in until:
            return got
        await asyncio.sleep(0.02)
    raise AssertionError(f"task {task_id} never reached {until}")


async def test_a_modern_client_gets_a_task_and_its_inlined_result(tmp_path: Path) -> None:
    box = ToolBox()
    write(tmp_path / "workflows", "held", HELD)
    async with running_gateway(tmp_path, box) as gateway:
        created = await gateway.server.handle(
            "tools/call", {"name": "workflows__held", "arguments": {}}, modern("tools/call")
        )
        assert created["resultType"] == "task"
        assert created["status"] == "working" and created["ttlMs"] > 0
        assert "result" not in created and "requestState" not in created
        task_id = created["taskId"]
        working = await gateway.server.handle("tasks/get", {"taskId": task_id}, modern("tasks/get"))
        assert working["status"] == "working" and "result" not in working
        await box.entered.wait()
        box.release.set()
        done = await _poll(gateway, task_id, modern, {"completed"})
    assert done["result"]["structuredContent"] == {"text": "done"}
    assert done["resultType"] == "complete"


async def test_a_task_is_visible_to_its_creator_only(tmp_path: Path) -> None:
    write(tmp_path / "workflows", "held", HELD)
    async with running_gateway(tmp_path, ToolBox()) as gateway:
        created = await gateway.server.handle(
            "tools/call", {"name": "workflows__held"}, modern("tools/call")
        )
        with pytest.raises(InvalidParams, match="Unknown task"):
            await gateway.server.handle(
                "tasks/get", {"taskId": created["taskId"]}, modern("tasks/get", MALLORY)
            )
        with pytest.raises(InvalidParams, match="Unknown task"):
            await gateway.server.handle(
                "tasks/cancel", {"taskId": created["taskId"]}, modern("tasks/cancel", MALLORY)
            )
        ack = await gateway.server.handle(
            "tasks/cancel", {"taskId": created["taskId"]}, modern("tasks/cancel")
        )
        assert ack == {"resultType": "complete", "_meta": ack["_meta"]}
        cancelled = await _poll(gateway, created["taskId"], modern, {"cancelled"})
    assert "result" not in cancelled


async def test_without_the_extension_runs_are_answered_at_once(tmp_path: Path) -> None:
    write(
        tmp_path / "workflows",
        "quick",
        "name: quick\nsteps: [{id: e, tool: box__echo, arguments: {text: q}}]\n",
    )
    write(
        tmp_path / "workflows",
        "only",
        "name: only\ntask: required\nsteps: [{id: e, tool: box__echo}]\n",
    )
    async with running_gateway(tmp_path, ToolBox()) as gateway:
        plain = modern("tools/call", tasks=False)
        result = await gateway.server.handle("tools/call", {"name": "workflows__quick"}, plain)
        assert result["structuredContent"] == {"text": "q"}
        with pytest.raises(MissingCapability) as refused:
            await gateway.server.handle("tools/call", {"name": "workflows__only"}, plain)
        assert refused.value.data == {"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}}
        with pytest.raises(MissingCapability):
            await gateway.server.handle(
                "tasks/get", {"taskId": "wr_x"}, modern("tasks/get", tasks=False)
            )
        with pytest.raises(MethodNotFound):
            await gateway.server.handle("tasks/list", {}, modern("tasks/list"))


async def test_legacy_tasks_get_result_list_and_cancel(tmp_path: Path) -> None:
    box = ToolBox()
    write(tmp_path / "workflows", "held", HELD)
    async with running_gateway(tmp_path, box) as gateway:
        assert "tasks" in gateway.server.initialize_result("2025-11-25")["capabilities"]
        assert "tasks" not in gateway.server.initialize_result("2025-06-18")["capabilities"]
        created = await gateway.server.handle(
            "tools/call",
            {"name": "workflows__held", "task": {"ttl": 60000}},
            legacy("tools/call"),
        )
        task = created["task"]
        assert task["status"] == "working" and task["ttl"] > 0 and "ttlMs" not in task
        listed = await gateway.server.handle("tasks/list", {}, legacy("tasks/list"))
        assert [t["taskId"] for t in listed["tasks"]] == [task["taskId"]]
        waiting = asyncio.create_task(
            gateway.server.handle(
                "tasks/result", {"taskId": task["taskId"]}, legacy("tasks/result")
            )
        )
        await box.entered.wait()
        assert not waiting.done()
        box.release.set()
        result = await waiting
        assert result["structuredContent"] == {"text": "done"}
        assert result["_meta"]["io.modelcontextprotocol/related-task"] == {"taskId": task["taskId"]}
        with pytest.raises(InvalidParams, match="already ended"):
            await gateway.server.handle(
                "tasks/cancel", {"taskId": task["taskId"]}, legacy("tasks/cancel")
            )


async def test_a_task_survives_on_another_instance_of_the_same_database(tmp_path: Path) -> None:
    write(
        tmp_path / "workflows",
        "quick",
        "name: quick\nsteps: [{id: e, tool: box__echo, arguments: {text: q}}]\n",
    )
    async with running_gateway(tmp_path, ToolBox()) as first:
        created = await first.server.handle(
            "tools/call", {"name": "workflows__quick"}, modern("tools/call")
        )
        await _poll(first, created["taskId"], modern, {"completed"})
    async with running_gateway(tmp_path, ToolBox()) as second:
        got = await second.server.handle(
            "tasks/get", {"taskId": created["taskId"]}, modern("tasks/get")
        )
    assert got["status"] == "completed"
    assert got["result"]["structuredContent"] == {"text": "q"}


async def test_every_step_is_authorized_for_the_caller(tmp_path: Path) -> None:
    box = ToolBox()
    write(
        tmp_path / "workflows",
        "mixed",
        """
        name: mixed
        steps:
          - {id: fine, tool: box__echo, arguments: {text: ok}}
          - {id: secret, tool: box__add, arguments: {a: 1, b: 2}}
        """,
    )
    rbac = {
        "default": "deny",
        "roles": {
            "runner": {"rules": [{"effect": "allow", "match": ["workflows__*", "box__echo"]}]}
        },
    }
    bob = Identity(subject="bob", kind="user", roles=("runner",), via="api_key")
    async with running_gateway(tmp_path, box, settings={"rbac": rbac}) as gateway:
        result = await gateway.dispatcher.direct(
            "tools/call", {"name": "workflows__mixed", "arguments": {}}, bob
        )
    assert result["isError"] is True
    text = result["content"][0]["text"]
    assert text.startswith("step 'secret' failed: box__add: Forbidden")
    assert box.counts == {"echo": 1}
