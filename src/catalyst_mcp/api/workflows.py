"""``/workflows``: the workflows a gateway serves, their runs, one run with its steps, and
cancelling a run (administrators only; a cancel is audited as ``admin.workflow_run.cancel``).

Runs are read from the database, so any instance answers for the runs of every instance; a
cancel reaches the instance executing the run at its next heartbeat (at once when it is this
one)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from catalyst_mcp.api.router import ApiRequest, Route
from catalyst_mcp.errors import Conflict, Missing

if TYPE_CHECKING:
    from catalyst_mcp.orchestration.workflows.manager import Workflows

__all__ = ["WorkflowHandlers"]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class RunQuery(_In):
    workflow: str | None = Field(None, description="Runs of this workflow.")
    status: Literal["running", "completed", "failed", "cancelled"] | None = None
    user: str | None = Field(None, description="Runs of this subject.")
    limit: int = Field(50, ge=1, le=1000, description="At most this many, newest first.")


class RunPath(_In):
    run_id: str = Field(max_length=40, description="The run's id (also its MCP task id).")


class WorkflowInfo(_Out):
    name: str
    tool: str = Field(description="The tool it is served as.")
    description: str
    steps: int
    schedules: list[dict[str, Any]]
    file: str


class WorkflowList(_Out):
    workflows: list[WorkflowInfo]
    problems: list[str] = Field(description="Workflow files not served, and why.")


class RunInfo(_Out):
    id: str
    workflow: str
    status: str
    subject: str
    trigger: str = Field(description="call, task or schedule.")
    inputs: dict[str, Any]
    output: Any
    error: dict[str, Any] | None
    cancelRequested: bool
    createdAt: str
    updatedAt: str
    finishedAt: str | None


class RunList(_Out):
    runs: list[RunInfo]


class StepInfo(_Out):
    key: str
    status: str
    attempts: int
    result: Any
    isError: bool
    error: str | None
    startedAt: str | None
    finishedAt: str | None


class RunDetail(RunInfo):
    steps: list[StepInfo]


class WorkflowHandlers:
    def __init__(self, workflows: Workflows) -> None:
        self.workflows = workflows

    async def served(self, request: ApiRequest) -> WorkflowList:
        provider = self.workflows.provider
        return WorkflowList(
            workflows=[
                WorkflowInfo(
                    name=plan.name,
                    tool=f"{provider.namespace}__{plan.name}",
                    description=plan.workflow.description,
                    steps=len(plan.steps),
                    schedules=[s.model_dump(by_alias=True) for s in plan.schedules],
                    file=str(plan.file),
                )
                for plan in provider.plans.values()
            ],
            problems=[str(p) for p in self.workflows.problems],
        )

    async def runs(self, request: ApiRequest) -> RunList:
        q = request.query_as(RunQuery)
        records = await self.workflows.store.runs(
            workflow=q.workflow, status=q.status, subject=q.user, limit=q.limit
        )
        return RunList(runs=[RunInfo.model_validate(r.to_json()) for r in records])

    async def show(self, request: ApiRequest) -> RunDetail:
        run_id = request.path_as(RunPath).run_id
        await self.workflows.store.flush()
        record = await self.workflows.store.get(run_id)
        if record is None:
            raise Missing(f"no workflow run {run_id!r}")
        steps = await self.workflows.store.steps(run_id)
        return RunDetail.model_validate({**record.to_json(), "steps": [s.to_json() for s in steps]})

    async def cancel(self, request: ApiRequest) -> RunInfo:
        run_id = request.path_as(RunPath).run_id
        record = await self.workflows.store.get(run_id)
        if record is None:
            raise Missing(f"no workflow run {run_id!r}")
        if not await self.workflows.runner.cancel(run_id):
            raise Conflict(f"workflow run {run_id!r} is not running ({record.status})")
        await self.workflows.store.flush()
        after = await self.workflows.store.get(run_id)
        assert after is not None
        return RunInfo.model_validate(after.to_json())

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET",
                "/workflows",
                self.served,
                action="admin.workflows.list",
                summary="The workflows served, and the files that are not (with why)",
                tag="workflows",
                response=WorkflowList,
            ),
            Route(
                "GET",
                "/workflows/runs",
                self.runs,
                action="admin.workflow_runs.list",
                summary="Workflow runs, newest first",
                tag="workflows",
                query=RunQuery,
                response=RunList,
            ),
            Route(
                "GET",
                "/workflows/runs/{run_id}",
                self.show,
                action="admin.workflow_run.get",
                summary="One workflow run with its steps",
                tag="workflows",
                path_model=RunPath,
                response=RunDetail,
            ),
            Route(
                "POST",
                "/workflows/runs/{run_id}/cancel",
                self.cancel,
                action="admin.workflow_run.cancel",
                summary="Cancel a running workflow run (wherever it runs)",
                tag="workflows",
                path_model=RunPath,
                response=RunInfo,
                changes=True,
            ),
        ]
