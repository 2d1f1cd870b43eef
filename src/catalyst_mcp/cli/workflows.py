"""``catalyst workflows``: the workflows of the configuration and their runs.

* ``list``: the workflow files of ``workflows.path``, validated as the gateway would (exit 1
  when a file has problems, each as ``file:line:col``);
* ``runs``: runs from the database, newest first, narrowed by workflow, status and user;
* ``show RUN``: one run with its steps;
* ``cancel RUN``: ask the instance executing a run to cancel it (at its next heartbeat).

The database is the configuration's (``storage.url``, else ``$CATALYST_DATABASE_URL``, else the
SQLite file); exit 4 when it cannot be reached.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from catalyst_mcp.cli.admin import open_database
from catalyst_mcp.cli.common import (
    EXIT_FAILED,
    CliError,
    config_option,
    json_option,
    load_config,
    print_json,
    print_table,
    run_async,
    truncate,
)
from catalyst_mcp.errors import ConfigError
from catalyst_mcp.orchestration.workflows.loader import is_workflow_name, load_workflow
from catalyst_mcp.orchestration.workflows.store import RunStore

__all__ = ["workflows"]

STATUSES = ("running", "completed", "failed", "cancelled")


@click.group()
def workflows() -> None:
    """Workflows: list them, and see or cancel their runs."""


@workflows.command("list")
@config_option
@json_option
def list_command(config_path: Path | None, json_output: bool) -> None:
    """The workflow files of workflows.path, checked as the gateway checks them."""
    settings = load_config(config_path)
    folder = settings.workflows.path
    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    files = (
        sorted(p for p in folder.iterdir() if is_workflow_name(p.name))
        if (folder is not None and folder.is_dir())
        else []
    )
    for file in files:
        try:
            plan = load_workflow(file)
        except ConfigError as error:
            problems.extend(str(p) for p in error.problems)
            continue
        rows.append(
            {
                "name": plan.name,
                "tool": f"{settings.workflows.namespace}__{plan.name}",
                "steps": len(plan.steps),
                "schedules": ", ".join(f"{s.cron} ({s.timezone})" for s in plan.schedules),
                "file": str(file),
            }
        )
    if json_output:
        print_json({"workflows": rows, "problems": problems})
    else:
        print_table(rows, ["name", "tool", "steps", "schedules", "file"])
        for problem in problems:
            click.echo(problem, err=True)
    if problems:
        raise CliError(f"{len(problems)} problem(s) in workflow files", EXIT_FAILED)


@workflows.command("runs")
@click.option("--workflow", help="Runs of this workflow.")
@click.option("--status", type=click.Choice(STATUSES))
@click.option("--user", help="Runs of this subject.")
@click.option("--limit", type=click.IntRange(min=1, max=1000), default=50, show_default=True)
@config_option
@json_option
def runs_command(
    config_path: Path | None,
    json_output: bool,
    workflow: str | None,
    status: str | None,
    user: str | None,
    limit: int,
) -> None:
    """Workflow runs, newest first."""
    settings = load_config(config_path)

    async def main() -> list[dict[str, Any]]:
        async with open_database(settings) as db:
            store = RunStore(db, "cli")
            try:
                found = await store.runs(
                    workflow=workflow, status=status, subject=user, limit=limit
                )
            finally:
                await store.close()
            return [r.to_json() for r in found]

    rows = run_async(main())
    if json_output:
        print_json(rows)
        return
    for row in rows:
        row["error"] = truncate(str((row.get("error") or {}).get("message", "")), 60)
    print_table(rows, ["id", "workflow", "status", "subject", "trigger", "createdAt", "error"])


@workflows.command("show")
@click.argument("run_id")
@config_option
@json_option
def show_command(config_path: Path | None, json_output: bool, run_id: str) -> None:
    """One run with its steps."""
    settings = load_config(config_path)

    async def main() -> dict[str, Any] | None:
        async with open_database(settings) as db:
            store = RunStore(db, "cli")
            try:
                record = await store.get(run_id)
                if record is None:
                    return None
                steps = await store.steps(run_id)
            finally:
                await store.close()
            return {**record.to_json(), "steps": [s.to_json() for s in steps]}

    run = run_async(main())
    if run is None:
        raise CliError(f"no workflow run {run_id!r}", EXIT_FAILED)
    if json_output:
        print_json(run)
        return
    for key in ("id", "workflow", "status", "subject", "trigger", "createdAt", "finishedAt"):
        click.echo(f"{key}: {run[key]}")
    if run["error"]:
        click.echo(f"error: {run['error']}")
    if run["status"] == "completed":
        click.echo(f"output: {truncate(str(run['output']), 200)}")
    steps = [{**s, "error": truncate(s["error"] or "", 60)} for s in run["steps"]]
    print_table(steps, ["key", "status", "attempts", "startedAt", "finishedAt", "error"])


@workflows.command("cancel")
@click.argument("run_id")
@config_option
def cancel_command(config_path: Path | None, run_id: str) -> None:
    """Cancel a running run (its instance stops it at its next heartbeat)."""
    settings = load_config(config_path)

    async def main() -> bool:
        async with open_database(settings) as db:
            store = RunStore(db, "cli")
            try:
                return await store.request_cancel(run_id)
            finally:
                await store.close()

    if not run_async(main()):
        raise CliError(f"workflow run {run_id!r} is not running (or does not exist)", EXIT_FAILED)
    click.echo(f"cancel requested for {run_id}")
