"""Workflows as tools: one :class:`Provider` lists every workflow (``<namespace>__<name>``)
and serves ``tools/call`` and the task methods of the runs it starts.

A call runs under the caller's identity: each step goes through the gateway's pipeline as that
caller (RBAC, secrets, rate limits and audit at every step). A workflow never calls itself,
directly or through other workflows, and workflows nest at most ``max_depth`` deep.

A client that supports MCP tasks (see :mod:`.tasks`) gets a task for a workflow whose
``task`` is ``optional`` or ``required``: the run goes on in the background and the task id is
the run id (persisted: ``tasks/get`` works on every instance and after a restart). Others
get the result when the run ends. A workflow that failed is a tool result with ``isError``
(a task ``completed`` with that result); ``failed`` tasks are for the gateway's own failures.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any

import jsonschema_rs
import orjson

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import (
    InvalidArguments,
    InvalidParams,
    MethodNotFound,
    NotFound,
)
from catalyst_mcp.orchestration.workflows.engine import CALL_STACK
from catalyst_mcp.orchestration.workflows.plan import WorkflowPlan
from catalyst_mcp.orchestration.workflows.runstate import TERMINAL
from catalyst_mcp.orchestration.workflows.tasks import (
    RELATED_TASK,
    client_wants_task,
    missing_extension,
)
from catalyst_mcp.providers import ListKind, Provider

if TYPE_CHECKING:
    from catalyst_mcp.orchestration.workflows.config import WorkflowsSettings
    from catalyst_mcp.orchestration.workflows.runner import WorkflowRunner
    from catalyst_mcp.orchestration.workflows.store import RunRecord

__all__ = ["WorkflowProvider", "run_result"]

STATUS = {"running": "working", "completed": "completed", "failed": "completed"}


class WorkflowProvider(Provider):
    """Every workflow of the gateway, as tools of one namespace."""

    def __init__(self, settings: WorkflowsSettings, runner: WorkflowRunner) -> None:
        super().__init__("workflows", settings.namespace)
        self.settings = settings
        self.runner = runner
        self.plans: dict[str, WorkflowPlan] = {}
        self._tools: list[dict[str, Any]] = []
        self._validators: dict[str, jsonschema_rs.Validator] = {}

    def set_plans(self, plans: dict[str, WorkflowPlan]) -> None:
        """Serve these workflows (hot reload); clients hear that the tool list changed."""
        before = self._tools
        self.plans = dict(sorted(plans.items()))
        self._tools = [plan.tool_entry() for plan in self.plans.values()]
        self._validators = {}
        if self._tools != before:
            self.on_change(self, {"tools"})

    def plan(self, name: str) -> WorkflowPlan | None:
        return self.plans.get(name)

    def items(self, kind: ListKind) -> list[dict[str, Any]]:
        return self._tools if kind == "tools" else []

    def health(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": "ready",
            "workflows": len(self.plans),
            "running": len(self.runner.local),
        }

    async def drain(self, timeout: float) -> None:
        return None  # runs outlive a reload: they keep the plan they started with

    # ---- calls -------------------------------------------------------------------------------

    async def call(self, method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        if method == "tools/call":
            return await self._tools_call(params, ctx)
        if method in ("tasks/get", "tasks/update", "tasks/cancel", "tasks/result"):
            return await self._task_method(method, params, ctx)
        raise MethodNotFound(f"Method not found: {method}")

    async def _tools_call(self, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        name = str(params.get("name"))
        plan = self.plans.get(name)
        if plan is None:
            raise NotFound(f"Unknown tool: {self.namespace}__{name}")
        stack = CALL_STACK.get()
        if name in stack:
            chain = " -> ".join([*stack, name])
            raise InvalidParams(f"workflow {name!r} would call itself ({chain})")
        if len(stack) >= self.settings.max_depth:
            raise InvalidParams(f"workflows nest at most {self.settings.max_depth} deep")
        inputs = params.get("arguments") or {}
        self._check_inputs(plan, inputs)
        wants_task = client_wants_task(ctx, params) and plan.workflow.task != "forbidden"
        if plan.workflow.task == "required" and not wants_task:
            if ctx.era == "modern":
                raise missing_extension()
            raise InvalidParams(f"workflow {name!r} runs only as a task: call it with 'task'")
        if wants_task:
            run = self.runner.new_run(plan, inputs, ctx.identity, trigger="task", task_era=ctx.era)
            await self.runner.start(plan, run)
            legacy = ctx.era == "legacy"
            task = self._task(run.id, run.status, run.created_at, run.updated_at, legacy=legacy)
            if not legacy:
                return {"resultType": "task", **task}
            return {"task": task}
        run = self.runner.new_run(plan, inputs, ctx.identity)
        await self.runner.call(plan, run)
        return run_result(run.status, run.output, run.error)

    def _check_inputs(self, plan: WorkflowPlan, inputs: Any) -> None:
        validator = self._validators.get(plan.name)
        if validator is None:
            validator = jsonschema_rs.validator_for(plan.workflow.input)
            self._validators[plan.name] = validator
        errors = [
            {"path": "/" + "/".join(str(p) for p in e.instance_path), "message": e.message[:300]}
            for _, e in zip(range(20), validator.iter_errors(inputs), strict=False)
        ]
        if errors:
            where = ", ".join(e["path"] for e in errors)
            raise InvalidArguments(
                f"arguments of workflow {plan.name!r} do not match its input schema at {where}",
                data={"errors": errors},
            )

    # ---- tasks -------------------------------------------------------------------------------

    async def resolve(self, task_id: str) -> tuple[Provider, str] | None:
        """The owner of a task id that is one of this provider's runs (for the task router)."""
        if not task_id.startswith("wr_"):
            return None
        local = self.runner.local.get(task_id)
        if local is not None:
            return self, local.run.identity.subject
        record = await self.runner.store.get(task_id)
        if record is None or record.trigger != "task":
            return None
        return self, record.subject

    async def list_tasks(self, ctx: CallContext) -> list[dict[str, Any]]:
        """The caller's workflow tasks (legacy ``tasks/list``), newest first."""
        records = await self.runner.store.runs(subject=ctx.identity.subject, limit=100)
        return [
            self._task(r.id, r.status, r.created_at, r.updated_at, legacy=True)
            for r in records
            if r.trigger == "task"
        ]

    async def _task_method(
        self, method: str, params: dict[str, Any], ctx: CallContext
    ) -> dict[str, Any]:
        task_id = str(params.get("taskId"))
        legacy = ctx.era == "legacy"
        if method == "tasks/cancel":
            record = await self._record(task_id)
            if record.status in TERMINAL:
                if legacy:
                    raise InvalidParams(f"task {task_id} has already ended ({record.status})")
                return {}
            await self.runner.cancel(task_id)
            await self._settle(task_id)
            if not legacy:
                return {}
            record = await self._record(task_id)
            return self._task(
                record.id, record.status, record.created_at, record.updated_at, legacy=True
            )
        if method == "tasks/update":
            await self._record(task_id)  # workflows ask no input: answers are acknowledged
            return {}
        if method == "tasks/result":
            await self.runner.wait(task_id)
            record = await self._record(task_id)
            result = run_result(record.status, record.output, record.error)
            result["_meta"] = {RELATED_TASK: {"taskId": task_id}}
            return result
        record = await self._record(task_id)  # tasks/get
        task = self._task(
            record.id, record.status, record.created_at, record.updated_at, legacy=legacy
        )
        if not legacy and record.status in ("completed", "failed"):
            task["result"] = run_result(record.status, record.output, record.error)
        return task

    async def _settle(self, task_id: str, timeout: float = 2.0) -> None:
        """A cancelled run ends within moments here; elsewhere at its instance's heartbeat."""
        local = self.runner.local.get(task_id)
        if local is not None:
            try:
                async with asyncio.timeout(timeout):
                    await local.done.wait()
            except TimeoutError:
                pass

    async def _record(self, task_id: str) -> RunRecord:
        await self.runner.store.flush()
        record = await self.runner.store.get(task_id)
        if record is None:
            raise InvalidParams(f"Unknown task: {task_id}")
        return record

    def _task(
        self,
        task_id: str,
        status: str,
        created: datetime,
        updated: datetime,
        *,
        legacy: bool = False,
    ) -> dict[str, Any]:
        wire = STATUS.get(status, status)
        ttl = self.settings.task_ttl_seconds * 1000
        task: dict[str, Any] = {
            "taskId": task_id,
            "status": wire,
            "createdAt": _iso(created),
            "lastUpdatedAt": _iso(updated),
        }
        if legacy:
            task["ttl"] = ttl
            task["pollInterval"] = self.settings.poll_interval_ms
        else:
            task["ttlMs"] = ttl
            task["pollIntervalMs"] = self.settings.poll_interval_ms
        return task


def run_result(status: str, output: Any, error: dict[str, Any] | None) -> dict[str, Any]:
    """A run's end as a ``CallToolResult``: its output (``structuredContent`` and as text), or
    ``isError`` with what failed."""
    if status == "completed":
        structured = output if isinstance(output, dict) else {"result": output}
        text = output if isinstance(output, str) else orjson.dumps(output).decode()
        return {"content": [{"type": "text", "text": text}], "structuredContent": structured}
    if status == "cancelled":
        message = "the workflow run was cancelled"
    else:
        error = error or {}
        step = error.get("step")
        message = f"step {step!r} failed: " if step else "the workflow run failed: "
        message += str(error.get("message", "unknown error"))
        if error.get("compensated"):
            message += f" (compensated: {', '.join(error['compensated'])})"
    return {"content": [{"type": "text", "text": message}], "isError": True}


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")
