"""Pinned tool definitions: ``pinned_servers`` (first contact) and ``pinned_tools``.

Revision ID: 0003_tool_pins
Revises: 0002_audit

Written by hand, frozen in time (it does not import the models).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_tool_pins"
down_revision: str | None = "0002_audit"
branch_labels: str | None = None
depends_on: str | None = None


def _time(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "pinned_servers",
        sa.Column("server", sa.String(128), nullable=False),
        _time("first_seen_at"),
        sa.Column("package", sa.String(256), nullable=True),
        sa.PrimaryKeyConstraint("server", name=op.f("pk_pinned_servers")),
    )
    op.create_table(
        "pinned_tools",
        sa.Column("server", sa.String(128), nullable=False),
        sa.Column("tool", sa.String(512), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("package", sa.String(256), nullable=True),
        _time("first_seen_at"),
        _time("last_seen_at"),
        _time("approved_at", nullable=True),
        sa.Column("approved_by", sa.String(128), nullable=True),
        sa.ForeignKeyConstraint(
            ["server"],
            ["pinned_servers.server"],
            name=op.f("fk_pinned_tools_server_pinned_servers"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("server", "tool", "digest", name=op.f("pk_pinned_tools")),
    )


def downgrade() -> None:
    op.drop_table("pinned_tools")
    op.drop_table("pinned_servers")
