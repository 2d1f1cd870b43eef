"""The audit trail: hash-chained ``audit_records`` and the one-row ``audit_chain`` head.

Revision ID: 0002_audit
Revises: 0001_identities
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_audit"
down_revision: str | None = "0001_identities"
branch_labels: str | None = None
depends_on: str | None = None

GENESIS = "0" * 64


def upgrade() -> None:
    op.create_table(
        "audit_records",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("actor_kind", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=512), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("latency_ms", sa.Float(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_records")),
        sa.UniqueConstraint("hash", name=op.f("uq_audit_records_hash")),
    )
    for column in ("at", "actor", "action", "outcome"):
        op.create_index(op.f(f"ix_audit_records_{column}"), "audit_records", [column])
    chain = op.create_table(
        "audit_chain",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("last_hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_chain")),
    )
    op.bulk_insert(chain, [{"id": 1, "last_seq": 0, "last_hash": GENESIS}])


def downgrade() -> None:
    op.drop_table("audit_chain")
    for column in ("outcome", "action", "actor", "at"):
        op.drop_index(op.f(f"ix_audit_records_{column}"), table_name="audit_records")
    op.drop_table("audit_records")
