"""Sealed secrets: stored as ``(key_id, nonce, ciphertext)``, never as plaintext.

A secret belongs to an ``owner`` (a user name, or ``*`` for everyone) and a ``scope`` (the
server or pack it is for, or ``*`` for any). Looking one up takes the most specific that
exists: the owner's for this scope, the owner's for any scope, everyone's for this scope, then
everyone's for any scope (:meth:`SecretRepo.candidates`). The vault seals and opens values;
this module only moves sealed bytes, and lists metadata without them.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, case, delete, select, update

from catalyst_mcp.errors import Missing
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.models import Secret, check_text, utcnow

__all__ = ["ANY", "SealedSecret", "SecretRecord", "SecretRepo"]

ANY = "*"
"""The owner meaning everyone, or the scope meaning any server or pack."""


@dataclass(frozen=True, slots=True)
class SecretRecord:
    """A secret's metadata: what is listed (no sealed bytes)."""

    id: int
    owner: str
    scope: str
    name: str
    key_id: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class SealedSecret:
    """A secret with its sealed value, for the vault to open or reseal."""

    id: int
    owner: str
    scope: str
    name: str
    key_id: str
    nonce: bytes
    ciphertext: bytes
    created_at: datetime
    updated_at: datetime

    def __repr__(self) -> str:
        return (
            f"SealedSecret(owner={self.owner!r}, scope={self.scope!r}, name={self.name!r}, "
            f"key_id={self.key_id!r})"
        )


_METADATA = (
    Secret.id,
    Secret.owner,
    Secret.scope,
    Secret.name,
    Secret.key_id,
    Secret.created_at,
    Secret.updated_at,
)


def _sealed(row: Secret) -> SealedSecret:
    return SealedSecret(
        id=row.id,
        owner=row.owner,
        scope=row.scope,
        name=row.name,
        key_id=row.key_id,
        nonce=row.nonce,
        ciphertext=row.ciphertext,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _exactly(owner: str, scope: str, name: str) -> ColumnElement[bool]:
    return and_(Secret.owner == owner, Secret.scope == scope, Secret.name == name)


class SecretRepo:
    """Store, find, list, delete and reseal sealed secrets."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def put(
        self, owner: str, scope: str, name: str, key_id: str, nonce: bytes, ciphertext: bytes
    ) -> SecretRecord:
        """Store the sealed value of ``owner``/``scope``/``name``, replacing any (an upsert)."""
        check_text("a secret's owner", owner, 128)
        check_text("a secret's scope", scope, 128)
        check_text("a secret's name", name, 128)
        check_text("a key id", key_id, 64)
        now = utcnow()
        sealed = {"key_id": key_id, "nonce": nonce, "ciphertext": ciphertext, "updated_at": now}
        statement = self.db.insert(Secret).values(
            owner=owner, scope=scope, name=name, created_at=now, **sealed
        )
        statement = statement.on_conflict_do_update(
            index_elements=[Secret.owner, Secret.scope, Secret.name], set_=sealed
        )
        async with self.db.session(write=True) as session:
            await session.execute(statement)
            row = (
                await session.execute(select(Secret).where(_exactly(owner, scope, name)))
            ).scalar_one()
            return SecretRecord(row.id, owner, scope, name, key_id, row.created_at, row.updated_at)

    async def get(self, owner: str, scope: str, name: str) -> SealedSecret:
        """Exactly this secret; Missing if it is not stored."""
        async with self.db.session() as session:
            row = await session.scalar(select(Secret).where(_exactly(owner, scope, name)))
        if row is None:
            raise Missing(f"no secret {name!r} for owner {owner!r} and scope {scope!r}")
        return _sealed(row)

    async def candidates(self, owner: str, scope: str, name: str) -> SealedSecret | None:
        """The most specific secret ``name`` that applies to ``owner`` calling ``scope``:
        (owner, scope), then (owner, *), then (*, scope), then (*, *). One query."""
        query = (
            select(Secret)
            .where(
                Secret.name == name,
                Secret.owner.in_({owner, ANY}),
                Secret.scope.in_({scope, ANY}),
            )
            .order_by(
                case((Secret.owner == ANY, 1), else_=0),
                case((Secret.scope == ANY, 1), else_=0),
            )
            .limit(1)
        )
        async with self.db.session() as session:
            row = await session.scalar(query)
        return None if row is None else _sealed(row)

    async def list(
        self, owner: str | None = None, scope: str | None = None
    ) -> builtins.list[SecretRecord]:
        """Metadata of the stored secrets (of ``owner``, for ``scope``), never their values."""
        query = select(*_METADATA).order_by(Secret.owner, Secret.scope, Secret.name)
        if owner is not None:
            query = query.where(Secret.owner == owner)
        if scope is not None:
            query = query.where(Secret.scope == scope)
        async with self.db.session() as session:
            rows = await session.execute(query)
            return [SecretRecord(*row) for row in rows]

    async def delete(self, owner: str, scope: str, name: str) -> None:
        """Delete exactly this secret; Missing if it is not stored."""
        async with self.db.session(write=True) as session:
            result = await session.execute(
                delete(Secret)
                .where(_exactly(owner, scope, name))
                .returning(Secret.id)
                .execution_options(synchronize_session=False)
            )
            if result.first() is None:
                raise Missing(f"no secret {name!r} for owner {owner!r} and scope {scope!r}")

    async def iter_sealed(
        self, batch: int = 100, *, skip_key_id: str | None = None
    ) -> AsyncIterator[SealedSecret]:
        """Every sealed secret (or those not sealed with ``skip_key_id``, the active key), by
        id, ``batch`` rows per short transaction: for key rotation, which reseals each with
        :meth:`replace_sealed` as it goes."""
        if batch < 1:
            raise ValueError("batch must be at least 1")
        after = 0
        while True:
            query = select(Secret).where(Secret.id > after).order_by(Secret.id).limit(batch)
            if skip_key_id is not None:
                query = query.where(Secret.key_id != skip_key_id)
            async with self.db.session() as session:
                rows = [_sealed(row) for row in await session.scalars(query)]
            for row in rows:
                yield row
            if len(rows) < batch:
                return
            after = rows[-1].id

    async def replace_sealed(
        self, current: SealedSecret, key_id: str, nonce: bytes, ciphertext: bytes
    ) -> bool:
        """Swap in ``current``'s value resealed under ``key_id`` if the row still holds exactly
        the sealed value ``current`` was read with: the same key id and the same nonce (unique
        per seal). A compare-and-swap: a concurrent rotation or a new value, even one sealed
        again under the old key meanwhile, wins, and this returns False. The value is the
        same, so ``updated_at`` is left as it is."""
        check_text("a key id", key_id, 64)
        statement = (
            update(Secret)
            .where(
                Secret.id == current.id,
                Secret.key_id == current.key_id,
                Secret.nonce == current.nonce,
            )
            .values(
                key_id=key_id,
                nonce=nonce,
                ciphertext=ciphertext,
                updated_at=Secret.updated_at,
            )
            .returning(Secret.id)
            .execution_options(synchronize_session=False)
        )
        async with self.db.session(write=True) as session:
            result = await session.execute(statement)
            return result.first() is not None
