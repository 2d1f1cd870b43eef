"""The state of one workflow run as the engine keeps it and the store persists it.

A run has inputs, the identity it runs as, a status, and one :class:`StepState` per step it
reached, keyed by the step's id (``fetch``), a ``foreach`` item's (``check[3]``) or a
compensation's (``fetch.compensate``). A resumed run is rebuilt from these: a completed step is
not called again (unless ``retry_safe`` and its completion was never recorded).

A step is ``running`` from its start to its end (``completed``, ``failed`` or ``skipped``), or
until its run ends first (cancelled, out of time, a sibling's failure in a ``parallel`` group,
a resumed run ended without running on): then it is ``cancelled``, at the run's end
(:meth:`RunState.settle`, which the store calls when it records the run's end).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from catalyst_mcp.context import Identity
from catalyst_mcp.storage.models import utcnow

__all__ = [
    "TERMINAL",
    "RunState",
    "RunStatus",
    "StepState",
    "StepStatus",
    "identity_from_json",
    "identity_to_json",
    "new_run_id",
]

RunStatus = Literal["running", "completed", "failed", "cancelled"]
StepStatus = Literal["running", "completed", "failed", "skipped", "cancelled"]
TERMINAL = frozenset({"completed", "failed", "cancelled"})


def new_run_id() -> str:
    """A run's id, also its MCP task id: random, unguessable, URL- and header-safe."""
    return "wr_" + uuid.uuid4().hex


@dataclass(slots=True)
class StepState:
    """What one step did: its status, its result as later steps see it, its error."""

    status: StepStatus
    attempts: int = 0
    result: Any = None
    is_error: bool = False
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None

    def view(self) -> dict[str, Any]:
        """What ``steps.<id>`` shows an expression."""
        return {
            "status": self.status,
            "result": self.result,
            "isError": self.is_error,
            "error": self.error,
        }


@dataclass(slots=True)
class RunState:
    """One run of one workflow."""

    id: str
    workflow: str
    inputs: dict[str, Any]
    identity: Identity
    trigger: str = "call"  # call, task, schedule
    status: RunStatus = "running"
    steps: dict[str, StepState] = field(default_factory=dict)
    output: Any = None
    error: dict[str, Any] | None = None
    task_era: str | None = None  # the MCP era of a run started as a task
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    finished_at: datetime | None = None
    cancel_requested: bool = False  # as the store last read it (resume)

    @property
    def done(self) -> bool:
        return self.status in TERMINAL

    def settle(self) -> list[str]:
        """A run that ended: its steps still ``running`` end with it, ``cancelled`` at its
        end; their keys (none, most often)."""
        ended = [key for key, step in self.steps.items() if step.status == "running"]
        at = self.finished_at or utcnow()
        for key in ended:
            step = self.steps[key]
            step.status = "cancelled"
            step.finished_at = at
        return ended


def identity_to_json(identity: Identity) -> dict[str, Any]:
    return {
        "subject": identity.subject,
        "kind": identity.kind,
        "roles": list(identity.roles),
        "scopes": sorted(identity.scopes) if identity.scopes is not None else None,
        "via": identity.via,
    }


def identity_from_json(data: dict[str, Any]) -> Identity:
    scopes = data.get("scopes")
    return Identity(
        subject=str(data.get("subject", "anonymous")),
        kind=str(data.get("kind", "anonymous")),
        roles=tuple(str(r) for r in data.get("roles") or ()),
        scopes=frozenset(str(s) for s in scopes) if scopes is not None else None,
        via=str(data.get("via", "none")),
    )
