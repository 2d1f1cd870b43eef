"""The ``workflows:`` section of the settings (docs/configuration.md lists every field)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["WorkflowsSettings"]


class WorkflowsSettings(BaseModel):
    """Where workflows come from and how their runs are kept (docs/workflows.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    path: Path | None = Field(
        Path("workflows"),
        description="Folder of workflow files (*.yaml or *.yml, one workflow per file; "
        "*.example and hidden files skipped), relative to the working directory. A missing "
        "folder means no workflows (they are loaded when it appears, if watch is on); null "
        "turns workflows off.",
    )
    watch: bool = Field(
        True,
        description="Hot reload: apply edited, new and deleted workflow files while the gateway "
        "runs. An invalid edit keeps the last good version serving and is reported by /ready "
        "(workflow_problems) until fixed.",
    )
    namespace: str = Field(
        "workflows",
        pattern=r"^[A-Za-z0-9]+(?:[-_][A-Za-z0-9]+)*$",
        description="Namespace of the workflow tools: workflow 'report' is the tool "
        "'<namespace>__report'.",
    )
    max_depth: int = Field(
        8,
        ge=1,
        le=64,
        description="How deeply workflows may call workflows (a workflow never calls itself, "
        "directly or through others).",
    )
    heartbeat_seconds: float = Field(
        5.0,
        gt=0,
        description="How often an instance marks the runs it executes as alive. A run whose "
        "mark is older than three heartbeats (its gateway was killed) is resumed by an "
        "instance that sees it.",
    )
    resume: bool = Field(
        True,
        description="Resume interrupted runs (of a gateway that stopped or was killed) from "
        "their last completed step.",
    )
    synchronous: Literal["normal", "full"] = Field(
        "normal",
        description="How a committed step is kept. normal: it survives the gateway being "
        "killed (kill -9 included); a power loss or an operating-system crash may take the "
        "last commits back, and a step that finished in them runs again on resume (SQLite: "
        "WAL with synchronous=NORMAL, written on the event loop's thread; PostgreSQL: the "
        "server's synchronous_commit). full: every commit is synced to the disk and survives "
        "a power loss too, at the cost of an fsync per durable step (SQLite: "
        "synchronous=FULL, written in a worker thread; PostgreSQL: synchronous_commit on for "
        "these transactions).",
    )
    schedules: bool = Field(
        True,
        description="Fire the workflows' cron schedules on this instance. With several "
        "instances on one database, each due time is fired by exactly one of them.",
    )
    task_ttl_seconds: int = Field(
        86_400,
        ge=1,
        description="How long a run started as an MCP task stays readable through tasks/get "
        "after it was created (the task's ttlMs).",
    )
    poll_interval_ms: int = Field(
        500, ge=10, description="The pollIntervalMs suggested to MCP clients polling a task."
    )
