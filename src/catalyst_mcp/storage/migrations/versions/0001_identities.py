"""Identities: users, roles, their grants, API keys and sealed secrets.

Revision ID: 0001_identities
Revises: (none)

Written by hand, frozen in time: it does not import the models (they will change; this must
not). Every constraint and index is named as ``catalyst_mcp.storage.base`` names them, so later
migrations can refer to them on SQLite and PostgreSQL alike. Times are ``timestamptz`` on
PostgreSQL and UTC text on SQLite.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_identities"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None


def _time(name: str, *, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=True),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("disabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.CheckConstraint("kind IN ('user', 'service')", name=op.f("ck_users_kind")),
    )
    op.create_index(op.f("ix_users_name"), "users", ["name"], unique=True)

    op.create_table(
        "roles",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("rules", sa.JSON(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_roles")),
    )

    op.create_table(
        "user_roles",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("role_name", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_roles_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "role_name", name=op.f("pk_user_roles")),
    )
    op.create_index(op.f("ix_user_roles_role_name"), "user_roles", ["role_name"])

    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("prefix", sa.String(24), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("scopes", sa.JSON(), nullable=True),
        _time("created_at"),
        _time("expires_at", nullable=True),
        _time("revoked_at", nullable=True),
        _time("last_used_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_api_keys_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
    )
    op.create_index(op.f("ix_api_keys_prefix"), "api_keys", ["prefix"], unique=True)
    op.create_index(op.f("ix_api_keys_user_id"), "api_keys", ["user_id"])

    op.create_table(
        "secrets",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("scope", sa.String(128), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.Column("nonce", sa.LargeBinary(), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secrets")),
        sa.UniqueConstraint("owner", "scope", "name", name=op.f("uq_secrets_owner_scope_name")),
    )
    op.create_index(op.f("ix_secrets_key_id"), "secrets", ["key_id"])
    op.create_index(op.f("ix_secrets_scope"), "secrets", ["scope"])


def downgrade() -> None:
    op.drop_table("secrets")
    op.drop_table("api_keys")
    op.drop_table("user_roles")
    op.drop_table("roles")
    op.drop_table("users")
