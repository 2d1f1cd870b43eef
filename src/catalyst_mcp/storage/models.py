"""The identity tables: users, roles, their grants, API keys and sealed secrets.

Repositories (``users.py``, ``roles.py``, ``keys.py``, ``secrets.py``) read and write these and
hand out frozen records, never these ORM objects. The schema itself is created by the Alembic
migration ``0001_identities``; a test checks that both agree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from catalyst_mcp.errors import StorageError
from catalyst_mcp.storage.base import Base

__all__ = [
    "USER_KINDS",
    "ApiKey",
    "Role",
    "Secret",
    "User",
    "UserRole",
    "UtcDateTime",
    "check_text",
    "check_time",
    "utcnow",
]

USER_KINDS = ("user", "service")


def utcnow() -> datetime:
    """Now, timezone-aware in UTC: the only kind of time stored."""
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so values are stored as UTC
    without one and given it back when read. Naive datetimes are refused: their zone is unknown.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("a stored time must be timezone-aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def check_text(what: str, value: str, limit: int) -> str:
    """``value`` if it is 1 to ``limit`` characters, else StorageError (the same on SQLite,
    which does not enforce lengths, and PostgreSQL)."""
    if not value or len(value) > limit:
        raise StorageError(f"{what} must be 1 to {limit} characters")
    return value


def check_time(what: str, value: datetime) -> datetime:
    """``value`` in UTC; StorageError if it is naive (its time zone is unknown)."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise StorageError(f"{what} must be a timezone-aware time")
    return value.astimezone(UTC)


class _Timestamps:
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, onupdate=utcnow)


class User(_Timestamps, Base):
    """A person or a service account. ``name`` is the stable subject everything is keyed by."""

    __tablename__ = "users"
    __table_args__ = (CheckConstraint("kind IN ('user', 'service')", name="kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True, index=True)
    kind: Mapped[str] = mapped_column(String(16))
    display_name: Mapped[str | None] = mapped_column(String(256))
    email: Mapped[str | None] = mapped_column(String(320))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class Role(_Timestamps, Base):
    """A named set of RBAC rules (validated by the RBAC layer, stored as JSON)."""

    __tablename__ = "roles"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    description: Mapped[str] = mapped_column(Text, default="", server_default="")
    rules: Mapped[list[dict[str, Any]]] = mapped_column(JSON)


class UserRole(Base):
    """A role granted to a user."""

    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    # not a foreign key: roles may also be defined in the settings (rbac.roles) or built in
    # (admin); the repositories check names against both
    role_name: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class ApiKey(Base):
    """An API key. Only its visible ``prefix`` and the SHA-256 of the whole key are stored."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(24), unique=True, index=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str] | None] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Secret(_Timestamps, Base):
    """A sealed secret value for ``owner`` (a user name, ``*`` = everyone) and ``scope`` (a
    server or pack name, ``*`` = any). Never plaintext: the vault seals and opens it."""

    __tablename__ = "secrets"
    __table_args__ = (
        UniqueConstraint("owner", "scope", "name"),
        Index(None, "scope"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    owner: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128))
    key_id: Mapped[str] = mapped_column(String(64), index=True)
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
