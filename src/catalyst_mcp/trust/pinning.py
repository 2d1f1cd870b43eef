"""Pinning what upstream servers' tools tell the model, and holding back what changed.

A model reads a tool's name, description and schemas as instructions. A server that changes
them after it was trusted (a *rug pull*: an update, a compromised package, a remote server
changing under us) can slip instructions to the model (*tool poisoning*) that no one reviewed.
So each server's tool definitions are pinned (:mod:`catalyst_mcp.trust.digest`, stored by
:class:`~catalyst_mcp.storage.pins.PinRepo` in the gateway's database, shared by every instance):

* **first contact** (no gateway has pinned the server before): every tool it lists is approved
  as it is, and recorded (audit ``pin.recorded``);
* afterwards, whenever its list arrives (start, reconnect, ``list_changed``, a refresh), a tool
  whose definition is not an approved one, or a tool that is new, is a *change*: audited once
  (``pin.changed``) and logged; under ``pin: strict`` it is **held back** (``pin.held``): left
  out of ``tools/list`` and refused when called (:class:`~catalyst_mcp.errors.ToolHeldBack`),
  until an administrator approves it (``pin.approved``; ``catalyst tools approve`` or the admin
  API). Under ``pin: warn`` it is served. A tool that disappears simply disappears;
* ``pin: off`` records nothing.

All of it happens when a list arrives, never per call: a held tool is simply not in the
registry's view, and only a name the registry does not list is asked about
(:meth:`ToolPins.refusal`, through ``Provider.withheld``).

An approval through this gateway's API releases the tools at once (clients get
``notifications/tools/list_changed``); approvals made elsewhere (the CLI, another instance) are
picked up by a poll every ``POLL_SECONDS`` that runs only while something is held back. When
the database cannot be reached, a strict server serves only the definitions it last knew to be
approved (nothing, if it never reached the database) and the poll tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import weakref
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import orjson

from catalyst_mcp.context import Identity
from catalyst_mcp.errors import CatalystError, StorageError, ToolHeldBack
from catalyst_mcp.observability.auditevent import AuditEvent
from catalyst_mcp.storage.pin_model import MAX_TOOL_NAME
from catalyst_mcp.storage.pins import PinChange, PinRepo, Seen
from catalyst_mcp.trust.digest import canonical, definition

if TYPE_CHECKING:
    from catalyst_mcp.settings import ServerConfig
    from catalyst_mcp.storage.db import Database

__all__ = ["POLL_SECONDS", "SYSTEM", "Held", "Pinning", "Policy", "ToolPins", "diff_command"]

log = logging.getLogger("catalyst.pinning")

Policy = Literal["strict", "warn", "off"]
POLL_SECONDS = 2.0
STOP_SECONDS = 5.0
T = TypeVar("T")
SYSTEM = Identity(subject="gateway", kind="system")
"""Who the gateway's own audit records (first contact, changes, hold-backs) are by."""


def diff_command(server: str) -> str:
    return f"`catalyst tools diff {server}`"


@dataclass(frozen=True, slots=True)
class Held:
    """A tool held back: the digest of the definition it lists now, and why (``changed``,
    ``new``, ``unverified``: the database could not be asked, ``unpinnable``: a name too long
    to pin)."""

    digest: str
    reason: str


