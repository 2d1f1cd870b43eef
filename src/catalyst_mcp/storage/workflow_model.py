"""Tables of workflow runs: each run, each step it reached, and the schedule claims.

``workflow_runs`` holds a run's inputs, the identity it runs as, its status, output or error,
and which gateway instance executes it (``instance``, kept alive by ``heartbeat_at``: a run
whose heartbeat is stale belongs to a dead instance and is resumed by another).
``workflow_steps`` holds one row per step (``key``: the step id, ``id[3]`` for a foreach item,
``id.compensate``), so a resumed run skips what finished. ``workflow_fires`` has one row per
(schedule, due time): whoever inserts it fires that time, so instances sharing the database
fire each due time once (the primary key decides, on SQLite and PostgreSQL alike).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column

from catalyst_mcp.storage.base import Base
from catalyst_mcp.storage.models import UtcDateTime, utcnow

__all__ = ["WorkflowFire", "WorkflowRun", "WorkflowStep"]


class WorkflowRun(Base):
    """One run of one workflow."""

    __tablename__ = "workflow_runs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    workflow: Mapped[str] = mapped_column(String(128), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    subject: Mapped[str] = mapped_column(String(128), index=True)
    identity: Mapped[dict[str, Any]] = mapped_column(JSON)
    trigger: Mapped[str] = mapped_column(String(16))
    task_era: Mapped[str | None] = mapped_column(String(8))
    inputs: Mapped[dict[str, Any]] = mapped_column(JSON)
    output: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    instance: Mapped[str | None] = mapped_column(String(64), index=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WorkflowStep(Base):
    """What one step of a run did."""

    __tablename__ = "workflow_steps"

    run_id: Mapped[str] = mapped_column(
        ForeignKey("workflow_runs.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(160), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[Any] = mapped_column(JSON(none_as_null=True), nullable=True)
    is_error: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class WorkflowFire(Base):
    """A schedule's due time, claimed by the instance that fires it."""

    __tablename__ = "workflow_fires"

    schedule: Mapped[str] = mapped_column(String(300), primary_key=True)
    fire_at: Mapped[datetime] = mapped_column(UtcDateTime, primary_key=True)
    instance: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[str | None] = mapped_column(String(40))
    claimed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
