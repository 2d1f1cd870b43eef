"""Tables of the rules engine: rules stored through the API, and approval requests.

``rules`` holds one row per stored rule: its id and the rule as JSON (validated by the rules
engine before it is stored, again when it is loaded). ``rule_approvals`` holds one row per
call a ``require_approval`` rule held: who asked for what (the arguments, for the approver to
see), the state (``pending``, ``approved``, ``rejected``, ``expired``, ``cancelled``,
``used``: an approved call that ran) and who decided. Created by the migration ``0004_rules``;
``0006_approvals_created_index`` indexes ``created_at`` (lists, newest first).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from catalyst_mcp.storage.base import Base
from catalyst_mcp.storage.models import UtcDateTime, utcnow

__all__ = ["RuleApproval", "StoredRule"]


class StoredRule(Base):
    """A rule managed through the API (``/api/v1/rules``)."""

    __tablename__ = "rules"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class RuleApproval(Base):
    """A call held by a ``require_approval`` rule until an approver decides."""

    __tablename__ = "rule_approvals"
    __table_args__ = (Index(None, "subject", "tool", "digest"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    rule_id: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(128))
    via: Mapped[str] = mapped_column(String(16))
    tool: Mapped[str] = mapped_column(String(512))
    server: Mapped[str] = mapped_column(String(128))
    digest: Mapped[str] = mapped_column(String(64))
    arguments: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    message: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), index=True)
    # the newest requests, read through it newest first (0006_approvals_created_index)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decided_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    note: Mapped[str | None] = mapped_column(Text)
