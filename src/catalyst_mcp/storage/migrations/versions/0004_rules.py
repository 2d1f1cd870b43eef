"""The rules engine: stored ``rules`` and ``rule_approvals`` (calls held for an approver).

Revision ID: 0004_rules
Revises: 0003_tool_pins
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_rules"
down_revision: str | None = "0003_tool_pins"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "rules",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rules")),
    )
    op.create_table(
        "rule_approvals",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("rule_id", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=128), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("tool", sa.String(length=512), nullable=False),
        sa.Column("server", sa.String(length=128), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("arguments", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_approvals")),
    )
    op.create_index(
        op.f("ix_rule_approvals_subject_tool_digest"),
        "rule_approvals",
        ["subject", "tool", "digest"],
    )
    op.create_index(op.f("ix_rule_approvals_status"), "rule_approvals", ["status"])


def downgrade() -> None:
    op.drop_index(op.f("ix_rule_approvals_status"), table_name="rule_approvals")
    op.drop_index(op.f("ix_rule_approvals_subject_tool_digest"), table_name="rule_approvals")
    op.drop_table("rule_approvals")
    op.drop_table("rules")
