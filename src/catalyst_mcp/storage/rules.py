"""Rules stored through the API: an id and the rule as JSON (validated by the rules engine)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from catalyst_mcp.errors import Missing
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.models import check_text, utcnow
from catalyst_mcp.storage.rules_model import StoredRule

__all__ = ["StoredRuleRecord", "StoredRuleRepo"]


@dataclass(frozen=True, slots=True)
class StoredRuleRecord:
    """A stored rule: its id, its data as stored (without the id), and when."""

    id: str
    data: dict[str, Any]
    created_at: datetime
    updated_at: datetime


def _record(row: StoredRule) -> StoredRuleRecord:
    return StoredRuleRecord(row.id, dict(row.data), row.created_at, row.updated_at)


class StoredRuleRepo:
    """Create, replace, read and delete stored rules."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def list(self) -> builtins.list[StoredRuleRecord]:
        """Every stored rule, by id."""
        async with self.db.session() as session:
            rows = await session.scalars(select(StoredRule).order_by(StoredRule.id))
            return [_record(r) for r in rows]

    async def get(self, rule_id: str) -> StoredRuleRecord:
        """The rule ``rule_id``; Missing if there is none."""
        async with self.db.session() as session:
            row = await session.get(StoredRule, rule_id)
            if row is None:
                raise Missing(f"no stored rule {rule_id!r}")
            return _record(row)

    async def put(self, rule_id: str, data: Mapping[str, Any]) -> StoredRuleRecord:
        """Create the rule or replace its data (one atomic upsert)."""
        check_text("a rule id", rule_id, 64)
        now = utcnow()
        values = {"data": {k: v for k, v in data.items() if k != "id"}, "updated_at": now}
        statement = self.db.insert(StoredRule).values(id=rule_id, created_at=now, **values)
        statement = statement.on_conflict_do_update(index_elements=[StoredRule.id], set_=values)
        async with self.db.session(write=True) as session:
            await session.execute(statement)
            row = await session.get_one(StoredRule, rule_id, populate_existing=True)
            return _record(row)

    async def delete(self, rule_id: str) -> None:
        """Delete the rule; Missing if there is none."""
        async with self.db.session(write=True) as session:
            done = await session.execute(delete(StoredRule).where(StoredRule.id == rule_id))
            if not getattr(done, "rowcount", 0):
                raise Missing(f"no stored rule {rule_id!r}")
