"""API keys as stored: a visible prefix, the key's SHA-256, scopes, expiry and revocation.

:meth:`KeyRepo.find` is on the authentication path: one query returns everything needed to
accept or refuse a key (its hash, expiry, revocation, scopes and its owner's name, kind,
disabled flag and roles). Callers cache it, and batch ``last_used_at`` updates
(:meth:`KeyRepo.touch`) instead of writing on every request.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError

from catalyst_mcp.errors import Conflict, Missing
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.models import (
    ApiKey,
    User,
    UserRole,
    check_text,
    check_time,
    utcnow,
)

__all__ = ["KeyCredential", "KeyRecord", "KeyRepo"]


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """A stored key as listed: never its hash. ``scopes`` None means no narrowing."""

    id: int
    user: str
    name: str
    prefix: str
    scopes: frozenset[str] | None
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True)
class KeyCredential:
    """What authentication needs to accept or refuse the key with ``prefix``."""

    prefix: str
    key_hash: str
    expires_at: datetime | None
    revoked_at: datetime | None
    scopes: frozenset[str] | None
    user: str
    kind: str
    disabled: bool
    roles: tuple[str, ...]

    def __repr__(self) -> str:
        return f"KeyCredential(prefix={self.prefix!r}, user={self.user!r})"


def _scopes(stored: list[str] | None) -> frozenset[str] | None:
    return None if stored is None else frozenset(stored)


def _record(key: ApiKey, user: str) -> KeyRecord:
    return KeyRecord(
        id=key.id,
        user=user,
        name=key.name,
        prefix=key.prefix,
        scopes=_scopes(key.scopes),
        created_at=key.created_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        last_used_at=key.last_used_at,
    )


_FIND = (
    select(
        ApiKey.key_hash,
        ApiKey.expires_at,
        ApiKey.revoked_at,
        ApiKey.scopes,
        User.name,
        User.kind,
        User.disabled,
        UserRole.role_name,
    )
    .join(User, User.id == ApiKey.user_id)
    .outerjoin(UserRole, UserRole.user_id == User.id)
    .where(ApiKey.prefix == bindparam("prefix"))
)
_TOUCH = (
    update(ApiKey)
    .where(ApiKey.prefix == bindparam("key_prefix"))
    .where(or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at < bindparam("used_at")))
    .values(last_used_at=bindparam("used_at"))
)


class KeyRepo:
    """Store, find, list and revoke API keys (the key itself is never stored)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        user: str,
        name: str,
        prefix: str,
        key_hash: str,
        scopes: Iterable[str] | None = None,
        expires_at: datetime | None = None,
    ) -> KeyRecord:
        """Store a key for ``user``: Missing if there is no such user, Conflict if the prefix
        is taken (generate another key)."""
        check_text("a key name", name, 128)
        check_text("a key prefix", prefix, 24)
        check_text("a key hash", key_hash, 64)
        if isinstance(scopes, str):
            raise TypeError("scopes is a collection of scope names, not one string")
        async with self.db.session(write=True) as session:
            owner = await session.scalar(select(User.id).where(User.name == user))
            if owner is None:
                raise Missing(f"no user named {user!r}")
            key = ApiKey(
                user_id=owner,
                name=name,
                prefix=prefix,
                key_hash=key_hash,
                scopes=None if scopes is None else sorted(set(scopes)),
                expires_at=None if expires_at is None else check_time("expires_at", expires_at),
            )
            session.add(key)
            try:
                await session.flush()
            except IntegrityError as error:
                raise Conflict(f"a key with prefix {prefix!r} already exists") from error
            return _record(key, user)

    async def find(self, prefix: str) -> KeyCredential | None:
        """The key with ``prefix`` and its owner, in one query; None if there is none."""
        async with self.db.session() as session:
            rows = (await session.execute(_FIND, {"prefix": prefix})).all()
        if not rows:
            return None
        first = rows[0]
        return KeyCredential(
            prefix=prefix,
            key_hash=first[0],
            expires_at=first[1],
            revoked_at=first[2],
            scopes=_scopes(first[3]),
            user=first[4],
            kind=first[5],
            disabled=first[6],
            roles=tuple(sorted(row[7] for row in rows if row[7] is not None)),
        )

    async def list(self, user: str | None = None) -> builtins.list[KeyRecord]:
        """Every key (or ``user``'s: Missing if there is no such user), by user then age."""
        query = select(ApiKey, User.name).join(User, User.id == ApiKey.user_id)
        async with self.db.session() as session:
            if user is not None:
                if await session.scalar(select(User.id).where(User.name == user)) is None:
                    raise Missing(f"no user named {user!r}")
                query = query.where(User.name == user)
            rows = await session.execute(query.order_by(User.name, ApiKey.created_at, ApiKey.id))
            return [_record(key, owner) for key, owner in rows]

    async def revoke(self, prefix: str) -> KeyRecord:
        """Revoke the key (at once and for good); revoking it again changes nothing."""
        async with self.db.session(write=True) as session:
            row = (
                await session.execute(
                    select(ApiKey, User.name)
                    .join(User, User.id == ApiKey.user_id)
                    .where(ApiKey.prefix == prefix)
                )
            ).first()
            if row is None:
                raise Missing(f"no key with prefix {prefix!r}")
            key, owner = row
            if key.revoked_at is None:
                key.revoked_at = utcnow()
                await session.flush()
            return _record(key, owner)

    async def touch(self, prefixes_to_times: Mapping[str, datetime]) -> None:
        """Record when keys were last used, in one transaction. A time older than the stored
        one is ignored (batches may arrive out of order); unknown prefixes are skipped.

        The keys are locked first, by id (PostgreSQL): ``UserRepo.delete`` locks a user's keys
        in the same order, so the two never deadlock."""
        if not prefixes_to_times:
            return
        params: list[dict[str, Any]] = [
            {"key_prefix": prefix, "used_at": check_time("a last-used time", used)}
            for prefix, used in sorted(prefixes_to_times.items())
        ]
        lock = (
            select(ApiKey.id)
            .where(ApiKey.prefix.in_(list(prefixes_to_times)))
            .order_by(ApiKey.id)
            .with_for_update()
        )
        async with self.db.session(write=True) as session:
            conn = await session.connection()
            await conn.execute(lock)
            await conn.execute(_TOUCH, params)