class ToolPins:
    """The pins of one server in this gateway: reviews its lists, knows what is held back."""

    def __init__(self, pinning: Pinning, server: str, policy: Policy) -> None:
        self.pinning = pinning
        self.server = server
        self.policy = policy
        self.held: dict[str, Held] = {}
        self.unverified = False  # the last review could not reach the database
        # Given the tools to serve after an approval released some (set by the upstream).
        self.on_release: Callable[[list[dict[str, Any]]], None] = lambda tools: None
        self._raw: list[dict[str, Any]] | None = None  # the last list reviewed, as sent
        self._served: list[dict[str, Any]] = []
        self._approved: dict[str, frozenset[str]] = {}  # as the database last said
        self._noted: set[tuple[str, str]] = set()  # changes logged by this gateway
        self._lock = asyncio.Lock()

    @property
    def strict(self) -> bool:
        return self.policy == "strict"

    # ---- calls -------------------------------------------------------------------------------

    def refusal(self, tool: str) -> ToolHeldBack | None:
        """The error for a call of ``tool`` if it is held back, else None."""
        held = self.held.get(tool)
        if held is None:
            return None
        server = self.server
        review = f"an administrator must review it: {diff_command(server)}"
        if held.reason == "changed":
            why = f"changed its definition since it was approved; {review}"
        elif held.reason == "new":
            why = f"is new since this server's tools were approved; {review}"
        elif held.reason == "unpinnable":
            why = f"has a name longer than {MAX_TOOL_NAME} characters, which cannot be pinned"
        else:
            why = (
                "cannot be checked against its approved definition (the database cannot be "
                "reached); it is held back until it can"
            )
        return ToolHeldBack(server, tool, held.reason, f"tool {tool!r} of server {server!r} {why}")

    # ---- lists -------------------------------------------------------------------------------

    async def review(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The tools of a list that just arrived that may be served; the others are held back
        (strict). The same list as last time costs one comparison."""
        # What the database records and what is audited must agree: a review that has started
        # finishes even if the fetch waiting for it is cancelled (a server stopped, a CLI
        # command ending); the gateway waits for it before its audit log closes.
        return await self.pinning.finish(self._review_in_turn(tools))

    async def _review_in_turn(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        async with self._lock:
            if self._raw is not None and not self.unverified and tools == self._raw:
                self._raw = tools
                self._served = self._serve(tools)
                return self._served
            return await self._review(tools)

    def _serve(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        held = self.held
        return [tool for tool in tools if tool["name"] not in held] if held else tools

    async def _review(self, tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        seen: dict[str, Seen] = {}
        digests: list[str] = []
        unpinnable: set[str] = set()
        for tool in tools:
            name = tool["name"]
            raw = canonical(definition(tool))
            digest = hashlib.sha256(raw).hexdigest()
            digests.append(digest)
            if len(name) > MAX_TOOL_NAME:
                unpinnable.add(name)
            elif name not in seen:
                seen[name] = Seen(digest, orjson.loads(raw))
        try:
            observed = await self.pinning.repo().observe(
                self.server, seen, self.pinning.package_of(self.server)
            )
        except CatalystError as exc:
            return self._unverified(tools, digests, exc.message)
        except Exception as exc:  # a bug: fail closed (strict), say so, and try again later
            log.exception("%s: checking its tools failed", self.server)
            return self._unverified(tools, digests, f"internal error: {type(exc).__name__}")
        if self.unverified:
            log.info("%s: tool definitions checked again", self.server)
        self.unverified = False
        self._approved = observed.approved
        if observed.first_contact:
            self._first_contact(len(seen))
        held: dict[str, Held] = {}
        for tool, digest in zip(tools, digests, strict=True):
            name = tool["name"]
            if name in unpinnable:
                reason = "unpinnable"
            elif digest in observed.approved.get(name, ()):
                continue
            else:
                reason = "changed" if observed.approved.get(name) else "new"
            self._changed(name, digest, reason, recorded=name in observed.recorded)
            if self.strict:
                held[name] = Held(digest, reason)
        self.held = held
        self._raw = tools
        self._served = self._serve(tools)
        return self._served

    def _unverified(
        self, tools: list[dict[str, Any]], digests: list[str], reason: str
    ) -> list[dict[str, Any]]:
        if not self.unverified:
            what = (
                "serving only the definitions approved before"
                if self.strict
                else "serving them unchecked (pin: warn)"
            )
            log.warning(
                "%s: cannot check its tools against their approved definitions (%s); %s",
                self.server,
                reason,
                what,
            )
        self.unverified = True
        held: dict[str, Held] = {}
        if self.strict:
            for tool, digest in zip(tools, digests, strict=True):
                if digest not in self._approved.get(tool["name"], ()):
                    held[tool["name"]] = Held(digest, "unverified")
        self.held = held
        self._raw = tools
        self._served = self._serve(tools)
        return self._served

    def _first_contact(self, count: int) -> None:
        log.info("%s: first contact: %d tool definitions pinned as they are", self.server, count)
        self.pinning.record(
            AuditEvent.by(
                SYSTEM,
                "pin.recorded",
                self.server,
                "ok",
                detail={
                    "server": self.server,
                    "tools": count,
                    "policy": self.policy,
                    "package": self.pinning.package_of(self.server),
                },
            )
        )

    def _changed(self, name: str, digest: str, reason: str, *, recorded: bool) -> None:
        if (name, digest) not in self._noted:
            self._noted.add((name, digest))
            what = "is new" if reason == "new" else "changed its definition"
            then = (
                "held back until an administrator approves it"
                if self.strict
                else "served anyway (pin: warn)"
            )
            log.warning(
                "%s: tool %r %s since its tools were approved: %s; review it with %s",
                self.server,
                name,
                what,
                then,
                diff_command(self.server),
            )
        if not recorded:
            return  # already audited, by this gateway or another one
        target = f"{self.server}/{name}"
        detail = {
            "server": self.server,
            "tool": name,
            "change": reason,
            "digest": digest,
            "approved": sorted(self._approved.get(name, ())),
            "policy": self.policy,
            "served": not self.strict,
            "package": self.pinning.package_of(self.server),
        }
        self.pinning.record(AuditEvent.by(SYSTEM, "pin.changed", target, "ok", detail=detail))
        if self.strict:
            self.pinning.record(
                AuditEvent.by(
                    SYSTEM,
                    "pin.held",
                    target,
                    "denied",
                    detail={"server": self.server, "tool": name, "digest": digest},
                )
            )

    async def recheck(self) -> None:
        """Serve the held tools an administrator approved meanwhile (or, after the database
        could not be reached, review the last list again)."""
        async with self._lock:
            if self._raw is None or not (self.held or self.unverified):
                return
            before = self._served
            if self.unverified:
                served = await self._review(self._raw)
            else:
                try:
                    approved = await self.pinning.repo().approved(self.server, list(self.held))
                except CatalystError as exc:
                    log.debug("%s: could not look for approvals: %s", self.server, exc.message)
                    return
                released = [
                    name
                    for name, held in self.held.items()
                    if held.digest in approved.get(name, ())
                ]
                if not released:
                    return
                self._approved = {**self._approved, **approved}
                self.held = {n: h for n, h in self.held.items() if n not in released}
                log.info("%s: approved, now served: %s", self.server, ", ".join(sorted(released)))
                served = self._serve(self._raw)
            self._served = served
            if served != before:
                self.on_release(served)

    def close(self) -> None:
        """Its server stopped: approvals are no longer its concern."""
        self.pinning.forget(self)

    def report(self) -> dict[str, Any]:
        """For health reports: what is held back, and whether the database could be asked."""
        report: dict[str, Any] = {}
        if self.held:
            report["heldTools"] = sorted(self.held)
        if self.unverified:
            report["pinning"] = "unverified: the database cannot be reached"
        return report


class Pinning:
    """The pins of every server of one gateway (or of a CLI command): the database they are
    kept in, the audit trail, the live :class:`ToolPins` and the poll for approvals made
    elsewhere. ``lock_file`` is the ``catalyst.lock`` that says which package version each
    server runs."""

    def __init__(
        self,
        db: Database | None = None,
        *,
        lock_file: Path | None = None,
        audit: Callable[[AuditEvent], None] | None = None,
        poll_seconds: float = POLL_SECONDS,
    ) -> None:
        self.db = db
        self.lock_file = lock_file
        self.audit = audit
        self.poll_seconds = poll_seconds
        self._live: dict[str, weakref.WeakSet[ToolPins]] = {}
        self._task: asyncio.Task[None] | None = None
        self._reviews: set[asyncio.Task[Any]] = set()
        self._lock_seen: tuple[tuple[int, int, int], dict[str, str]] | None = None

    @staticmethod
    def wanted(servers: Mapping[str, ServerConfig]) -> bool:
        """Whether any active server is pinned (then the gateway needs its database)."""
        return any(config.active and config.pin != "off" for config in servers.values())

    def repo(self) -> PinRepo:
        if self.db is None:
            raise StorageError("storage is off: pinning needs the gateway's database")
        return PinRepo(self.db)

    def record(self, event: AuditEvent) -> None:
        if self.audit is not None:
            self.audit(event)

    # ---- servers -----------------------------------------------------------------------------

    def for_server(self, name: str, config: ServerConfig) -> ToolPins | None:
        """The pins of a server being built (None with ``pin: off``)."""
        if config.pin == "off":
            return None
        pins = ToolPins(self, name, config.pin)
        self._live.setdefault(name, weakref.WeakSet()).add(pins)
        return pins

    def forget(self, pins: ToolPins) -> None:
        live = self._live.get(pins.server)
        if live is not None:
            live.discard(pins)
            if not live:
                del self._live[pins.server]

    def live(self, server: str) -> list[ToolPins]:
        """The pins of ``server``'s running providers in this process (two while a reload
        replaces it)."""
        return list(self._live.get(server, ()))

    def held_on(self, server: str) -> set[str]:
        """The tools of ``server`` held back in this process."""
        return {name for pins in self.live(server) for name in pins.held}

    def package_of(self, server: str) -> str | None:
        """``runtime:package@version`` of the package ``server`` was installed from (its
        ``catalyst.lock`` record), else None."""
        path = self.lock_file
        if path is None:
            return None
        try:
            stat = path.stat()
        except OSError:
            return None
        # the lock is replaced by a rename (a new inode) whenever it is written
        version = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        if self._lock_seen is None or self._lock_seen[0] != version:
            self._lock_seen = (version, _packages(path))
        return self._lock_seen[1].get(server)

    # ---- approvals ---------------------------------------------------------------------------

    async def waiting(self) -> dict[str, int]:
        """Every server pinned so far, with how many of its tools wait for approval."""
        return await self.repo().waiting()

    async def changes(self, server: str) -> list[PinChange]:
        """The tools of ``server`` waiting for approval (Missing for a server never met)."""
        return await self.repo().changes(server)

    async def approve(
        self,
        server: str,
        tools: Sequence[str] | None,
        identity: Identity,
        digests: Mapping[str, str] | None = None,
    ) -> list[PinChange]:
        """Approve the waiting definitions of ``tools`` (None: all) of ``server``, audit each
        (``pin.approved`` by ``identity``) and serve them here at once."""
        approved = await self.repo().approve(server, tools, identity.subject, digests)
        for change in approved:
            detail = {
                "server": server,
                "tool": change.tool,
                "change": change.kind,
                "digest": change.current.digest,
                "previous": change.approved.digest if change.approved is not None else None,
            }
            self.record(
                AuditEvent.by(
                    identity, "pin.approved", f"{server}/{change.tool}", "ok", detail=detail
                )
            )
        for pins in self.live(server):
            await pins.recheck()
        return approved

    # ---- the poll ----------------------------------------------------------------------------

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._poll(), name="pin-poll")

    async def stop(self) -> None:
        """Stop polling, and let reviews in progress finish (at most ``STOP_SECONDS``)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._reviews:
            await asyncio.wait(set(self._reviews), timeout=STOP_SECONDS)

    async def finish(self, work: Coroutine[Any, Any, T]) -> T:
        """Run ``work`` to its end even if the caller is cancelled meanwhile."""
        task = asyncio.get_running_loop().create_task(work)
        self._reviews.add(task)
        task.add_done_callback(self._finished)
        return await asyncio.shield(task)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._reviews.discard(task)
        if not task.cancelled() and task.exception() is not None:  # seen, if nobody waited
            log.debug("a review failed: %r", task.exception())

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.poll_seconds)
            await self.poll_once()

    async def poll_once(self) -> None:
        """Look once for approvals of what is held back here (a failure is logged)."""
        for server in list(self._live):
            for pins in self.live(server):
                if not (pins.held or pins.unverified):
                    continue
                try:
                    await pins.recheck()
                except Exception:
                    log.exception("%s: checking for approvals failed", server)


def _packages(path: Path) -> dict[str, str]:
    """Server name -> ``runtime:package@version`` from a ``catalyst.lock`` (none if it cannot
    be read: pins then just do not name a package)."""
    from catalyst_mcp.packages.lockfile import read_lock

    try:
        lock = read_lock(path)
    except CatalystError as exc:
        log.warning("cannot read %s: %s", path, exc.message)
        return {}
    return {
        server: f"{record.runtime}:{record.package}@{record.version}"
        for server, record in lock.packages.items()
    }
