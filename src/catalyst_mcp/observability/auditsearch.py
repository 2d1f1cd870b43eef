"""Reading the audit trail back: filtered search and JSON-lines export.

Filters use the indexed columns (``at``, ``actor``, ``action``, ``outcome``) and page by
``seq`` (keyset, never OFFSET), so both stay fast on millions of records. Exported lines carry
the canonical form's version ``v``, ``seq``, ``prev_hash`` and ``hash``: an unfiltered export
can be verified without the database (see :mod:`~catalyst_mcp.observability.auditchain`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson
from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.ext.asyncio import AsyncEngine

from catalyst_mcp.observability.auditchain import (
    FORMAT,
    HasEngine,
    engine_of,
    iso,
    storage_errors,
)
from catalyst_mcp.storage.audit_model import AuditRecord

__all__ = ["TextSink", "export", "search"]

EXPORT_BATCH = 1000


class TextSink(Protocol):
    """Where :func:`export` writes: a text file, ``sys.stdout``."""

    def write(self, text: str, /) -> object: ...


def _utc(when: datetime) -> datetime:
    """``when`` in UTC; naive values are taken as UTC. Stored as naive UTC on SQLite."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _like(glob: str) -> str:
    """A shell-style glob (``*``, ``?``) as a LIKE pattern escaped with ``\\``."""
    escaped = glob.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def _filters(
    actor: str | None,
    action: str | None,
    outcome: str | None,
    target: str | None,
    since: datetime | None,
    until: datetime | None,
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if actor is not None:
        where.append(AuditRecord.actor == actor)
    if action is not None:
        where.append(AuditRecord.action == action)
    if outcome is not None:
        where.append(AuditRecord.outcome == outcome)
    if target is not None:
        if "*" in target or "?" in target:
            where.append(AuditRecord.target.like(_like(target), escape="\\"))
        else:
            where.append(AuditRecord.target == target)
    if since is not None:
        where.append(AuditRecord.at >= _utc(since))
    if until is not None:
        where.append(AuditRecord.at < _utc(until))
    return where


def _as_dict(record: Any) -> dict[str, Any]:
    return {
        "v": FORMAT,
        "seq": record.seq,
        "at": iso(record.at),
        "actor": record.actor,
        "actor_kind": record.actor_kind,
        "action": record.action,
        "target": record.target,
        "outcome": record.outcome,
        "latency_ms": record.latency_ms,
        "detail": record.detail,
        "prev_hash": record.prev_hash,
        "hash": record.hash,
    }


async def _page(engine: AsyncEngine, query: Select[Any]) -> list[dict[str, Any]]:
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [_as_dict(row) for row in rows]


def _query(where: list[ColumnElement[bool]]) -> Select[Any]:
    return select(*AuditRecord.__table__.columns).where(*where)


async def search(
    db: AsyncEngine | HasEngine,
    *,
    actor: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    after_seq: int | None = None,
    newest_first: bool = False,
) -> list[dict[str, Any]]:
    """Records matching every given filter, at most ``limit``, in ``seq`` order.

    ``actor``, ``action`` and ``outcome`` match exactly; ``target`` is a glob (``github__*``);
    ``since`` is inclusive, ``until`` exclusive (naive times are UTC). Page with ``after_seq``
    (the last ``seq`` seen); ``newest_first`` reverses the order (and pages with ``after_seq``
    meaning "older than").
    """
    where = _filters(actor, action, outcome, target, since, until)
    if after_seq is not None:
        where.append(AuditRecord.seq < after_seq if newest_first else AuditRecord.seq > after_seq)
    order = AuditRecord.seq.desc() if newest_first else AuditRecord.seq
    with storage_errors("cannot search the audit trail"):
        return await _page(engine_of(db), _query(where).order_by(order).limit(max(0, limit)))


async def _each(
    engine: AsyncEngine, where: list[ColumnElement[bool]]
) -> AsyncIterator[dict[str, Any]]:
    after = 0
    while True:
        query = _query([*where, AuditRecord.seq > after]).order_by(AuditRecord.seq)
        page = await _page(engine, query.limit(EXPORT_BATCH))
        for record in page:
            yield record
        if len(page) < EXPORT_BATCH:
            return
        after = page[-1]["seq"]


async def export(
    db: AsyncEngine | HasEngine,
    stream: TextSink,
    *,
    actor: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> int:
    """Write every matching record to ``stream`` as one JSON object per line, in ``seq``
    order (filters as in :func:`search`); returns how many were written."""
    where = _filters(actor, action, outcome, target, since, until)
    count = 0
    with storage_errors("cannot export the audit trail"):
        async for record in _each(engine_of(db), where):
            stream.write(orjson.dumps(record).decode() + "\n")
            count += 1
    return count
