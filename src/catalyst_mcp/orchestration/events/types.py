"""The typed events of the gateway, and the envelope each travels in (docs/events.md).

Every kind of event is a small dataclass with a ``TYPE`` (``call.finished``, ...) whose fields
are its payload: names, states, counts and short messages; never an argument's value, a result,
a secret or a credential. Whoever emits one builds it and hands it to the bus
(:meth:`~catalyst_mcp.orchestration.events.bus.EventBus.emit`); the bus wraps it in an
:class:`Envelope` (a unique ``id``, the ``time`` it was emitted, the ``source`` instance) off
the call path, and consumers see the envelope as JSON::

    {"id": "ev_4f0c2a91d3e8_1a", "type": "call.finished", "time": "2026-...Z",
     "source": "host:1234:9f86d081", "data": {"server": "crm", "tool": "crm__find", ...}}

Patterns (webhook ``events``, ``events.types``, a workflow's ``on: [{event: ...}]``) are
shell-style globs over the types (``call.*``, ``workflow.run_finished``, ``*``), expanded once
against :data:`EVENT_TYPES`: a pattern that names no type is a configuration error.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from fnmatch import fnmatchcase
from typing import Any, ClassVar

import orjson

__all__ = [
    "EVENT_TYPES",
    "ApprovalDecided",
    "ApprovalRequested",
    "CallFinished",
    "CallRefused",
    "Envelope",
    "Event",
    "PackReloaded",
    "RuleAlert",
    "ToolDefinitionChanged",
    "UpstreamStateChanged",
    "WorkflowRunFinished",
    "WorkflowStepFinished",
    "expand_patterns",
    "payload",
]

MAX_TEXT = 500  # characters of a message or error kept in an event


class Event:
    """The base of every event type; ``TYPE`` names it."""

    __slots__ = ()
    TYPE: ClassVar[str] = ""


@dataclass(slots=True)
class CallFinished(Event):
    """A ``tools/call`` ran to its end: ``outcome`` ``ok``, ``tool_error`` (a result with
    ``isError``) or ``error`` (a failure answered as a JSON-RPC error)."""

    TYPE: ClassVar[str] = "call.finished"
    server: str
    tool: str
    outcome: str
    subject: str
    subject_kind: str
    channel: str
    duration_ms: float


@dataclass(slots=True)
class CallRefused(Event):
    """A ``tools/call`` was refused before it ran: ``reason`` ``denied`` (RBAC, key scopes or
    a deny rule), ``approval`` (held by a require_approval rule), ``held`` (a tool held back by
    pinning) or ``limited`` (a rate limit); ``message`` is what the caller was told."""

    TYPE: ClassVar[str] = "call.refused"
    server: str
    tool: str
    reason: str
    subject: str
    subject_kind: str
    channel: str
    message: str


@dataclass(slots=True)
class UpstreamStateChanged(Event):
    """A configured server's state changed (``starting``, ``ready``, ``failed``, ``stopped``,
    ``removed``), or it restarted (``restarts`` grew) since it was last seen."""

    TYPE: ClassVar[str] = "upstream.state_changed"
    server: str
    state: str
    previous: str | None
    restarts: int
    error: str | None


@dataclass(slots=True)
class PackReloaded(Event):
    """A knowledge pack file was applied while the gateway runs: ``outcome`` ``added``,
    ``reloaded``, ``removed`` or ``failed`` (its problems are logged and listed by ``/ready``;
    the last good version, if any, keeps serving)."""

    TYPE: ClassVar[str] = "pack.reloaded"
    file: str
    pack: str | None
    outcome: str
    problems: int
    tools: int


@dataclass(slots=True)
class ToolDefinitionChanged(Event):
    """A pinned server lists a tool whose definition was not approved: ``change`` ``changed``,
    ``new`` or ``unpinnable``; ``held``: held back until approved (``pin: strict``)."""

    TYPE: ClassVar[str] = "tool.definition_changed"
    server: str
    tool: str
    change: str
    policy: str
    held: bool
    digest: str


@dataclass(slots=True)
class WorkflowStepFinished(Event):
    """A step of a workflow run ended: ``status`` ``completed``, ``failed`` or ``skipped``."""

    TYPE: ClassVar[str] = "workflow.step_finished"
    workflow: str
    run_id: str
    step: str
    status: str
    attempts: int
    trigger: str
    error: str | None


@dataclass(slots=True)
class WorkflowRunFinished(Event):
    """A workflow run ended: ``status`` ``completed``, ``failed`` or ``cancelled``."""

    TYPE: ClassVar[str] = "workflow.run_finished"
    workflow: str
    run_id: str
    status: str
    trigger: str
    subject: str
    duration_ms: float | None
    failed_step: str | None
    error: str | None


@dataclass(slots=True)
class ApprovalRequested(Event):
    """A ``require_approval`` rule held a call for an approver."""

    TYPE: ClassVar[str] = "approval.requested"
    approval: str
    rule: str
    subject: str
    tool: str
    server: str
    message: str


@dataclass(slots=True)
class ApprovalDecided(Event):
    """An approval request ended: ``state`` ``approved``, ``rejected``, ``expired`` or
    ``cancelled``."""

    TYPE: ClassVar[str] = "approval.decided"
    approval: str
    rule: str
    subject: str
    tool: str
    server: str
    state: str
    decided_by: str | None


@dataclass(slots=True)
class RuleAlert(Event):
    """An ``alert`` rule matched a call."""

    TYPE: ClassVar[str] = "rule.alert"
    rule: str
    subject: str
    tool: str
    server: str
    severity: str
    message: str


_CLASSES: tuple[type[Event], ...] = (
    CallFinished,
    CallRefused,
    UpstreamStateChanged,
    PackReloaded,
    ToolDefinitionChanged,
    WorkflowStepFinished,
    WorkflowRunFinished,
    ApprovalRequested,
    ApprovalDecided,
    RuleAlert,
)
EVENT_TYPES: dict[str, type[Event]] = {cls.TYPE: cls for cls in _CLASSES}
"""Every event type by name, in the order docs/events.md lists them."""

_FIELDS: dict[type[Event], tuple[str, ...]] = {
    cls: tuple(f.name for f in dataclasses.fields(cls))  # type: ignore[arg-type]
    for cls in _CLASSES
}


def payload(event: Event) -> dict[str, Any]:
    """The event's fields as a JSON-able mapping (its ``data``)."""
    return {name: getattr(event, name) for name in _FIELDS[type(event)]}


