"""Tables of the audit trail: the hash-chained records and the head of the chain.

``audit_records`` holds one row per call, denial or admin change. Each row's ``hash`` covers its
own contents and the previous row's hash (``prev_hash``), so editing, deleting or reordering
rows breaks the chain (see :mod:`catalyst_mcp.observability.auditchain`).

``audit_chain`` has exactly one row (``id = 1``): the sequence number and hash of the last
record. Every append locks it first, which serializes writers across gateway instances sharing
one database and lets ``catalyst audit verify`` notice records deleted from the end.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from catalyst_mcp.storage.base import Base
from catalyst_mcp.storage.models import UtcDateTime

__all__ = ["HEAD_ID", "AuditChain", "AuditRecord"]

HEAD_ID = 1
# SQLite only auto-numbers an INTEGER PRIMARY KEY; elsewhere a 64-bit key.
_SEQ_TYPE = BigInteger().with_variant(Integer, "sqlite")


class AuditRecord(Base):
    """One audited event. Rows are only ever inserted, never updated or deleted."""

    __tablename__ = "audit_records"

    seq: Mapped[int] = mapped_column(_SEQ_TYPE, primary_key=True, autoincrement=True)
    # DateTime(timezone=True): timestamptz on PostgreSQL, UTC text on SQLite.
    at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(128), index=True)
    actor_kind: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(512))
    outcome: Mapped[str] = mapped_column(String(16), index=True)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditChain(Base):
    """The head of the chain: the last record's ``seq`` and ``hash`` (one row, id 1)."""

    __tablename__ = "audit_chain"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_seq: Mapped[int] = mapped_column(BigInteger)
    last_hash: Mapped[str] = mapped_column(String(64))
