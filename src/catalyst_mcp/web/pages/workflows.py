"""Workflows (administrators): the workflows served as tools, their runs, one run with its
steps, and cancelling a run: the pages of ``catalyst workflows runs|show|cancel``, over the
same API (``/api/v1/workflows...``; a cancel is audited as ``admin.workflow_run.cancel``).

A run's page follows a running run by itself: its live part asks for the page again every
``REFRESH_SECONDS`` (htmx takes that part of the answer) until the run has ended.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from catalyst_mcp.web.apiclient import segment
from catalyst_mcp.web.pages.common import seconds_between
from catalyst_mcp.web.routing import PageError, PageRequest, PageRoute, Reply, need

if TYPE_CHECKING:
    from catalyst_mcp.web.apiclient import ApiAnswer
    from catalyst_mcp.web.dashboard import Dashboard

__all__ = ["FILTERS", "REFRESH_SECONDS", "routes"]

FILTERS = ("workflow", "status", "user")
STATUSES = ("running", "completed", "failed", "cancelled")
RUNS_SHOWN = 50
REFRESH_SECONDS = 2
OFF = (
    "This gateway serves no workflows: workflows.path is not a folder (docs/workflows.md). "
    "Runs are kept in its database."
)


def _timed(item: dict[str, Any], start: str, end: str) -> dict[str, Any]:
    return {**item, "seconds": seconds_between(item.get(start), item.get(end))}


def _off(answer: ApiAnswer) -> bool:
    """The gateway has no workflows room (its routes are not there)."""
    return answer.status == 404 and answer.message == "no such endpoint"


class WorkflowPages:
    def __init__(self, dashboard: Dashboard) -> None:
        self.render = dashboard.renderer

    async def list(self, request: PageRequest) -> Reply:
        served = await request.api.get("/workflows")
        if _off(served):
            return self.render.page(request, "workflows.html", current="workflows", off=OFF)
        filters = {k: v.strip() for k in FILTERS if (v := request.query.get(k, "")).strip()}
        if filters.get("status") not in (None, *STATUSES):
            raise PageError(422, f"status must be one of {', '.join(STATUSES)}")
        runs = need(await request.api.get("/workflows/runs", limit=RUNS_SHOWN, **filters))["runs"]
        return self.render.page(
            request,
            "workflows.html",
            current="workflows",
            off=None,
            served=need(served),
            runs=[_timed(r, "createdAt", "finishedAt") for r in runs],
            filters=filters,
            statuses=STATUSES,
            shown=RUNS_SHOWN,
        )

    async def show(self, request: PageRequest, flash: str | None = None) -> Reply:
        run_id = request.params["id"]
        answer = await request.api.get(f"/workflows/runs/{segment(run_id)}")
        if _off(answer):
            raise PageError(404, OFF)
        run = need(answer)
        run = _timed(run, "createdAt", "finishedAt")
        run["steps"] = [_timed(s, "startedAt", "finishedAt") for s in run["steps"]]
        return self.render.page(
            request,
            "run.html",
            current="workflows",
            run=run,
            refresh=REFRESH_SECONDS,
            flash=flash,
        )

    async def cancel(self, request: PageRequest) -> Reply:
        run_id = request.params["id"]
        run = need(await request.api.post(f"/workflows/runs/{segment(run_id)}/cancel"))
        flash = f"run {run['id']}: cancel requested (now {run['status']})"
        return await self.show(request, flash=flash)


def routes(dashboard: Dashboard) -> list[PageRoute]:
    pages = WorkflowPages(dashboard)
    return [
        PageRoute("GET", "/workflows", pages.list),
        PageRoute("GET", "/workflows/runs/{id}", pages.show),
        PageRoute("POST", "/workflows/runs/{id}/cancel", pages.cancel),
    ]
