"""Where events come from: small adapters between the gateway's parts and the bus.

* :class:`CallEvents`: the MCP server's hook at the end of every ``tools/call``
  (``call.finished``, ``call.refused``);
* :class:`UpstreamWatch`: compares the configured servers' states with the last ones seen every
  ``events.state_poll_seconds`` (``upstream.state_changed``): no hook in the upstreams' code,
  and a restart that happened between two looks still shows, as a grown ``restarts``;
* :class:`RuleEvents`: the rules engine's :class:`~catalyst_mcp.orchestration.rules.events.
  EventSink`, which keeps its log lines and audit records and adds ``rule.alert``,
  ``approval.requested`` and ``approval.decided``;
* :func:`pin_events`: the pinning's audit hook, which also emits ``tool.definition_changed``
  for the ``pin.changed`` records (one per change, whichever instance saw it first);
* :func:`pack_event`, :func:`step_event`, :func:`run_event`: the packs' and workflow store's
  hooks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from catalyst_mcp.errors import AccessError, ApprovalRequired, RateLimited, ToolHeldBack
from catalyst_mcp.orchestration.events.types import (
    MAX_TEXT,
    ApprovalDecided,
    ApprovalRequested,
    CallFinished,
    CallRefused,
    Event,
    PackReloaded,
    RuleAlert,
    ToolDefinitionChanged,
    UpstreamStateChanged,
    WorkflowRunFinished,
    WorkflowStepFinished,
)

if TYPE_CHECKING:
    from catalyst_mcp.context import CallContext
    from catalyst_mcp.observability.auditevent import AuditEvent
    from catalyst_mcp.orchestration.rules.events import EventSink, RuleEvent
    from catalyst_mcp.orchestration.workflows.runstate import RunState, StepState
    from catalyst_mcp.providers import Provider

__all__ = [
    "CallEvents",
    "Emit",
    "RuleEvents",
    "UpstreamWatch",
    "pack_event",
    "pin_events",
    "refusal_reason",
    "run_event",
    "step_event",
]

log = logging.getLogger("catalyst.events")

Emit = Callable[[Event], None]
MAX_NAME = 256  # characters of a tool name kept in an event


def refusal_reason(error: AccessError) -> str:
    """The ``reason`` of a refused call."""
    if isinstance(error, ApprovalRequired):
        return "approval"
    if isinstance(error, ToolHeldBack):
        return "held"
    return "limited" if isinstance(error, RateLimited) else "denied"


class CallEvents:
    """The end of every ``tools/call`` as an event (set as ``McpServer.events``)."""

    __slots__ = ("emit", "finished", "refused")

    def __init__(self, emit: Emit, publishes: Callable[[str], bool]) -> None:
        self.emit = emit
        self.finished = publishes(CallFinished.TYPE)
        self.refused = publishes(CallRefused.TYPE)

    def ended(
        self,
        server: str,
        tool: str,
        outcome: str,
        ctx: CallContext,
        started: float,
        error: BaseException | None,
    ) -> None:
        """A call of ``tool`` on ``server`` ended with ``outcome`` (``refused``: ``error`` is
        the AccessError)."""
        identity = ctx.identity
        if outcome == "refused":
            if self.refused and isinstance(error, AccessError):
                self.emit(
                    CallRefused(
                        server,
                        tool[:MAX_NAME],
                        refusal_reason(error),
                        identity.subject,
                        identity.kind,
                        ctx.channel,
                        error.message[:MAX_TEXT],
                    )
                )
        elif self.finished:
            self.emit(
                CallFinished(
                    server,
                    tool[:MAX_NAME],
                    outcome,
                    identity.subject,
                    identity.kind,
                    ctx.channel,
                    round((time.perf_counter() - started) * 1000, 3),
                )
            )


class UpstreamWatch:
    """Emits ``upstream.state_changed`` when a server's state (or restart count) differs from
    the last look. ``servers`` gives the configured servers' providers by name."""

    def __init__(
        self, servers: Callable[[], dict[str, Provider]], emit: Emit, interval: float
    ) -> None:
        self.servers = servers
        self.emit = emit
        self.interval = interval
        self.seen: dict[str, tuple[str, int]] = {}
        self._task: asyncio.Task[None] | None = None

    def look(self) -> int:
        """Compare now; how many events were emitted."""
        emitted = 0
        current = self.servers()
        for name, provider in current.items():
            health = provider.health()
            state = str(health.get("status", "unknown"))
            restarts = int(health.get("restarts", 0) or 0)
            before = self.seen.get(name)
            self.seen[name] = (state, restarts)
            if before is not None and before == (state, restarts):
                continue
            error = health.get("error") if state != "ready" else None
            self.emit(
                UpstreamStateChanged(
                    name,
                    state,
                    before[0] if before is not None else None,
                    restarts,
                    str(error)[:MAX_TEXT] if error else None,
                )
            )
            emitted += 1
        for name in [n for n in self.seen if n not in current]:
            state, restarts = self.seen.pop(name)
            self.emit(UpstreamStateChanged(name, "removed", state, restarts, None))
            emitted += 1
        return emitted

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._loop(), name="catalyst-events-upstreams"
            )

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _loop(self) -> None:
        while True:
            try:
                self.look()
            except Exception:  # a provider's health report failed: next time
                log.warning("events: looking at the servers' states failed", exc_info=True)
            await asyncio.sleep(self.interval)


