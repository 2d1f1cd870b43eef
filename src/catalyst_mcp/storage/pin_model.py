"""Tables of pinned tool definitions: what each upstream server's tools tell the model.

``pinned_servers`` has one row per server Catalyst has made first contact with (the tools it
listed then were approved as they were). ``pinned_tools`` has one row per definition of a tool
ever approved, and at most one unapproved row per tool: its current definition, as a gateway
last saw it, waiting for an administrator (see :mod:`catalyst_mcp.storage.pins`). Created by the
Alembic migration ``0003_tool_pins``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from catalyst_mcp.storage.base import Base
from catalyst_mcp.storage.models import UtcDateTime

__all__ = ["MAX_TOOL_NAME", "PinnedServer", "PinnedTool"]

MAX_TOOL_NAME = 512
"""Longest tool name that can be pinned (longer ones cannot be approved: held back in strict)."""


class PinnedServer(Base):
    """A server whose tools were pinned at first contact."""

    __tablename__ = "pinned_servers"

    server: Mapped[str] = mapped_column(String(128), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    package: Mapped[str | None] = mapped_column(String(256))


class PinnedTool(Base):
    """One definition of one tool: approved (``approved_at`` set) or waiting for approval."""

    __tablename__ = "pinned_tools"

    server: Mapped[str] = mapped_column(
        ForeignKey("pinned_servers.server", ondelete="CASCADE"), primary_key=True
    )
    tool: Mapped[str] = mapped_column(String(MAX_TOOL_NAME), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    package: Mapped[str | None] = mapped_column(String(256))
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    approved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    approved_by: Mapped[str | None] = mapped_column(String(128))
