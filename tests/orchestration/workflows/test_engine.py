"""Each step feature, end to end through a started gateway: templating, when, foreach with a
concurrency limit, parallel groups, time-outs, retries with backoff, on_error (fail, continue,
compensate), the recursion guard, and the caller's identity at every step."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.app import Gateway
from catalyst_mcp.context import Identity
from catalyst_mcp.errors import InvalidArguments, InvalidParams
from tests.orchestration.workflows.support import ToolBox, running_gateway, write

ALICE = Identity(subject="alice", kind="user", roles=("admin",), via="api_key")


async def call(gateway: Gateway, name: str, arguments: dict[str, Any] | None = None) -> Any:
    return await gateway.dispatcher.direct(
        "tools/call", {"name": f"workflows__{name}", "arguments": arguments or {}}, ALICE
    )


async def test_sequential_steps_template_inputs_and_earlier_results(tmp_path: Path) -> None:
    box = ToolBox()
    write(
        tmp_path / "workflows",
        "sum",
        """
        name: sum
        input: {type: object, properties: {a: {type: integer}}, required: [a]}
        steps:
          - id: first
            tool: box__add
            arguments: {a: "${inputs.a}", b: 1}
          - id: second
            tool: box__add
            arguments: {a: "${steps.first.result}", b: 10}
          - id: say
            tool: box__echo
            arguments: {text: "total ${steps.second.result} for ${caller.subject}"}
        output: {total: "${steps.second.result}", said: "${steps.say.result.text}"}
        """,
    )
    async with running_gateway(tmp_path, box) as gateway:
        result = await call(gateway, "sum", {"a": 4})
        listed = {t["name"]: t for t in gateway.registry.items("tools")}
    assert result["structuredContent"] == {"total": 15, "said": "total 15 for alice"}
    assert box.counts == {"add": 2, "echo": 1}
    tool = listed["workflows__sum"]
    assert tool["inputSchema"]["required"] == ["a"]
    assert tool["outputSchema"] == {"type": "object"}
    assert tool["execution"] == {"taskSupport": "optional"}


async def test_inputs_are_checked_against_the_input_schema(tmp_path: Path) -> None:
    write(
        tmp_path / "workflows",
        "typed",
        """
        name: typed
        input: {type: object, properties: {a: {type: integer}}, required: [a]}
        steps: [{id: one, tool: box__echo, arguments: {text: x}}]
        """,
    )
    async with running_gateway(tmp_path, ToolBox()) as gateway:
        with pytest.raises(InvalidArguments):
            await gateway.server.handle(
                "tools/call",
                {"name": "workflows__typed", "arguments": {"a": "four"}},
                _mcp_context(),
            )


async def test_when_skips_a_step(tmp_path: Path) -> None:
    box = ToolBox()
    write(
        tmp_path / "workflows",
        "maybe",
        """
        name: maybe
        steps:
          - {id: ran, tool: box__echo, arguments: {text: a}, when: "inputs.go"}
          - {id: held, tool: box__echo, arguments: {text: b}, when: "${inputs.stop}"}
        output: {ran: "${steps.ran.status}", held: "${steps.held.status}"}
        """,
    )
    async with running_gateway(tmp_path, box) as gateway:
        result = await call(gateway, "maybe", {"go": True, "stop": False})
    assert result["structuredContent"] == {"ran": "completed", "held": "skipped"}
    assert box.counts["echo"] == 1


async def test_foreach_keeps_order_and_its_concurrency_limit(tmp_path: Path) -> None:
    box = ToolBox()
    write(
        tmp_path / "workflows",
        "each",
        """
        name: each
        steps:
          - {id: list, tool: box__items, arguments: {n: 6}}
          - id: twice
            foreach: "${steps.list.result}"
            concurrency: 2
            tool: box__slow
            arguments: {seconds: 0.05}
          - id: double
            foreach: "steps.list.result"
            tool: box__add
            arguments: {a: "${item}", b: "${index}"}
        output: {doubled: "${steps.double.result}"}
        """,
    )
    async with running_gateway(tmp_path, box) as gateway:
        result = await call(gateway, "each")
    assert result["structuredContent"] == {"doubled": [0, 2, 4, 6, 8, 10]}
    assert box.counts["slow"] == 6
    assert box.most_at_once == 2


async def test_parallel_steps_run_together(tmp_path: Path) -> None:
    box = ToolBox()
    write(
        tmp_path / "workflows",
        "both",
        """
        name: both
        steps:
          - id: group
            parallel:
              - {id: a, tool: box__slow, arguments: {seconds: 0.3}}
              - {id: b, tool: box__slow, arguments: {seconds: 0.3}}
              - {id: c, tool: box__echo, arguments: {text: c}}
          - {id: after, tool: box__echo, arguments: {text: "${steps.c.result.text}"}}
        """,
    )
    async with running_gateway(tmp_path, box) as gateway:
        started = time.perf_counter()
        result = await call(gateway, "both")
        took = time.perf_counter() - started
    assert result["structuredContent"] == {"text": "c"}
    assert box.most_at_once >= 2
    assert took < 0.55  # 0.6 s one after the other


async def test_a_timeout_is_retried_with_backoff_then_fails_the_run(tmp_path: Path) -> None:
    box = ToolBox()
    write(
        tmp_path / "workflows",
        "late",
        """
        name: late
        steps:
          - id: wait
            tool: box__slow
            arguments: {seconds: 5}
            timeout_seconds: 0.05
            retry: {attempts: 3, backoff_seconds: 0.01}
        """,
    )
    async with running_gateway(tmp_path, box) as gateway:
        result = await call(gateway, "late")
    assert result["isError"] is True
    text = result["content"][0]["text"]
    assert "step 'wait' failed" in text and "within 0.05s" in text and "3 attempts" in text
    assert box.counts["slow"] == 3


async def test_a_flaky_tool_succeeds_on_retry(tmp_path: Path) -> None:
    box = ToolBox()
    write(
        tmp_path / "workflows",
        "flaky",
        """
        name: flaky
        steps:
          - id: try
            tool: box__flaky
            arguments: {fail: 2, key: k}
            retry: {attempts: 3, backoff_seconds: 0.01, multiplier: 2}
        """,
    )
    async with running_gateway(tmp_path, box) as gateway:
        result = await call(gateway, "flaky")
    assert result["structuredContent"] == {"result": "ok"}
    assert box.counts["flaky"] == 3


async def test_on_error_continue_goes_on_and_fail_stops(tmp_path: Path) -> None:
    box = ToolBox()
    write(
        tmp_path / "workflows",
        "goon",
        """
        name: goon
        steps:
          - {id: bad, tool: box__broken, on_error: continue}
          - {id: next, tool: box__echo, arguments: {text: "${steps.bad.error}"}}
        """,
    )
    write(
        tmp_path / "workflows",
        "stop",
        """
        name: stop
        steps:
          - {id: bad, tool: box__down}
          - {id: never, tool: box__echo, arguments: {text: x}}
        """,
    )
    async with running_gateway(tmp_path, box) as gateway:
        went_on = await call(gateway, "goon")
        stopped = await call(gateway, "stop")
    assert went_on["structuredContent"] == {"text": "box__broken failed: it broke"}
    assert stopped["isError"] is True
    assert "box is down" in stopped["content"][0]["text"]
    assert box.counts["echo"] == 1


async def test_on_error_compensate_undoes_completed_steps_newest_first(tmp_path: Path) -> None:
    box = ToolBox()
    write(
        tmp_path / "workflows",
        "saga",
        """
        name: saga
        steps:
          - id: book
            tool: box__echo
            arguments: {text: booked}
            compensate: {tool: box__undo, arguments: {what: "${steps.book.result.text}"}}
          - id: pay
            tool: box__echo
            arguments: {text: paid}
            compensate: {tool: box__undo, arguments: {what: pay}}
          - {id: ship, tool: box__broken, on_error: compensate}
        """,
    )
    async with running_gateway(tmp_path, box) as gateway:
        result = await call(gateway, "saga")
    assert result["isError"] is True
    assert "compensated: pay, book" in result["content"][0]["text"]
    assert box.undone == ["pay", "booked"]


async def test_a_workflow_calling_itself_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "workflows"
    write(folder, "outer", "name: outer\nsteps: [{id: x, tool: workflows__inner}]\n")
    write(folder, "inner", "name: inner\nsteps: [{id: y, tool: workflows__outer}]\n")
    write(folder, "fine", "name: fine\nsteps: [{id: z, tool: box__echo, arguments: {text: f}}]\n")
    write(folder, "calls", "name: calls\nsteps: [{id: z, tool: workflows__fine}]\n")
    async with running_gateway(tmp_path, ToolBox()) as gateway:
        names = {t["name"] for t in gateway.registry.items("tools")}
        problems = [str(p) for p in gateway.workflow_problems]
        nested = await call(gateway, "calls")
    assert "workflows__outer" not in names and "workflows__inner" not in names
    assert any("would call itself: inner -> outer -> inner" in p for p in problems)
    assert nested["structuredContent"] == {"text": "f"}


async def test_the_run_time_guard_stops_recursion_the_files_cannot_show(tmp_path: Path) -> None:
    write(tmp_path / "workflows", "loop", "name: loop\nsteps: [{id: x, tool: box__echo}]\n")
    async with running_gateway(tmp_path, ToolBox()) as gateway:
        provider = gateway.workflows.provider if gateway.workflows else None
        assert provider is not None
        from catalyst_mcp.orchestration.workflows.engine import CALL_STACK

        token = CALL_STACK.set(("loop",))
        try:
            with pytest.raises(InvalidParams, match="would call itself"):
                await call(gateway, "loop")
        finally:
            CALL_STACK.reset(token)


async def test_steps_run_as_the_caller(tmp_path: Path) -> None:
    box = ToolBox()
    write(tmp_path / "workflows", "who", "name: who\nsteps: [{id: x, tool: box__echo}]\n")
    async with running_gateway(tmp_path, box) as gateway:
        await call(gateway, "who")
    assert box.callers == [ALICE]


def _mcp_context() -> Any:
    from catalyst_mcp.context import CallContext

    return CallContext(era="modern", protocol_version="2026-07-28", method="tools/call")


async def test_a_slow_run_can_be_cancelled_by_its_caller(tmp_path: Path) -> None:
    box = ToolBox()
    write(tmp_path / "workflows", "held", "name: held\nsteps: [{id: g, tool: box__gate}]\n")
    async with running_gateway(tmp_path, box) as gateway:
        task = asyncio.create_task(call(gateway, "held"))
        await box.entered.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert gateway.workflows is not None
        runs = await gateway.workflows.store.runs(workflow="held")
        steps = await gateway.workflows.store.steps(runs[0].id)
    assert [r.status for r in runs] == ["cancelled"]
    # the step it was in ends with it, when the run does
    assert [(s.key, s.status) for s in steps] == [("g", "cancelled")]
    assert steps[0].finished_at == runs[0].finished_at is not None


async def steps_of(gateway: Gateway, workflow: str) -> tuple[str, dict[str, str]]:
    """The one run of ``workflow``: its status, and its steps' statuses."""
    assert gateway.workflows is not None
    [record] = await gateway.workflows.store.runs(workflow=workflow)
    steps = await gateway.workflows.store.steps(record.id)
    assert all(s.finished_at is not None for s in steps)
    return record.status, {s.key: s.status for s in steps}


async def test_the_first_failure_of_a_group_cancels_the_steps_still_running(
    tmp_path: Path,
) -> None:
    box = ToolBox()
    write(
        tmp_path / "workflows",
        "race",
        """
        name: race
        steps:
          - id: group
            parallel:
              - {id: wait, tool: box__gate}
              - {id: bad, tool: box__broken}
        """,
    )
    async with running_gateway(tmp_path, box) as gateway:
        result = await call(gateway, "race")
        status, steps = await steps_of(gateway, "race")
    assert result["isError"] is True and box.counts["gate"] == 1
    assert status == "failed"
    assert steps == {"wait": "cancelled", "bad": "failed"}


async def test_a_run_out_of_time_cancels_the_step_it_was_in(tmp_path: Path) -> None:
    box = ToolBox()
    write(
        tmp_path / "workflows",
        "late",
        "name: late\ntimeout_seconds: 0.1\nsteps: [{id: g, tool: box__gate}]\n",
    )
    async with running_gateway(tmp_path, box) as gateway:
        result = await call(gateway, "late")
        status, steps = await steps_of(gateway, "late")
    assert result["isError"] is True and "longer than 0.1s" in result["content"][0]["text"]
    assert status == "failed"
    assert steps == {"g": "cancelled"}
