"""The conformance suite's task fixtures (the ``tasks-*`` scenarios, SEP-2663), for
:class:`conformance.fixture.ConformanceFixture`.

The suite asks for these tools (``tools/list`` must include all):

| tool | task support | what it does |
|---|---|---|
| ``greet`` | forbidden | ``Hello, {name}!`` at once |
| ``slow_compute`` | optional | sleeps ``seconds``, then a result; cancelled while it sleeps |
| ``failing_job`` | required | a tool error (``isError``) after a moment |
| ``protocol_error_job`` | optional | fails with a JSON-RPC error: status ``failed`` |
| ``confirm_delete`` | optional | asks one ``elicitation/create``, completes with the answer |
| ``multi_input`` | optional | asks two at once; each may be answered on its own |
| ``test_tool_with_task`` | required | asks a name (MRTR), then a task that greets it |

A client that declared the ``io.modelcontextprotocol/tasks`` extension gets a task; others get
the result at once, or -32021 for a tool that runs only as a task. Tasks live in this process;
``tasks/get`` inlines the result once terminal, ``tasks/update`` delivers answers, and
``tasks/cancel`` answers an empty ack. The gateway in front relays all of it.
"""

from __future__ import annotations

import asyncio
import contextvars
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import InvalidParams, MissingCapability, NotFound
from catalyst_mcp.orchestration.workflows.tasks import TASKS_EXTENSION, client_wants_task

__all__ = ["TASK_TOOLS", "TaskFixtures"]

Json = dict[str, Any]
TTL_MS = 600_000
POLL_MS = 200
TERMINAL = frozenset({"completed", "failed", "cancelled"})


def _schema(properties: Json, required: list[str] | None = None) -> Json:
    return {"type": "object", "properties": properties, "required": required or []}


def _tool(name: str, description: str, support: str, schema: Json | None = None) -> Json:
    return {
        "name": name,
        "description": description,
        "inputSchema": schema or _schema({}),
        "execution": {"taskSupport": support},
    }


TASK_TOOLS: tuple[Json, ...] = (
    _tool("greet", "Says hello (sync only)", "forbidden", _schema({"name": {"type": "string"}})),
    _tool(
        "slow_compute",
        "Sleeps for `seconds`, then answers (task-supporting)",
        "optional",
        _schema({"seconds": {"type": "number"}, "label": {"type": "string"}}),
    ),
    _tool("failing_job", "Always ends in a tool error (task required)", "required"),
    _tool("protocol_error_job", "Fails with a protocol error (task-supporting)", "optional"),
    _tool(
        "confirm_delete",
        "Asks for confirmation, then deletes (task-supporting)",
        "optional",
        _schema({"filename": {"type": "string"}}),
    ),
    _tool("multi_input", "Asks two questions at once (task-supporting)", "optional"),
    _tool("test_tool_with_task", "Asks a name (MRTR), then runs as a task", "required"),
)

CONFIRM = {
    "method": "elicitation/create",
    "params": {
        "message": "Confirm?",
        "requestedSchema": _schema({"confirm": {"type": "boolean"}}, ["confirm"]),
    },
}
NAME = {
    "method": "elicitation/create",
    "params": {
        "message": "What is your name?",
        "requestedSchema": _schema({"name": {"type": "string"}}, ["name"]),
    },
}


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(value: str, *, error: bool = False) -> Json:
    result: Json = {"content": [{"type": "text", "text": value}]}
    if error:
        result["isError"] = True
    return result


@dataclass
class _Task:
    id: str
    status: str = "working"
    created: str = field(default_factory=_now)
    updated: str = field(default_factory=_now)
    result: Json | None = None
    error: Json | None = None
    pending: dict[str, Json] = field(default_factory=dict)  # inputRequests not answered yet
    answers: dict[str, Json] = field(default_factory=dict)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    job: asyncio.Task[None] | None = None

    def set(self, status: str) -> None:
        if self.status not in TERMINAL:
            self.status = status
            self.updated = _now()

    def envelope(self) -> Json:
        return {
            "taskId": self.id,
            "status": self.status,
            "createdAt": self.created,
            "lastUpdatedAt": self.updated,
            "ttlMs": TTL_MS,
            "pollIntervalMs": POLL_MS,
        }