def expand_patterns(patterns: Iterable[str]) -> frozenset[str]:
    """The event types the glob ``patterns`` name; ValueError for a pattern naming none."""
    found: set[str] = set()
    for pattern in patterns:
        matched = {name for name in EVENT_TYPES if fnmatchcase(name, pattern)}
        if not matched:
            known = ", ".join(EVENT_TYPES)
            raise ValueError(f"{pattern!r} matches no event type (known: {known})")
        found |= matched
    return frozenset(found)


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Envelope:
    """One event as consumers see it: its ``id`` (unique, the same on every redelivery: a
    receiver drops the ids it has seen), ``type``, ``time`` (Unix seconds, emitted at),
    ``source`` (the instance that emitted it) and ``data`` (the payload; made from the event
    only when a consumer first reads it: most consumers look at the type alone)."""

    __slots__ = ("_data", "_event", "_raw", "id", "source", "time", "type")

    def __init__(
        self,
        id: str,
        type: str,
        time: float,
        source: str,
        data: dict[str, Any] | None = None,
        event: Event | None = None,
        raw: bytes | None = None,
    ) -> None:
        """``data``, or the ``event`` it is made from, or ``raw``: its JSON (a Redis entry's),
        parsed when first read (ValueError if it is not a JSON object)."""
        self.id = id
        self.type = type
        self.time = time
        self.source = source
        self._data = data
        self._event = event
        self._raw = raw

    @classmethod
    def wrap(cls, event: Event, event_id: str, at: float, source: str) -> Envelope:
        return cls(event_id, event.TYPE, at, source, None, event)

    @property
    def data(self) -> dict[str, Any]:
        data = self._data
        if data is None:
            if self._event is not None:
                data = payload(self._event)
            elif self._raw is not None:
                data = orjson.loads(self._raw)
                if not isinstance(data, dict):
                    raise ValueError(f"event {self.id}: data is not an object")
            else:
                data = {}
            self._data = data
        return data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Envelope):
            return NotImplemented
        return (self.id, self.type, self.time, self.source, self.data) == (
            other.id,
            other.type,
            other.time,
            other.source,
            other.data,
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Envelope({self.id!r}, {self.type!r}, {self.time!r}, {self.source!r})"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "time": _iso(self.time),
            "source": self.source,
            "data": self.data,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Envelope:
        """The envelope of :meth:`to_json` (ValueError/KeyError/TypeError when it is not one)."""
        at = datetime.fromisoformat(str(data["time"]).replace("Z", "+00:00")).timestamp()
        body = data["data"]
        if not isinstance(body, dict):
            raise TypeError("data must be an object")
        return cls(str(data["id"]), str(data["type"]), at, str(data["source"]), body)

    @property
    def age(self) -> float:
        """Seconds since it was emitted."""
        return time.time() - self.time
