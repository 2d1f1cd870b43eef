"""An index on ``rule_approvals.created_at``: the newest requests read newest first.

``ApprovalRepo.list`` without a state (the dashboard's approvals page: the newest decided
requests) ordered the whole table by ``created_at`` to keep a few dozen rows: 29 ms of SQL
with 5,000 requests on SQLite, growing with the table. Through this index SQLite scans it
backwards and PostgreSQL does an ``Index Scan Backward``, stopping at the limit (0.15 ms).

Revision ID: 0006_approvals_created_index
Revises: 0005_workflows

Written by hand, frozen in time (it does not import the models).
"""

from __future__ import annotations

from alembic import op

revision = "0006_approvals_created_index"
down_revision: str | None = "0005_workflows"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index(op.f("ix_rule_approvals_created_at"), "rule_approvals", ["created_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_rule_approvals_created_at"), table_name="rule_approvals")
