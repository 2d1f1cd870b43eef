"""What the rules engine tells the rest of the gateway: alerts and approval requests, as events.

:class:`EventSink` is the seam: one method, :meth:`~EventSink.publish`, which never blocks the
call that raised the event. Until the gateway has an event bus, :class:`LogAuditSink` writes
each event to the log and to the audit trail (action ``rules.alert``,
``rules.approval.requested``, ``rules.approval.approved``, ...); the event bus will implement
the same protocol (and may keep these two consumers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from catalyst_mcp.observability.auditevent import AuditEvent

if TYPE_CHECKING:
    from catalyst_mcp.observability.audit import AuditLog

__all__ = ["EventSink", "LogAuditSink", "RuleEvent"]

log = logging.getLogger("catalyst.rules")

LEVELS = {"info": logging.INFO, "warning": logging.WARNING, "critical": logging.CRITICAL}


@dataclass(frozen=True, slots=True)
class RuleEvent:
    """One event: ``name`` is ``rules.alert`` or ``rules.approval.<state>`` (requested,
    approved, rejected, expired, cancelled); ``subject`` the caller whose call raised it."""

    name: str
    rule_id: str
    subject: str
    subject_kind: str
    tool: str
    server: str
    message: str = ""
    severity: str = "info"
    detail: Mapping[str, Any] = field(default_factory=dict)


class EventSink(Protocol):
    """Where rule events go (the event bus, when there is one)."""

    def publish(self, event: RuleEvent) -> None:
        """Take ``event``; never blocks, never raises."""


class LogAuditSink:
    """Events as log lines and audit records (``audit``: the gateway's audit log when there is
    one: it is made when the gateway starts)."""

    def __init__(self, audit: Callable[[], AuditLog | None] = lambda: None) -> None:
        self.audit = audit
        self.published: int = 0

    def publish(self, event: RuleEvent) -> None:
        self.published += 1
        log.log(
            LEVELS.get(event.severity, logging.INFO),
            "%s: rule %r, %s on %s by %s%s",
            event.name,
            event.rule_id,
            event.severity,
            event.tool,
            event.subject,
            f": {event.message}" if event.message else "",
        )
        audit = self.audit()
        if audit is None:
            return
        detail: dict[str, Any] = {"rule": event.rule_id, "server": event.server}
        if event.message:
            detail["message"] = event.message[:500]
        if event.name == "rules.alert":
            detail["severity"] = event.severity
        detail.update(event.detail)
        audit.record(
            AuditEvent(
                event.subject, event.subject_kind, event.name, event.tool, "ok", None, detail
            )
        )
