"""Approval requests of ``require_approval`` rules: created when a call is held, decided by an
approver (API or CLI), used once by the call they allow.

States: ``pending`` → ``approved`` | ``rejected`` | ``expired`` | ``cancelled``; ``approved`` →
``used`` when the held call (or its identical retry) runs. Every change is one conditional
UPDATE (``WHERE status = ...``), so two approvers, or two instances, never both win.
"""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from catalyst_mcp.errors import Conflict, Missing
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.models import utcnow
from catalyst_mcp.storage.rules_model import RuleApproval

__all__ = ["FINAL", "STATUSES", "ApprovalRecord", "ApprovalRepo"]

STATUSES = ("pending", "approved", "rejected", "expired", "cancelled", "used")
FINAL = frozenset({"rejected", "expired", "cancelled", "used"})


@dataclass(frozen=True, slots=True)
class ApprovalRecord:
    """One approval request as stored."""

    id: str
    rule_id: str
    subject: str
    via: str
    tool: str
    server: str
    digest: str
    arguments: dict[str, Any] | None
    message: str
    status: str
    created_at: datetime
    expires_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    note: str | None = None


def _record(row: RuleApproval) -> ApprovalRecord:
    return ApprovalRecord(
        id=row.id,
        rule_id=row.rule_id,
        subject=row.subject,
        via=row.via,
        tool=row.tool,
        server=row.server,
        digest=row.digest,
        arguments=dict(row.arguments) if row.arguments is not None else None,
        message=row.message,
        status=row.status,
        created_at=row.created_at,
        expires_at=row.expires_at,
        decided_by=row.decided_by,
        decided_at=row.decided_at,
        note=row.note,
    )


class ApprovalRepo:
    """The ``rule_approvals`` table."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, record: ApprovalRecord) -> ApprovalRecord:
        async with self.db.session(write=True) as session:
            row = RuleApproval(
                id=record.id,
                rule_id=record.rule_id,
                subject=record.subject,
                via=record.via,
                tool=record.tool,
                server=record.server,
                digest=record.digest,
                arguments=record.arguments,
                message=record.message,
                status=record.status,
                created_at=record.created_at,
                expires_at=record.expires_at,
            )
            session.add(row)
            await session.flush()
            return _record(row)

    async def get(self, approval_id: str) -> ApprovalRecord:
        async with self.db.session() as session:
            row = await session.get(RuleApproval, approval_id)
            if row is None:
                raise Missing(f"no approval request {approval_id!r}")
            return _record(row)

    async def find_open(
        self, subject: str, via: str, tool: str, digest: str, rule_id: str
    ) -> ApprovalRecord | None:
        """The newest pending, or approved and unused, request of this caller for this call
        that has not expired."""
        query = (
            select(RuleApproval)
            .where(
                RuleApproval.subject == subject,
                RuleApproval.tool == tool,
                RuleApproval.digest == digest,
                RuleApproval.via == via,
                RuleApproval.rule_id == rule_id,
                RuleApproval.status.in_(("pending", "approved")),
                RuleApproval.expires_at > utcnow(),
            )
            .order_by(RuleApproval.created_at.desc())
            .limit(1)
        )
        async with self.db.session() as session:
            row = await session.scalar(query)
            return _record(row) if row is not None else None

    async def list(
        self, status: str | None = None, limit: int = 100
    ) -> builtins.list[ApprovalRecord]:
        """Requests, newest first (``status``: only those in it)."""
        query = select(RuleApproval).order_by(RuleApproval.created_at.desc()).limit(limit)
        if status is not None:
            query = query.where(RuleApproval.status == status)
        async with self.db.session() as session:
            return [_record(r) for r in await session.scalars(query)]

    async def change(
        self, approval_id: str, before: str, after: str, **facts: Mapping[str, Any] | str | None
    ) -> ApprovalRecord:
        """Move a request from ``before`` to ``after`` (with ``facts``: decided_by, note);
        Conflict (naming its state) if it is not in ``before``; Missing if there is none."""
        values: dict[str, Any] = {"status": after, **facts}
        if after in ("approved", "rejected"):
            values["decided_at"] = utcnow()
        statement = (
            update(RuleApproval)
            .where(RuleApproval.id == approval_id, RuleApproval.status == before)
            .values(**values)
        )
        async with self.db.session(write=True) as session:
            done = await session.execute(statement)
            row = await session.get(RuleApproval, approval_id, populate_existing=True)
            if row is None:
                raise Missing(f"no approval request {approval_id!r}")
            if not getattr(done, "rowcount", 0):
                raise Conflict(f"approval request {approval_id!r} is {row.status}, not {before}")
            return _record(row)
