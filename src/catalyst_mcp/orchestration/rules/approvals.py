"""Approvals: calls a ``require_approval`` rule holds until an approver approves or rejects.

A held call gets an approval request (``apr_...``), stored with the database's
:class:`~catalyst_mcp.storage.approvals.ApprovalRepo` so that the CLI and every gateway
instance see it (in memory without a database: then only this process can decide). One
request serves one call: the call that waits for it, or an identical call of the same caller
made later (same tool, same arguments), which finds it approved and runs (the request becomes
``used``). A request nobody decides expires after its timeout.

:meth:`Approvals.wait` waits for a decision: woken at once when it is made through this
process (the API), else it looks every ``approval_poll_seconds`` (the CLI, another instance).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from datetime import timedelta
from typing import Any, Protocol

import orjson

from catalyst_mcp.errors import Conflict, Missing
from catalyst_mcp.storage.approvals import FINAL, ApprovalRecord
from catalyst_mcp.storage.models import utcnow

__all__ = ["ApprovalStore", "Approvals", "MemoryApprovalStore", "arguments_digest"]

MAX_SHOWN_BYTES = 16 * 1024  # arguments larger than this are not kept for the approver


class ApprovalStore(Protocol):
    """Where approval requests live (:class:`~catalyst_mcp.storage.approvals.ApprovalRepo`)."""

    async def create(self, record: ApprovalRecord) -> ApprovalRecord: ...

    async def get(self, approval_id: str) -> ApprovalRecord: ...

    async def find_open(
        self, subject: str, via: str, tool: str, digest: str, rule_id: str
    ) -> ApprovalRecord | None: ...

    async def list(
        self, status: str | None = None, limit: int = 100
    ) -> builtins.list[ApprovalRecord]: ...

    async def change(
        self, approval_id: str, before: str, after: str, **facts: Any
    ) -> ApprovalRecord: ...


class MemoryApprovalStore:
    """Approval requests in this process (a gateway without a database; tests)."""

    def __init__(self) -> None:
        self._items: dict[str, ApprovalRecord] = {}

    async def create(self, record: ApprovalRecord) -> ApprovalRecord:
        self._items[record.id] = record
        return record

    async def get(self, approval_id: str) -> ApprovalRecord:
        found = self._items.get(approval_id)
        if found is None:
            raise Missing(f"no approval request {approval_id!r}")
        return found

    async def find_open(
        self, subject: str, via: str, tool: str, digest: str, rule_id: str
    ) -> ApprovalRecord | None:
        now = utcnow()
        for record in sorted(self._items.values(), key=lambda r: r.created_at, reverse=True):
            if (
                (record.subject, record.via, record.tool, record.digest, record.rule_id)
                == (
                    subject,
                    via,
                    tool,
                    digest,
                    rule_id,
                )
                and record.status in ("pending", "approved")
                and record.expires_at > now
            ):
                return record
        return None

    async def list(
        self, status: str | None = None, limit: int = 100
    ) -> builtins.list[ApprovalRecord]:
        found = [r for r in self._items.values() if status is None or r.status == status]
        return sorted(found, key=lambda r: r.created_at, reverse=True)[:limit]

    async def change(
        self, approval_id: str, before: str, after: str, **facts: Any
    ) -> ApprovalRecord:
        record = await self.get(approval_id)
        if record.status != before:
            raise Conflict(f"approval request {approval_id!r} is {record.status}, not {before}")
        if after in ("approved", "rejected"):
            facts["decided_at"] = utcnow()
        record = replace(record, status=after, **facts)
        self._items[approval_id] = record
        return record


def arguments_digest(arguments: Mapping[str, Any] | None) -> str:
    """The SHA-256 of the arguments as canonical JSON: what makes two calls the same call."""
    data = orjson.dumps(arguments or {}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(data).hexdigest()


Decided = Callable[[ApprovalRecord], Awaitable[None]]


class Approvals:
    """The approval requests of one gateway and the calls waiting for them."""

    def __init__(
        self,
        store: ApprovalStore,
        *,
        poll_seconds: float = 1.0,
        on_change: Decided | None = None,
    ) -> None:
        self.store = store
        self.poll_seconds = poll_seconds
        self.on_change = on_change  # told of every new request and every decision
        self._wakers: dict[str, asyncio.Event] = {}

    async def open(
        self,
        *,
        rule_id: str,
        subject: str,
        via: str,
        tool: str,
        server: str,
        arguments: Mapping[str, Any] | None,
        message: str,
        timeout: float,
    ) -> ApprovalRecord:
        """The open request of this caller for this call (pending, or approved and not yet
        used), or a new pending one."""
        digest = arguments_digest(arguments)
        found = await self.store.find_open(subject, via, tool, digest, rule_id)
        if found is not None:
            return found
        shown = dict(arguments or {})
        if len(orjson.dumps(shown)) > MAX_SHOWN_BYTES:
            shown_or_none: dict[str, Any] | None = None
        else:
            shown_or_none = shown
        now = utcnow()
        record = ApprovalRecord(
            id="apr_" + secrets.token_urlsafe(12),
            rule_id=rule_id,
            subject=subject,
            via=via,
            tool=tool,
            server=server,
            digest=digest,
            arguments=shown_or_none,
            message=message,
            status="pending",
            created_at=now,
            expires_at=now + timedelta(seconds=timeout),
        )
        record = await self.store.create(record)
        await self._told(record)
        return record

    async def decide(
        self, approval_id: str, *, approve: bool, by: str, note: str | None = None
    ) -> ApprovalRecord:
        """Approve or reject a pending request (Conflict if it is not pending; an expired one
        is marked expired first)."""
        record = await self.store.get(approval_id)
        if record.status == "pending" and record.expires_at <= utcnow():
            await self.expire(record)
            raise Conflict(f"approval request {approval_id!r} has expired")
        record = await self.store.change(
            approval_id,
            "pending",
            "approved" if approve else "rejected",
            decided_by=by,
            note=note,
        )
        self._wake(approval_id)
        await self._told(record)
        return record

    async def cancel(self, record: ApprovalRecord) -> ApprovalRecord:
        """The caller gave up waiting: a pending request is cancelled."""
        try:
            record = await self.store.change(record.id, "pending", "cancelled")
        except Conflict:
            return await self.store.get(record.id)
        await self._told(record)
        return record

    async def expire(self, record: ApprovalRecord) -> ApprovalRecord:
        try:
            record = await self.store.change(record.id, "pending", "expired")
        except Conflict:
            return await self.store.get(record.id)
        await self._told(record)
        return record

    async def use(self, record: ApprovalRecord) -> bool:
        """Take an approved request for the call it allows (False: another call took it)."""
        try:
            await self.store.change(record.id, "approved", "used")
        except Conflict:
            return False
        return True

    async def wait(
        self,
        record: ApprovalRecord,
        deadline: float,
        tick: Callable[[float], Awaitable[None]] | None = None,
    ) -> ApprovalRecord:
        """Wait until ``record`` is decided or ``deadline`` (``time.monotonic()``) passes, and
        return it as it is then. ``tick(seconds waited)`` runs at every look."""
        started = time.monotonic()
        waker = self._wakers.setdefault(record.id, asyncio.Event())
        try:
            while record.status == "pending":
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                waker.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(waker.wait(), min(self.poll_seconds, left))
                record = await self.store.get(record.id)
                if record.status == "pending" and tick is not None:
                    await tick(time.monotonic() - started)
            return record
        finally:
            self._wakers.pop(record.id, None)

    def wake(self, approval_id: str) -> None:
        """Look at ``approval_id`` again now (decided elsewhere: another instance said so)."""
        self._wake(approval_id)

    def _wake(self, approval_id: str) -> None:
        waker = self._wakers.get(approval_id)
        if waker is not None:
            waker.set()

    async def _told(self, record: ApprovalRecord) -> None:
        if self.on_change is not None:
            await self.on_change(record)


def is_final(record: ApprovalRecord) -> bool:
    return record.status in FINAL
