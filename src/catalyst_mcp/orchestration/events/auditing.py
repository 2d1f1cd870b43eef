"""The audit consumer: events that nothing else audits become audit records.

Calls and refusals are audited by the request pipeline itself, tool definition changes by
pinning (``pin.changed``), rule alerts and approvals by the rules engine (``rules.alert``,
``rules.approval.*``), and workflow steps as the tool calls they are. What is left is recorded
here, as the gateway (actor ``gateway``, kind ``system``), the action being the event type:

* ``upstream.state_changed``: target the server; outcome ``error`` when the state is
  ``failed``, else ``ok``; detail: the event's data and its id;
* ``pack.reloaded``: target the pack (else its file); outcome ``error`` when the reload
  ``failed``, else ``ok``;
* ``workflow.run_finished``: target ``<workflow>/<run id>``; outcome ``ok`` when completed,
  else ``error``.

With Redis, each event is recorded once, by the instance that consumed it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from catalyst_mcp.observability.auditevent import AuditEvent
from catalyst_mcp.orchestration.events.types import (
    Envelope,
    PackReloaded,
    UpstreamStateChanged,
    WorkflowRunFinished,
)

if TYPE_CHECKING:
    from catalyst_mcp.observability.audit import AuditLog

__all__ = ["AUDITED", "AuditConsumer"]

AUDITED = frozenset({UpstreamStateChanged.TYPE, PackReloaded.TYPE, WorkflowRunFinished.TYPE})


class AuditConsumer:
    """Writes :data:`AUDITED` events to the audit trail (``audit``: the gateway's log, made
    when it starts; None: nothing is recorded)."""

    name = "audit"

    def __init__(self, audit: Callable[[], AuditLog | None]) -> None:
        self.audit = audit

    def accepts(self, event_type: str) -> bool:
        return event_type in AUDITED

    async def handle(self, envelope: Envelope) -> None:
        audit = self.audit()
        if audit is None:
            return
        data = envelope.data
        target, failed = _target(envelope.type, data)
        detail: dict[str, Any] = {**data, "event": envelope.id, "source": envelope.source}
        audit.record(
            AuditEvent(
                "gateway",
                "system",
                envelope.type,
                target,
                "error" if failed else "ok",
                None,
                detail,
            )
        )


def _target(event_type: str, data: dict[str, Any]) -> tuple[str, bool]:
    if event_type == UpstreamStateChanged.TYPE:
        return str(data.get("server", "")), data.get("state") == "failed"
    if event_type == PackReloaded.TYPE:
        return str(data.get("pack") or data.get("file", "")), data.get("outcome") == "failed"
    return f"{data.get('workflow', '')}/{data.get('run_id', '')}", data.get("status") != "completed"
