"""Users and service accounts, and the roles granted to them."""

from __future__ import annotations

import builtins
import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from catalyst_mcp.errors import Conflict, Missing, StorageError
from catalyst_mcp.security.rbac import ADMIN_ROLE
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.models import (
    USER_KINDS,
    ApiKey,
    Role,
    Secret,
    User,
    UserRole,
    check_text,
    utcnow,
)
from catalyst_mcp.storage.secrets import ANY

__all__ = ["KEEP", "RESERVED_USER_NAMES", "UserRecord", "UserRepo", "check_user_name"]

RESERVED_USER_NAMES = frozenset({"*", "anonymous"})
"""Names no user may take: ``*`` is the owner of the secrets shared by everyone, and
``anonymous`` the caller without credentials."""


class _Keep(enum.Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP
"""Passed to :meth:`UserRepo.update` for a field to leave as it is (None clears it)."""


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A stored user; ``roles`` sorted by name."""

    id: int
    name: str
    kind: str
    display_name: str | None
    email: str | None
    disabled: bool
    roles: tuple[str, ...]
    created_at: datetime
    updated_at: datetime


def _record(user: User, roles: Iterable[str]) -> UserRecord:
    return UserRecord(
        id=user.id,
        name=user.name,
        kind=user.kind,
        display_name=user.display_name,
        email=user.email,
        disabled=user.disabled,
        roles=tuple(sorted(roles)),
        created_at=user.created_at,
        updated_at=user.updated_at,
    )


async def _user(session: AsyncSession, name: str) -> User:
    user = await session.scalar(select(User).where(User.name == name))
    if user is None:
        raise Missing(f"no user named {name!r}")
    return user


async def _roles_of(session: AsyncSession, user_id: int) -> list[str]:
    rows = await session.scalars(select(UserRole.role_name).where(UserRole.user_id == user_id))
    return list(rows)


def check_user_name(name: str) -> str:
    """``name`` if a new user may take it: 1 to 128 characters, not a reserved name
    (:data:`RESERVED_USER_NAMES`); StorageError if not."""
    check_text("a user name", name, 128)
    if name in RESERVED_USER_NAMES:
        raise StorageError(
            f"the user name {name!r} is reserved: '*' stands for everyone (the owner of shared "
            "secrets) and 'anonymous' for callers without credentials"
        )
    return name


async def _check_roles(session: AsyncSession, roles: Sequence[str], known: frozenset[str]) -> None:
    """Missing for a role that is neither known nor stored. The stored ones are locked for
    share (PostgreSQL) until the transaction ends: a concurrent deletion of one waits, then
    sees the grant (see ``RoleRepo.delete``)."""
    wanted = set(roles) - known
    if not wanted:
        return
    query = select(Role.name).where(Role.name.in_(wanted)).with_for_update(read=True)
    found = set(await session.scalars(query))
    unknown = sorted(wanted - found)
    if unknown:
        names = ", ".join(repr(r) for r in unknown)
        raise Missing(f"no role named {names}" if len(unknown) == 1 else f"no roles named {names}")


async def _grant(session: AsyncSession, user_id: int, roles: Sequence[str]) -> None:
    if roles:
        rows = [{"user_id": user_id, "role_name": role} for role in sorted(set(roles))]
        await session.execute(insert(UserRole), rows)


class UserRepo:
    """Create, read, change and delete users (``kind`` is ``user`` or ``service``)."""

    def __init__(self, db: Database, known_roles: Iterable[str] = (ADMIN_ROLE,)) -> None:
        """``known_roles``: role names valid besides the stored ones (the built-in ``admin``
        and the roles of the settings' ``rbac.roles``)."""
        self.db = db
        self.known_roles = frozenset(known_roles)

    async def create(
        self,
        name: str,
        kind: str = "user",
        display_name: str | None = None,
        email: str | None = None,
        roles: Sequence[str] = (),
    ) -> UserRecord:
        """A new user with ``roles``; Conflict if the name is taken, Missing for an unknown role,
        StorageError for a reserved name (:data:`RESERVED_USER_NAMES`)."""
        check_user_name(name)
        if kind not in USER_KINDS:
            raise StorageError(f"a user's kind is 'user' or 'service', not {kind!r}")
        async with self.db.session(write=True) as session:
            await _check_roles(session, roles, self.known_roles)
            user = User(name=name, kind=kind, display_name=display_name, email=email)
            session.add(user)
            try:
                await session.flush()
            except IntegrityError as error:
                raise Conflict(f"a user named {name!r} already exists") from error
            await _grant(session, user.id, roles)
            return _record(user, set(roles))

    async def get(self, name: str) -> UserRecord:
        """The user named ``name``; Missing if there is none."""
        async with self.db.session() as session:
            user = await _user(session, name)
            return _record(user, await _roles_of(session, user.id))

    async def list(self) -> builtins.list[UserRecord]:
        """Every user, by name."""
        async with self.db.session() as session:
            users = list(await session.scalars(select(User).order_by(User.name)))
            grants: dict[int, list[str]] = {}
            for user_id, role in await session.execute(
                select(UserRole.user_id, UserRole.role_name)
            ):
                grants.setdefault(user_id, []).append(role)
            return [_record(user, grants.get(user.id, ())) for user in users]

    async def update(
        self,
        name: str,
        *,
        display_name: str | _Keep | None = KEEP,
        email: str | _Keep | None = KEEP,
        disabled: bool | None = None,
    ) -> UserRecord:
        """Change the given fields (``KEEP``, the default, leaves one as it is)."""
        async with self.db.session(write=True) as session:
            user = await _user(session, name)
            if not isinstance(display_name, _Keep):
                user.display_name = display_name
            if not isinstance(email, _Keep):
                user.email = email
            if disabled is not None:
                user.disabled = disabled
            await session.flush()
            return _record(user, await _roles_of(session, user.id))

    async def set_roles(self, name: str, roles: Sequence[str]) -> UserRecord:
        """Replace the user's roles with ``roles``; Missing names an unknown role."""
        async with self.db.session(write=True) as session:
            user = await _user(session, name)
            await _check_roles(session, roles, self.known_roles)
            await session.execute(delete(UserRole).where(UserRole.user_id == user.id))
            await _grant(session, user.id, roles)
            user.updated_at = utcnow()
            await session.flush()
            return _record(user, set(roles))

    async def delete(self, name: str) -> None:
        """Delete the user with their API keys and role grants (by cascade) and the secrets
        they own (so a new user given the same name does not inherit them); never the secrets
        shared by everyone (owner ``*``), whatever the user's name.

        The user's keys are locked first, by id (PostgreSQL): ``KeyRepo.touch`` locks keys in
        the same order, so the two never deadlock."""
        async with self.db.session(write=True) as session:
            user = await _user(session, name)
            await session.execute(
                select(ApiKey.id)
                .where(ApiKey.user_id == user.id)
                .order_by(ApiKey.id)
                .with_for_update()
            )
            await session.execute(
                delete(Secret).where(Secret.owner == user.name, Secret.owner != ANY)
            )
            await session.execute(delete(User).where(User.id == user.id))