class RuleEvents:
    """The rules engine's event sink: ``sink`` (its log lines and audit records) first, then
    the bus."""

    def __init__(self, sink: EventSink, emit: Emit) -> None:
        self.sink = sink
        self.emit = emit

    def publish(self, event: RuleEvent) -> None:
        self.sink.publish(event)
        detail = event.detail
        if event.name == "rules.alert":
            self.emit(
                RuleAlert(
                    event.rule_id,
                    event.subject,
                    event.tool,
                    event.server,
                    event.severity,
                    event.message[:MAX_TEXT],
                )
            )
            return
        approval = str(detail.get("approval", ""))
        state = event.name.rpartition(".")[2]
        if state == "requested":
            self.emit(
                ApprovalRequested(
                    approval,
                    event.rule_id,
                    event.subject,
                    event.tool,
                    event.server,
                    event.message[:MAX_TEXT],
                )
            )
        elif event.name.startswith("rules.approval."):
            decided_by = detail.get("decided_by")
            self.emit(
                ApprovalDecided(
                    approval,
                    event.rule_id,
                    event.subject,
                    event.tool,
                    event.server,
                    state,
                    str(decided_by) if decided_by is not None else None,
                )
            )


def pin_events(
    audit: Callable[[AuditEvent], None] | None, emit: Emit
) -> Callable[[AuditEvent], None]:
    """The pinning's audit hook: records go to ``audit`` (the hook it had, if any), and each
    ``pin.changed`` becomes a ``tool.definition_changed`` event."""

    def record(event: AuditEvent) -> None:
        if audit is not None:
            audit(event)
        if event.action == "pin.changed":
            d: dict[str, Any] = dict(event.detail)
            emit(
                ToolDefinitionChanged(
                    str(d.get("server", "")),
                    str(d.get("tool", "")),
                    str(d.get("change", "")),
                    str(d.get("policy", "")),
                    not bool(d.get("served", True)),
                    str(d.get("digest", "")),
                )
            )

    return record


def pack_event(emit: Emit) -> Callable[[Path, str | None, str, int, int], None]:
    """The packs' reload hook: ``(file, pack, outcome, problems, tools)``."""

    def reloaded(file: Path, pack: str | None, outcome: str, problems: int, tools: int) -> None:
        emit(PackReloaded(file.name, pack, outcome, problems, tools))

    return reloaded


def step_event(emit: Emit) -> Callable[[RunState, str, StepState], None]:
    """The workflow store's hook for a step that ended."""

    def ended(run: RunState, key: str, state: StepState) -> None:
        error = state.error[:MAX_TEXT] if state.error else None
        emit(
            WorkflowStepFinished(
                run.workflow, run.id, key, state.status, state.attempts, run.trigger, error
            )
        )

    return ended


def run_event(emit: Emit) -> Callable[[RunState], None]:
    """The workflow store's hook for a run that ended."""

    def ended(run: RunState) -> None:
        error = run.error or {}
        message = error.get("message")
        failed_step = error.get("step")
        duration = None
        if run.finished_at is not None:
            duration = round((run.finished_at - run.created_at).total_seconds() * 1000, 3)
        emit(
            WorkflowRunFinished(
                run.workflow,
                run.id,
                run.status,
                run.trigger,
                run.identity.subject,
                duration,
                str(failed_step) if failed_step is not None else None,
                str(message)[:MAX_TEXT] if message is not None else None,
            )
        )

    return ended
