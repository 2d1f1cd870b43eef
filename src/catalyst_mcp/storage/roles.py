"""RBAC roles: a name, a description and a list of rules (validated by the RBAC layer)."""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from catalyst_mcp.errors import Conflict, Missing
from catalyst_mcp.security.rbac import ADMIN_ROLE
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.models import Role, User, UserRole, check_text, utcnow

__all__ = ["RoleRecord", "RoleRepo"]


@dataclass(frozen=True, slots=True)
class RoleRecord:
    """A stored role. ``rules`` are the JSON objects as stored."""

    name: str
    description: str
    rules: tuple[dict[str, Any], ...]
    created_at: datetime
    updated_at: datetime


def _record(role: Role) -> RoleRecord:
    return RoleRecord(
        name=role.name,
        description=role.description,
        rules=tuple(role.rules),
        created_at=role.created_at,
        updated_at=role.updated_at,
    )


def _rules(rules: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [dict(rule) for rule in rules]


async def _holders(session: AsyncSession, role: str, limit: int | None = None) -> list[str]:
    query = (
        select(User.name)
        .join(UserRole, UserRole.user_id == User.id)
        .where(UserRole.role_name == role)
        .order_by(User.name)
        .limit(limit)
    )
    return list(await session.scalars(query))


class RoleRepo:
    """Create, replace, read and delete roles."""

    def __init__(self, db: Database, known_roles: Iterable[str] = (ADMIN_ROLE,)) -> None:
        """``known_roles``: role names valid without a stored role (the built-in ``admin``
        and the roles of the settings' ``rbac.roles``), as for ``UserRepo``: deleting a
        stored role of such a name leaves its grants in place."""
        self.db = db
        self.known_roles = frozenset(known_roles)

    async def create(
        self, name: str, description: str = "", rules: Sequence[Mapping[str, Any]] = ()
    ) -> RoleRecord:
        """A new role; Conflict if one of that name exists."""
        check_text("a role name", name, 64)
        async with self.db.session(write=True) as session:
            role = Role(name=name, description=description, rules=_rules(rules))
            session.add(role)
            try:
                await session.flush()
            except IntegrityError as error:
                raise Conflict(f"a role named {name!r} already exists") from error
            return _record(role)

    async def put(
        self, name: str, description: str = "", rules: Sequence[Mapping[str, Any]] = ()
    ) -> RoleRecord:
        """Create the role or replace its description and rules (one atomic upsert)."""
        check_text("a role name", name, 64)
        now = utcnow()
        values = {"description": description, "rules": _rules(rules), "updated_at": now}
        statement = self.db.insert(Role).values(name=name, created_at=now, **values)
        statement = statement.on_conflict_do_update(index_elements=[Role.name], set_=values)
        async with self.db.session(write=True) as session:
            await session.execute(statement)
            role = await session.get_one(Role, name, populate_existing=True)
            return _record(role)

    async def get(self, name: str) -> RoleRecord:
        """The role named ``name``; Missing if there is none."""
        async with self.db.session() as session:
            role = await session.get(Role, name)
            if role is None:
                raise Missing(f"no role named {name!r}")
            return _record(role)

    async def list(self) -> builtins.list[RoleRecord]:
        """Every role, by name."""
        async with self.db.session() as session:
            return [_record(r) for r in await session.scalars(select(Role).order_by(Role.name))]

    async def holders(self, name: str) -> builtins.list[str]:
        """The names of the users holding role ``name``, sorted."""
        async with self.db.session() as session:
            return await _holders(session, name)

    async def delete(self, name: str, *, force: bool = False) -> None:
        """Delete the stored role.

        When its name stays valid without it (one of ``known_roles``: the built-in ``admin``,
        a role of the settings file), the users holding it keep it, now as defined there.
        Otherwise their grants would dangle: while users hold it, Conflict names them, unless
        ``force``, which takes it from them too.

        On PostgreSQL the role's row is locked (``FOR UPDATE``) before its holders are read,
        and granting a role locks it for share (``UserRepo``): a grant committed meanwhile is
        seen, never left naming a deleted role.
        """
        async with self.db.session(write=True) as session:
            found = await session.scalar(
                select(Role.name).where(Role.name == name).with_for_update()
            )
            if found is None:
                raise Missing(f"no role named {name!r}")
            if name not in self.known_roles:
                if not force:
                    holders = await _holders(session, name, limit=6)
                    if holders:
                        shown = ", ".join(holders[:5]) + (", ..." if len(holders) > 5 else "")
                        raise Conflict(
                            f"role {name!r} is held by {shown}: take it from them first, or "
                            "force the deletion"
                        )
                await session.execute(delete(UserRole).where(UserRole.role_name == name))
            await session.execute(delete(Role).where(Role.name == name))
