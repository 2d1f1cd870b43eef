"""The access pipeline every client request goes through: authenticate, authorize, limit, audit.

::

    transport ── authenticate(Authorization) ──► Identity (or 401 + WWW-Authenticate)
    McpServer ── admit(identity, kind, name, server) ──► RBAC (+ key scopes), rate limits
              ├─ auditable() before the call runs ──► room for its record (else refused)
              └─ record(...) after the call ──► the audit trail (queued; strict: committed)
    lists     ── visible(identity, kind, items) ──► only what the caller may use

Built from the settings by :meth:`Access.from_settings`; :meth:`start` opens the database
(migrating it unless ``storage.auto_upgrade`` is off), merges stored roles into the configured
ones and starts the audit writer. Without ``auth.enabled`` every caller is the local anonymous
user with ``auth.anonymous_roles`` (``admin`` by default: single-user mode behaves as before),
unless they present a valid API key or token anyway. An anonymous identity made anywhere else
(stdio, the CLI's in-process client) has those roles too: it is the local user.

Scopes: an API key created with scopes may only reach the objects they name: ``mcp`` (every
MCP object the roles allow), ``tool:<glob>``, ``resource:<glob>``, ``prompt:<glob>`` or
``server:<glob>``. A key without scopes is not narrowed. (A JWT's OAuth scopes are recorded
but do not narrow: its roles claim says what it may do.)

Audit durability (``audit.durability``, docs/security.md): ``buffered`` queues each record and
answers at once; ``strict`` answers only once the record is committed. Either way at most
``audit.max_pending`` records wait: :meth:`auditable` holds a call back (before it runs) while
they do. In strict mode a call whose record cannot be committed gets :class:`AuditUnavailable`
instead of its result (it ran: ``data.executed`` is true); a refusal or a failed call keeps its
own error answer, whatever became of its record (nothing a client could take for a success).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any, TypeVar

from catalyst_mcp.context import Identity
from catalyst_mcp.errors import (
    AccessError,
    AuditUnavailable,
    CatalystError,
    Forbidden,
    Unauthenticated,
)
from catalyst_mcp.observability.audit import AuditEvent, AuditLog, DeferredDigest
from catalyst_mcp.security.ratelimit import Check, MemoryLimiter, RateLimiter, RedisLimiter
from catalyst_mcp.security.rbac import Kind, Policy, RoleSpec, load_roles

if TYPE_CHECKING:
    from catalyst_mcp.observability.metrics import Metrics
    from catalyst_mcp.security.jwt import JwtVerifier
    from catalyst_mcp.security.keyauth import KeyAuthenticator
    from catalyst_mcp.settings import Settings
    from catalyst_mcp.storage.db import Database

__all__ = ["AUDIT_KEY_ENV", "Access"]

log = logging.getLogger("catalyst.access")

AUDIT_KEY_ENV = "CATALYST_AUDIT_KEY"
SECRET_KEY_ENV = "CATALYST_SECRET_KEY"  # noqa: S105 (a variable name, not a secret)
TOUCH_SECONDS = 10.0
ROLES_SECONDS = 30.0
MAX_CACHED_CHECKS = 100_000
MAX_REASON = 500  # characters of a refusal's reason kept in its audit record
AUDIT_BATCH = 200  # records the audit writer commits in one transaction at most
REFUSALS = frozenset({"denied", "limited", "unauthenticated"})  # outcomes of refused requests
T = TypeVar("T")


def _audit_key(environ: Mapping[str, str]) -> bytes | None:
    """The key of argument digests: CATALYST_AUDIT_KEY, else one derived from the vault key
    (so equal values correlate across instances and restarts), else none (plain SHA-256)."""
    explicit = environ.get(AUDIT_KEY_ENV)
    if explicit:
        return explicit.encode()
    vault = environ.get(SECRET_KEY_ENV)
    if vault:
        return hashlib.sha256(b"catalyst-audit-digest\0" + vault.encode()).digest()
    return None


class Access:
    def __init__(
        self,
        settings: Settings,
        *,
        db: Database | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        auth = settings.auth
        self.settings = settings
        self.required = auth.enabled
        self.anonymous = Identity(roles=tuple(auth.anonymous_roles))
        self._configured_roles: dict[str, RoleSpec] = dict(settings.rbac.roles)
        self.policy = Policy.compile(self._configured_roles, settings.rbac.default)
        self._stored_roles: dict[str, Any] = {}  # as last compiled into the policy
        self._compiled = False  # whether the stored roles have been read yet
        self.db = db
        self.keys: KeyAuthenticator | None = None
        self.jwt: JwtVerifier | None = None
        if auth.jwt is not None:
            from catalyst_mcp.security.jwt import JwtVerifier

            self.jwt = JwtVerifier(auth.jwt.to_settings(auth.resource_url))
        limits = settings.rate_limits
        self.limiter: RateLimiter | None = None
        if limits.active:
            self.limiter = (
                RedisLimiter(limits.redis_url) if limits.backend == "redis" else MemoryLimiter()
            )
        self._take = self.limiter.take if isinstance(self.limiter, MemoryLimiter) else None
        # the buckets of (user, tool, server), built once
        self._check_cache: dict[tuple[str, str, str], list[Check]] = {}
        self.audit: AuditLog | None = None
        self.audit_key = _audit_key(env)
        self.record_values = frozenset(settings.audit.record_values)
        self.strict = settings.audit.durability == "strict"
        self.audit_wait = settings.audit.max_wait_seconds
        self._toucher: asyncio.Task[None] | None = None
        self.metrics: Metrics | None = None  # counts refusals and failed authentications

    # ---- life cycle ---------------------------------------------------------------------

    async def start(self) -> None:
        if self.db is None:
            return
        from catalyst_mcp.security.keyauth import KeyAuthenticator
        from catalyst_mcp.storage.keys import KeyRepo
        from catalyst_mcp.storage.migrate import ensure_current

        await ensure_current(self.db, self.settings.storage.auto_upgrade)  # logs what it did
        await self.reload_roles()
        if self.settings.auth.api_keys:
            self.keys = KeyAuthenticator(KeyRepo(self.db), self.settings.auth.key_cache_seconds)
        self._toucher = asyncio.get_running_loop().create_task(self._refresh())
        audit = self.settings.audit
        if audit.enabled:
            self.audit = AuditLog(
                self.db,
                batch_size=min(AUDIT_BATCH, audit.max_pending),
                max_queue=audit.max_pending,
            )
            self.audit.start()

    async def stop(self) -> None:
        if self._toucher is not None:
            self._toucher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._toucher
            self._toucher = None
        if self.keys is not None:
            with contextlib.suppress(CatalystError, OSError):
                await self.keys.flush()
        if self.audit is not None:
            await self.audit.close()
        if self.limiter is not None:
            await self.limiter.aclose()
        if self.jwt is not None:
            await self.jwt.aclose()

    async def _refresh(self) -> None:
        """In the background: write API key use, and pick up roles changed by another
        instance or the CLI (every ROLES_SECONDS)."""
        last_roles = time.monotonic()
        while True:
            await asyncio.sleep(TOUCH_SECONDS)
            try:
                if self.keys is not None:
                    await self.keys.flush()
                if time.monotonic() - last_roles >= ROLES_SECONDS:
                    last_roles = time.monotonic()
                    await self.reload_roles()
            except Exception as exc:  # the next round tries again
                log.warning("could not refresh access data: %s", type(exc).__name__)

    async def reload_roles(self) -> None:
        """Recompile the policy from the configured roles plus the stored ones (a stored role
        of the same name as a configured one replaces it)."""
        roles = dict(self._configured_roles)
        data: dict[str, Any] = {}
        if self.db is not None:
            from catalyst_mcp.storage.roles import RoleRepo

            stored = await RoleRepo(self.db).list()
            data = {r.name: {"description": r.description, "rules": list(r.rules)} for r in stored}
        if data == self._stored_roles and self._compiled:
            return  # unchanged (the periodic refresh): keep the policy and its caches
        roles.update(load_roles(data, source="stored roles"))
        self.policy = Policy.compile(roles, self.settings.rbac.default)
        self._stored_roles, self._compiled = data, True

    # ---- who is calling -----------------------------------------------------------------

    async def authenticate(self, authorization: bytes | None) -> Identity:
        """The caller of a request with this ``Authorization`` header, or Unauthenticated."""
        try:
            return await self._authenticate(authorization)
        except Unauthenticated as exc:
            if self.metrics is not None:
                self.metrics.auth_failure(_failure_reason(authorization, exc))
            raise

    async def _authenticate(self, authorization: bytes | None) -> Identity:
        if authorization is None or (
            not self.required and self.keys is None and self.jwt is None
        ):  # without auth, credentials nothing here can check are not held against anyone
            if self.required:
                raise Unauthenticated(
                    "authentication required: send 'Authorization: Bearer <API key or token>'"
                )
            return self.anonymous
        try:
            text = authorization.decode("ascii")
        except UnicodeDecodeError:
            raise Unauthenticated("the Authorization header is not ASCII") from None
        scheme, _, token = text.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise Unauthenticated("use 'Authorization: Bearer <API key or token>'")
        if token.startswith("cat_"):
            if self.keys is None:
                raise Unauthenticated("API keys are not accepted by this gateway")
            return await self.keys.authenticate(token)
        if self.jwt is None:
            raise Unauthenticated("bearer tokens are not accepted by this gateway; use an API key")
        return await self.jwt.verify(token)

    # ---- what they may do ---------------------------------------------------------------

    def roles_of(self, identity: Identity) -> tuple[str, ...]:
        """The caller's roles; an anonymous identity is the local user (``anonymous_roles``)."""
        return self.anonymous.roles if identity.kind == "anonymous" else identity.roles

    def authorize(
        self, identity: Identity, kind: Kind, name: str, server: str, *, listed: bool = True
    ) -> None:
        """RBAC and key scopes for one object, or Forbidden. ``listed``: the name is one the
        registry lists (decisions about other names are not cached)."""
        policy = self.policy
        roles = self.roles_of(identity)
        on_server = policy.decide(roles, "server", server, server)
        if not on_server.allowed and on_server.rule is not None:
            raise Forbidden(f"Forbidden: {on_server.reason}")
        decision = policy.decide(roles, kind, name, server, remember=listed)
        if not decision.allowed:
            raise Forbidden(f"Forbidden: {decision.reason}")
        scopes = identity.scopes
        if (
            scopes is not None
            and identity.via == "api_key"
            and not _in_scopes(scopes, kind, name, server)
        ):
            raise Forbidden(f"Forbidden: the API key's scopes do not include {kind} {name!r}")

    async def admit(
        self, identity: Identity, kind: Kind, name: str, server: str, *, listed: bool = True
    ) -> None:
        """Allow one call or raise Forbidden / RateLimited (the caller audits the refusal)."""
        self.authorize(identity, kind, name, server, listed=listed)
        if self.limiter is not None:
            key = (identity.subject, name, server)
            checks = self._check_cache.get(key)
            if checks is None:
                checks = self._checks(*key)
                if listed:  # names a caller made up are not kept
                    if len(self._check_cache) >= MAX_CACHED_CHECKS:
                        self._check_cache.clear()
                    self._check_cache[key] = checks
            if self._take is not None:
                self._take(checks)
            else:
                await self.limiter.acquire(checks)

    def _checks(self, subject: str, name: str, server: str) -> list[Check]:
        limits = self.settings.rate_limits
        # length-prefixed: user "a" on tool "b:c" and user "a:b" on tool "c" get two buckets
        who = f"{len(subject)}:{subject}"
        buckets = (
            (limits.per_user, f"user:{who}", f"user '{subject}'"),
            (limits.per_tool, f"tool:{who}:{name}", f"'{name}' for user '{subject}'"),
            (
                limits.per_server,
                f"server:{who}:{server}",
                f"server '{server}' for user '{subject}'",
            ),
        )
        return [
            Check(key, limit.rate_per_second, limit.burst, label)
            for limit, key, label in buckets
            if limit is not None
        ]

    def visible(
        self,
        identity: Identity,
        kind: Kind,
        items: Iterable[T],
        name_of: Callable[[T], str],
        server_of: Callable[[T], str | None],
    ) -> list[T]:
        """The ``items`` the caller may use (lists never show what a call would refuse)."""
        policy = self.policy
        roles = self.roles_of(identity)

        def server_open(item: T) -> bool:
            server = server_of(item)
            if server is None:
                return True
            decision = policy.decide(roles, "server", server, server)
            return decision.allowed or decision.rule is None

        allowed = [
            i for i in policy.filter(roles, kind, items, name_of, server_of) if server_open(i)
        ]
        scopes = identity.scopes
        if scopes is not None and identity.via == "api_key":
            allowed = [
                i for i in allowed if _in_scopes(scopes, kind, name_of(i), server_of(i) or "")
            ]
        return allowed

    # ---- what happened ------------------------------------------------------------------

    async def auditable(self) -> None:
        """Before a call runs: wait until the audit trail has room for its record (fewer than
        ``audit.max_pending`` wait), up to ``audit.max_wait_seconds``. AuditUnavailable (the
        call is not run) after that, at once while the database cannot be written and the
        trail is full, and in strict mode at once whenever it cannot be written."""
        audit = self.audit
        if audit is None or (not audit.full and not self.strict):
            return
        if not audit.writable and (self.strict or audit.full):
            raise AuditUnavailable(
                "the audit trail cannot be written (is the database down?)"
                + (", and audit.durability is strict" if self.strict else "")
                + ": the call was not run; retry once the database is back",
                data={"executed": False},
            )
        if audit.full:
            try:
                await audit.room(self.audit_wait)
            except AuditUnavailable as exc:
                raise AuditUnavailable(
                    f"the call was not run: {exc.message} (audit.max_pending); retry later",
                    data={"executed": False},
                ) from None

    async def record(
        self,
        identity: Identity,
        action: str,
        target: str,
        outcome: str,
        *,
        started: float | None = None,
        arguments: Mapping[str, Any] | None = None,
        reason: str | None = None,
        request_id: Any = None,
        error_answer: bool = False,
        note: Mapping[str, Any] | None = None,
    ) -> None:
        """Audit one request (a no-op while auditing is off): queue its record, and in strict
        mode wait until it is committed. ``error_answer``: the client gets an error anyway (a
        refusal, a failed call), so a record that cannot be committed is only logged; else,
        in strict mode, AuditUnavailable replaces the result. ``note``: facts the provider
        added (``CallContext.audit_note``), recorded as they are."""
        audit = self.audit
        if audit is None:
            return
        detail: dict[str, Any] = {}
        if arguments:  # digested by the writer, off the request path
            detail["arguments"] = DeferredDigest(arguments, self.record_values, self.audit_key)
        if reason:
            detail["reason"] = reason[:MAX_REASON]
        if request_id is not None:
            detail["request_id"] = request_id
        if note:  # what the provider adds (a database write's masked statement)
            detail["note"] = dict(note)
        latency = (time.perf_counter() - started) * 1000 if started is not None else None
        event = AuditEvent(
            identity.subject, identity.kind, action, target, outcome, latency, detail
        )
        # a refusal is not held back by auditable(): when the trail is full, its record goes
        keep = outcome not in REFUSALS
        if not self.strict or (error_answer and not audit.writable):
            audit.record(event, keep=keep)  # (an error answer is not held up by an outage)
            return
        try:
            await audit.commit(event, timeout=self.audit_wait, keep=keep)
        except AuditUnavailable as exc:
            if error_answer:
                log.warning(
                    "audit trail: the record of %s %r (%s) is not committed: %s",
                    action,
                    target[:200],
                    outcome,
                    exc.message,
                )
                return
            raise AuditUnavailable(
                f"{action} {target[:200]!r} ran ({'a tool error' if outcome == 'error' else 'ok'})"
                f", but its audit record could not be committed: {exc.message}. With "
                "audit.durability strict its result is withheld; check the audit trail "
                "(catalyst audit search) before repeating it",
                data={"executed": True, "outcome": outcome},
            ) from None

    async def record_refusal(
        self,
        identity: Identity,
        action: str,
        target: str,
        exc: AccessError,
        request_id: Any = None,
        *,
        note: Mapping[str, Any] | None = None,
    ) -> None:
        """Audit a refused request (denied, rate-limited or unauthenticated); ``note``: facts
        of the refusal (the rules that decided it)."""
        if isinstance(exc, Unauthenticated):
            outcome = "unauthenticated"
        elif isinstance(exc, Forbidden):
            outcome = "denied"
        else:
            outcome = "limited"
        if self.metrics is not None:
            self.metrics.refusal("rate_limited" if outcome == "limited" else outcome)
        await self.record(
            identity,
            action,
            target,
            outcome,
            reason=exc.message,
            request_id=request_id,
            error_answer=True,
            note=note,
        )

    async def record_failure(
        self,
        identity: Identity,
        action: str,
        target: str,
        exc: CatalystError,
        *,
        started: float | None = None,
        arguments: Mapping[str, Any] | None = None,
        request_id: Any = None,
        note: Mapping[str, Any] | None = None,
    ) -> None:
        """Audit a request that failed with ``exc`` (answered with that error). A call that
        :meth:`auditable` turned away is recorded as an error too, but never waited for or
        kept past ``max_pending``: it did not run."""
        turned_away = (
            isinstance(exc, AuditUnavailable)
            and isinstance(exc.data, dict)
            and exc.data.get("executed") is False
        )
        if turned_away and self.audit is not None:
            detail: dict[str, Any] = {"reason": exc.message[:MAX_REASON]}
            if request_id is not None:
                detail["request_id"] = request_id
            event = AuditEvent(identity.subject, identity.kind, action, target, "error")
            self.audit.record(dataclasses.replace(event, detail=detail))
            return
        await self.record(
            identity,
            action,
            target,
            "error",
            started=started,
            arguments=arguments,
            reason=exc.message,
            request_id=request_id,
            error_answer=True,
            note=note,
        )


def _failure_reason(authorization: bytes | None, exc: Unauthenticated) -> str:
    """The ``reason`` label of a failed authentication (a fixed set: metrics labels)."""
    if authorization is None:
        return "missing"
    if "not accepted by this gateway" in exc.message:
        return "not_accepted"
    scheme, _, token = authorization.strip().partition(b" ")
    token = token.strip()
    if scheme.lower() != b"bearer" or not token or not authorization.isascii():
        return "malformed"
    if token.startswith(b"cat_"):
        return "api_key"
    return "token_expired" if exc.message == "token expired" else "token"


def _in_scopes(scopes: frozenset[str], kind: str, name: str, server: str) -> bool:
    if "mcp" in scopes:
        return True
    for scope in scopes:
        prefix, sep, glob = scope.partition(":")
        if not sep:
            continue
        if prefix == kind and fnmatchcase(name, glob):
            return True
        if prefix == "server" and fnmatchcase(server, glob):
            return True
    return False