class TaskFixtures:
    """The task tools and the task methods, on one in-memory table of tasks."""

    def __init__(self) -> None:
        self.tasks: dict[str, _Task] = {}

    @staticmethod
    def serves(name: str) -> bool:
        return any(tool["name"] == name for tool in TASK_TOOLS)

    # ---- tools/call ------------------------------------------------------------------------

    async def call_tool(self, name: str, args: Json, params: Json, ctx: CallContext) -> Json:
        wants = client_wants_task(ctx, params) and ctx.era == "modern"
        if name == "greet":
            return _text(f"Hello, {args.get('name', 'World')}!")
        support = next(t["execution"]["taskSupport"] for t in TASK_TOOLS if t["name"] == name)
        if support == "required" and not wants:
            raise MissingCapability(
                f"{name} runs only as a task: declare the {TASKS_EXTENSION} extension",
                data={"requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}}},
            )
        if name == "test_tool_with_task":
            responses = params.get("inputResponses")
            answer = responses.get("user_name") if isinstance(responses, dict) else None
            if not isinstance(answer, dict):
                return {"resultType": "input_required", "inputRequests": {"user_name": NAME}}
            content = answer.get("content") if isinstance(answer.get("content"), dict) else {}
            who = str((content or {}).get("name", "nobody"))
            return self._start(self._greet_later(who))
        if not wants:
            if name == "slow_compute":
                await asyncio.sleep(float(args.get("seconds", 0)))
                return _text(f"computed {args.get('label', '')}")
            raise InvalidParams(f"{name} needs the {TASKS_EXTENSION} extension here")
        jobs = {
            "slow_compute": lambda: self._slow(float(args.get("seconds", 0)), args.get("label")),
            "failing_job": self._failing,
            "protocol_error_job": self._protocol_error,
            "confirm_delete": lambda: self._ask({"confirm": CONFIRM}, args.get("filename")),
            "multi_input": lambda: self._ask({"name": NAME, "confirm": CONFIRM}, None),
        }
        return self._start(jobs[name]())

    def _start(self, job: Any) -> Json:
        task = _Task("fx_" + secrets.token_hex(12))
        self.tasks[task.id] = task
        task.job = asyncio.get_running_loop().create_task(self._run(task, job))
        return {"resultType": "task", **task.envelope()}

    async def _run(self, task: _Task, job: Any) -> None:
        try:
            task.result = await job_with(task, job)
            task.set("completed")
        except asyncio.CancelledError:
            task.set("cancelled")
        except _ProtocolFailure as failure:
            task.error = {"code": -32603, "message": str(failure)}
            task.set("failed")

    # ---- the jobs (each gets its task through job_with) -------------------------------------

    async def _slow(self, seconds: float, label: Any) -> Json:
        await asyncio.sleep(seconds)
        return _text(f"computed {label or ''}".strip())

    async def _failing(self) -> Json:
        await asyncio.sleep(0.5)
        return _text("the job failed", error=True)

    async def _protocol_error(self) -> Json:
        await asyncio.sleep(0.2)
        raise _ProtocolFailure("the job crashed")

    async def _ask(self, requests: dict[str, Json], filename: Any) -> Json:
        task = _CURRENT.get()
        task.pending = dict(requests)
        task.set("input_required")
        while task.pending:
            task.answered.clear()
            await task.answered.wait()
        task.set("working")
        if filename is not None:
            confirm = task.answers.get("confirm", {}).get("content", {}).get("confirm")
            return _text(f"deleted {filename}" if confirm else f"kept {filename}")
        return _text(f"got {sorted(task.answers)}")

    async def _greet_later(self, who: str) -> Json:
        await asyncio.sleep(0.2)
        return _text(f"Hello, {who}!")

    # ---- task methods -----------------------------------------------------------------------

    async def method(self, method: str, params: Json, ctx: CallContext) -> Json:
        task = self.tasks.get(str(params.get("taskId")))
        if task is None:
            raise InvalidParams(f"Unknown task: {params.get('taskId')}")
        if method == "tasks/get":
            out = task.envelope()
            if task.status == "completed" and task.result is not None:
                out["result"] = task.result
            elif task.status == "failed" and task.error is not None:
                out["error"] = task.error
            elif task.status == "input_required":
                out["inputRequests"] = dict(task.pending)
            return out
        if method == "tasks/update":
            responses = params.get("inputResponses")
            if not isinstance(responses, dict):
                raise InvalidParams("inputResponses must be an object")
            for key, value in responses.items():
                if key in task.pending and isinstance(value, dict):
                    del task.pending[key]
                    task.answers[key] = value
            task.answered.set()
            return {}
        if method == "tasks/cancel":
            if task.status not in TERMINAL and task.job is not None:
                task.job.cancel()
                await asyncio.gather(task.job, return_exceptions=True)
            return {}
        raise NotFound(f"{method} is not served by the conformance fixture")


class _ProtocolFailure(Exception):
    """A job that fails as the server would on an internal error."""


_CURRENT: contextvars.ContextVar[_Task] = contextvars.ContextVar("conformance_task")


async def job_with(task: _Task, job: Any) -> Json:
    """Run ``job`` (a coroutine) knowing its task (for the jobs that ask for input)."""
    token = _CURRENT.set(task)
    try:
        result: Json = await job
        return result
    finally:
        _CURRENT.reset(token)
