"""The rules room of one gateway, built from the settings: the rule set (files and stored
rules, hot reload), the approvals, the events, and the hook on the request path."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from catalyst_mcp.errors import ConfigProblem
from catalyst_mcp.orchestration.rules.approvals import Approvals, ApprovalStore, MemoryApprovalStore
from catalyst_mcp.orchestration.rules.config import RulesSettings
from catalyst_mcp.orchestration.rules.events import EventSink, LogAuditSink, RuleEvent
from catalyst_mcp.orchestration.rules.pipeline import RulesHook
from catalyst_mcp.orchestration.rules.ruleset import RuleSet
from catalyst_mcp.storage.approvals import ApprovalRecord

if TYPE_CHECKING:
    from catalyst_mcp.packs.watcher import PackWatcher
    from catalyst_mcp.registry import Registry
    from catalyst_mcp.security.access import Access
    from catalyst_mcp.storage.db import Database

__all__ = ["Rules"]

log = logging.getLogger("catalyst.rules")


class Rules:
    """Everything the rules engine runs in one gateway."""

    def __init__(
        self,
        settings: RulesSettings,
        registry: Registry,
        access: Access | None = None,
        db: Database | None = None,
        *,
        events: EventSink | None = None,
    ) -> None:
        self.settings = settings
        self.ruleset = RuleSet(settings.path, db, refresh_seconds=settings.refresh_seconds)
        self.ruleset.load_all()
        self.events: EventSink = events or LogAuditSink(
            lambda: access.audit if access is not None else None
        )
        store: ApprovalStore
        if db is not None:
            from catalyst_mcp.storage.approvals import ApprovalRepo

            store = ApprovalRepo(db)
        else:
            store = MemoryApprovalStore()
        self.approvals = Approvals(
            store, poll_seconds=settings.approval_poll_seconds, on_change=self._approval_event
        )
        self.hook = RulesHook(self.ruleset, registry, settings, self.approvals, self.events, access)
        self.watcher: PackWatcher | None = None

    @property
    def problems(self) -> list[ConfigProblem]:
        return self.ruleset.problems

    async def start(self) -> None:
        await self.ruleset.start()
        if self.settings.path is not None and self.settings.watch and self.watcher is None:
            from catalyst_mcp.packs.watcher import PackWatcher

            self.watcher = PackWatcher(self.ruleset, what="rules", logger=log)
            self.watcher.start()

    async def stop(self) -> None:
        if self.watcher is not None:
            await self.watcher.stop()
            self.watcher = None
        await self.ruleset.stop()

    def readiness(self) -> dict[str, Any]:
        """What ``/ready`` says of the rules."""
        return {
            "status": "failed" if self.problems else "ready",
            "in_force": len(self.ruleset.engine),
            "problems": len(self.problems),
        }

    async def _approval_event(self, record: ApprovalRecord) -> None:
        state = "requested" if record.status == "pending" else record.status
        detail: dict[str, Any] = {"approval": record.id}
        if record.decided_by is not None:
            detail["decided_by"] = record.decided_by
        self.events.publish(
            RuleEvent(
                f"rules.approval.{state}",
                record.rule_id,
                record.subject,
                "user",
                record.tool,
                record.server,
                record.message if state == "requested" else (record.note or ""),
                "info",
                detail,
            )
        )
