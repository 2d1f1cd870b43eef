"""Audit events and how they become records: argument digests, deferred digests, the cleaned
fields of a record waiting to be written (:class:`~.auditchain.Pending`).

:class:`AuditEvent` is what callers hand to :meth:`~.audit.AuditLog.record`; argument values
never go in as such: :func:`digest_arguments` replaces each by a keyed digest, now or, through a
:class:`DeferredDigest`, when the writer takes the record (see the log's memory rules).
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from catalyst_mcp.context import Identity
from catalyst_mcp.observability.auditchain import LIMITS, Pending, jsonable

__all__ = [
    "DEFER_MAX_BYTES",
    "MAX_CLEAR_BYTES",
    "OUTCOMES",
    "AuditEvent",
    "DeferredDigest",
    "digest_arguments",
    "digested_now",
    "safe_pending",
]

OUTCOMES = ("ok", "error", "denied", "limited", "unauthenticated")
# Values kept in clear longer than this (as canonical JSON) are digested after all.
MAX_CLEAR_BYTES = 1024
# Deferred arguments larger than this (as compact JSON) are digested when recorded: a batch
# then never holds much to digest on the loop, nor the queue much to keep.
DEFER_MAX_BYTES = 8 * 1024


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One thing to audit. ``action`` is the MCP method or admin operation (``tools/call``,
    ``admin.users.create``), ``target`` what it acted on (a tool name, a URI, a user name),
    ``outcome`` one of :data:`OUTCOMES`. ``detail`` is small JSON data: argument digests, an
    error reason, the request id; never a secret or a raw argument value."""

    actor: str
    actor_kind: str
    action: str
    target: str
    outcome: str
    latency_ms: float | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def by(
        cls,
        identity: Identity,
        action: str,
        target: str,
        outcome: str,
        *,
        latency_ms: float | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> AuditEvent:
        """An event whose actor is ``identity``."""
        return cls(
            identity.subject, identity.kind, action, target, outcome, latency_ms, detail or {}
        )


def digest_arguments(
    arguments: Mapping[str, Any] | None,
    record_values: frozenset[str] = frozenset(),
    *,
    key: bytes | None = None,
) -> dict[str, Any]:
    """Per top-level argument, a digest of its canonical JSON instead of its value.

    Canonical JSON here is compact UTF-8 with sorted keys (orjson). With the deployment's audit
    ``key`` the digest is ``{"hmac-sha256": hex}``: equal values give equal digests, so calls
    can be correlated, but without the key a value cannot be guessed back. Without a key it is
    a plain ``{"sha256": hex}``, which hides long values but not guessable ones (a boolean, a
    small number): configure a key. Names in ``record_values`` are kept in clear as
    ``{"value": ...}``, unless their JSON is longer than 1 KiB: then digested, with a ``size``.
    """
    out: dict[str, Any] = {}
    for name, value in (arguments or {}).items():
        data = _canonical_bytes(value)
        if name in record_values and len(data) <= MAX_CLEAR_BYTES:
            out[str(name)] = {"value": orjson.loads(data)}
            continue
        digest: dict[str, Any]
        if key:
            digest = {"hmac-sha256": hmac.new(key, data, hashlib.sha256).hexdigest()}
        else:
            digest = {"sha256": hashlib.sha256(data).hexdigest()}
        if name in record_values:
            digest["size"] = len(data)
        out[str(name)] = digest
    return out


def _canonical_bytes(value: Any) -> bytes:
    """Sorted-key compact JSON (UTF-8) of an argument value; values JSON cannot hold (NaN,
    huge integers, odd types) are first made plain by :func:`jsonable`."""
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError
        return orjson.dumps(jsonable(value), option=orjson.OPT_SORT_KEYS)


def _cut(value: str, column: str) -> str:
    text: str = jsonable(str(value))
    return text[: LIMITS[column]]


def _utc(ns: int) -> datetime:
    """A ``time.time_ns()`` reading as a UTC datetime (microseconds, like the database)."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return datetime.fromtimestamp(seconds, UTC).replace(microsecond=rest // 1000)


def _pending(at: int, event: AuditEvent) -> Pending:
    latency = event.latency_ms
    if latency is not None:
        # + 0.0 turns -0.0 into 0.0: SQLite stores a whole REAL as an integer, losing the sign,
        # and the record would no longer match its hash
        latency = round(float(latency), 3) + 0.0 if math.isfinite(latency) else None
    return Pending(
        _utc(at),
        _cut(event.actor, "actor"),
        _cut(event.actor_kind, "actor_kind"),
        _cut(event.action, "action"),
        _cut(event.target, "target"),
        _cut(event.outcome, "outcome"),
        latency,
        _plain(_resolved(event.detail)),
    )


@dataclass(frozen=True, slots=True)
class DeferredDigest:
    """Call arguments to digest when the record is written, in the background, rather than on
    the request path (a ``detail`` value). The arguments are only held until then, and only
    while that is cheap (see the module's documentation on memory)."""

    arguments: Mapping[str, Any] = field(repr=False)
    record_values: frozenset[str] = frozenset()
    key: bytes | None = field(default=None, repr=False)

    def resolve(self) -> dict[str, Any]:
        return digest_arguments(self.arguments, self.record_values, key=self.key)

    def small(self) -> bool:
        """Whether the arguments are at most ``DEFER_MAX_BYTES`` as compact JSON. orjson
        measures that in well under a microsecond for the usual small arguments (a tenth of
        what digesting them costs); arguments it cannot encode as they are count as large."""
        try:
            return len(orjson.dumps(self.arguments)) <= DEFER_MAX_BYTES
        except TypeError:  # orjson.JSONEncodeError: odd types, huge integers
            return False


def _resolved(detail: Mapping[str, Any]) -> Mapping[str, Any]:
    for value in detail.values():
        if isinstance(value, DeferredDigest):
            return {
                k: v.resolve() if isinstance(v, DeferredDigest) else v for k, v in detail.items()
            }
    return detail


def digested_now(event: AuditEvent, always: bool) -> AuditEvent:
    """``event`` with its deferred digests computed now if ``always`` or if they are not
    small; the same event when there is nothing to do (the common case: a short scan)."""
    detail = event.detail
    for value in detail.values():
        if isinstance(value, DeferredDigest) and (always or not value.small()):
            try:
                return dataclasses.replace(event, detail=_resolved(detail))
            except Exception as exc:  # a value whose str() fails: keep the record, not it
                return dataclasses.replace(
                    event, detail={"unrecordable_detail": type(exc).__name__}
                )
    return event


def _plain(detail: Mapping[str, Any]) -> dict[str, Any]:
    """``detail`` as plain JSON data: the fast way when orjson can encode it (NaN becomes
    null, times ISO strings), else through :func:`jsonable`."""
    try:
        plain = orjson.loads(orjson.dumps(detail))
    except TypeError:  # orjson.JSONEncodeError: non-string keys, huge integers, odd text
        plain = jsonable(detail)
    return plain if isinstance(plain, dict) else {}


def safe_pending(at: int, event: AuditEvent) -> Pending:
    try:
        return _pending(at, event)
    except Exception as exc:  # a detail value whose str() fails: keep the record, not the value
        broken = AuditEvent(
            str(event.actor),
            str(event.actor_kind),
            str(event.action),
            str(event.target),
            str(event.outcome),
            None,
            {"unrecordable_detail": type(exc).__name__},
        )
        return _pending(at, broken)
