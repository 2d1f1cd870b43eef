"""Pinned tool definitions: what each server's tools were approved to tell the model.

A server's first list (its *first contact*) is approved as it is. Afterwards each definition a
gateway sees is either one of the tool's approved definitions (a few are kept per tool, so a
package rolled back, or an instance still running the previous version, needs no new
approval) or its *change*: the one unapproved row per tool, replaced when the tool changes
again and removed when the tool goes back to an approved definition or disappears.
:meth:`PinRepo.observe` does all of that in one transaction; :meth:`PinRepo.approve` turns
changes into approved definitions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession

from catalyst_mcp.errors import Conflict, Missing
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.models import check_text, utcnow
from catalyst_mcp.storage.pin_model import MAX_TOOL_NAME, PinnedServer, PinnedTool

__all__ = [
    "FIRST_CONTACT",
    "KEEP_APPROVED",
    "Observation",
    "PinChange",
    "PinRecord",
    "PinRepo",
    "Seen",
]

_IN_CHUNK = 500  # tool names in one IN (...) list

FIRST_CONTACT = "first-contact"
"""``approved_by`` of the definitions a server listed when Catalyst first met it."""
KEEP_APPROVED = 5
"""Approved definitions kept per tool (the newest); older ones need approving again."""


@dataclass(frozen=True, slots=True)
class Seen:
    """One tool as a gateway saw it: the digest of its definition, and the definition."""

    digest: str
    definition: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class PinRecord:
    """One stored definition of a tool (approved, or waiting when ``approved_at`` is None)."""

    server: str
    tool: str
    digest: str
    definition: dict[str, Any]
    package: str | None
    first_seen_at: datetime
    last_seen_at: datetime
    approved_at: datetime | None
    approved_by: str | None


@dataclass(frozen=True, slots=True)
class PinChange:
    """A tool waiting for approval: its current definition and its newest approved one (None
    for a tool new since first contact)."""

    current: PinRecord
    approved: PinRecord | None

    @property
    def tool(self) -> str:
        return self.current.tool

    @property
    def kind(self) -> str:
        """``changed`` or ``new``."""
        return "new" if self.approved is None else "changed"


@dataclass(frozen=True, slots=True)
class Observation:
    """What :meth:`PinRepo.observe` found. ``approved``: each seen tool's approved digests;
    ``recorded``: the tools whose current (unapproved) definition this observation stored
    first, i.e. changes no gateway had reported before."""

    first_contact: bool
    approved: dict[str, frozenset[str]]
    recorded: frozenset[str]


def _record(row: PinnedTool) -> PinRecord:
    return PinRecord(
        server=row.server,
        tool=row.tool,
        digest=row.digest,
        definition=dict(row.definition),
        package=row.package,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        approved_at=row.approved_at,
        approved_by=row.approved_by,
    )


def _check_server(server: str) -> None:
    check_text("a server name", server, 128)


class PinRepo:
    """Record what servers' tools say, and which definitions are approved."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def observe(
        self, server: str, seen: Mapping[str, Seen], package: str | None = None
    ) -> Observation:
        """Record the tools ``server`` lists now (names of at most ``MAX_TOOL_NAME``
        characters). At first contact every one is approved; afterwards a definition that is
        not approved becomes the tool's change (replacing an older one), a change of a tool
        that went back to an approved definition or disappeared is dropped."""
        _check_server(server)
        if any(len(name) > MAX_TOOL_NAME for name in seen):
            raise ValueError(f"tool names longer than {MAX_TOOL_NAME} characters cannot be pinned")
        now = utcnow()
        claim = (
            self.db.insert(PinnedServer)
            .values(server=server, first_seen_at=now, package=package)
            .on_conflict_do_nothing(index_elements=[PinnedServer.server])
            .returning(PinnedServer.server)
        )
        async with self.db.session(write=True) as session:
            if (await session.execute(claim)).first() is not None:
                rows = [
                    _row(server, name, item, package, now, approved=True)
                    for name, item in seen.items()
                ]
                if rows:
                    await session.execute(self.db.insert(PinnedTool), rows)
                approved = {name: frozenset({item.digest}) for name, item in seen.items()}
                return Observation(True, approved, frozenset())
            stored = await session.execute(
                select(PinnedTool.tool, PinnedTool.digest, PinnedTool.approved_at).where(
                    PinnedTool.server == server
                )
            )
            approved_of: dict[str, set[str]] = {}
            pending: dict[str, str] = {}
            for tool, digest, approved_at in stored:
                if approved_at is None:
                    pending[tool] = digest
                else:
                    approved_of.setdefault(tool, set()).add(digest)
            stale = [(tool, digest) for tool, digest in pending.items() if tool not in seen]
            still: list[tuple[str, str]] = []
            recorded: set[str] = set()
            for name, item in seen.items():
                waiting = pending.get(name)
                if item.digest in approved_of.get(name, ()):
                    if waiting is not None:
                        stale.append((name, waiting))
                    continue
                if waiting == item.digest:
                    still.append((name, waiting))
                    continue
                if waiting is not None:
                    stale.append((name, waiting))
                row = _row(server, name, item, package, now, approved=False)
                inserted = await session.execute(
                    self.db.insert(PinnedTool)
                    .values(**row)
                    .on_conflict_do_nothing(
                        index_elements=[PinnedTool.server, PinnedTool.tool, PinnedTool.digest]
                    )
                    .returning(PinnedTool.tool)
                )
                if inserted.first() is not None:  # else another gateway just recorded it
                    recorded.add(name)
            if stale:
                await session.execute(
                    delete(PinnedTool)
                    .where(
                        PinnedTool.server == server,
                        PinnedTool.approved_at.is_(None),
                        tuple_(PinnedTool.tool, PinnedTool.digest).in_(stale),
                    )
                    .execution_options(synchronize_session=False)
                )
            if still:
                await session.execute(
                    update(PinnedTool)
                    .where(
                        PinnedTool.server == server,
                        tuple_(PinnedTool.tool, PinnedTool.digest).in_(still),
                    )
                    .values(last_seen_at=now)
                    .execution_options(synchronize_session=False)
                )
        approved = {name: frozenset(approved_of.get(name, ())) for name in seen}
        return Observation(False, approved, frozenset(recorded))

    async def approved(self, server: str, tools: Iterable[str]) -> dict[str, frozenset[str]]:
        """The approved digests of ``tools`` of ``server`` (tools with none are left out)."""
        names = list(tools)
        if not names:
            return {}
        query = select(PinnedTool.tool, PinnedTool.digest).where(
            PinnedTool.server == server,
            PinnedTool.tool.in_(names),
            PinnedTool.approved_at.is_not(None),
        )
        found: dict[str, set[str]] = {}
        async with self.db.session() as session:
            for tool, digest in await session.execute(query):
                found.setdefault(tool, set()).add(digest)
        return {tool: frozenset(digests) for tool, digests in found.items()}

    async def servers(self) -> list[str]:
        """Every server met so far, by name."""
        async with self.db.session() as session:
            names = await session.scalars(select(PinnedServer.server).order_by(PinnedServer.server))
            return list(names)

    async def waiting(self) -> dict[str, int]:
        """Every server met so far, by name, with how many of its tools wait for approval."""
        async with self.db.session() as session:
            counts = dict.fromkeys(await session.scalars(select(PinnedServer.server)), 0)
            query = (
                select(PinnedTool.server, func.count())
                .where(PinnedTool.approved_at.is_(None))
                .group_by(PinnedTool.server)
            )
            for server, count in await session.execute(query):
                counts[server] = count
        return dict(sorted(counts.items()))

    async def changes(self, server: str) -> list[PinChange]:
        """The tools of ``server`` waiting for approval, by name; Missing if Catalyst never
        met the server."""
        async with self.db.session() as session:
            return await self._changes(session, server)

    async def _changes(self, session: AsyncSession, server: str) -> list[PinChange]:
        if await session.get(PinnedServer, server) is None:
            raise Missing(
                f"no tools of server {server!r} are pinned: no gateway has connected to it with "
                "`pin: strict` or `pin: warn` yet"
            )
        # the waiting rows, then the approved ones of just those tools: a server of 1,000
        # tools with a few changes reads a few rows, not every definition it ever had
        waiting = [
            _record(row)
            for row in await session.scalars(
                select(PinnedTool)
                .where(PinnedTool.server == server, PinnedTool.approved_at.is_(None))
                .order_by(PinnedTool.tool)
            )
        ]
        names = sorted({row.tool for row in waiting})
        newest: dict[str, PinRecord] = {}
        for start in range(0, len(names), _IN_CHUNK):
            query = select(PinnedTool).where(
                PinnedTool.server == server,
                PinnedTool.approved_at.is_not(None),
                PinnedTool.tool.in_(names[start : start + _IN_CHUNK]),
            )
            for found in await session.scalars(query):
                row = _record(found)
                best = newest.get(row.tool)
                assert row.approved_at is not None
                if best is None or best.approved_at is None or best.approved_at < row.approved_at:
                    newest[row.tool] = row
        return [PinChange(row, newest.get(row.tool)) for row in waiting]

    async def approve(
        self,
        server: str,
        tools: Sequence[str] | None,
        by: str,
        digests: Mapping[str, str] | None = None,
    ) -> list[PinChange]:
        """Approve the current definitions of ``tools`` of ``server`` (None: every change);
        the changes approved, each with the definition it replaces. Missing if a tool has no
        change waiting; Conflict if ``digests`` names (a prefix of) a definition that is not
        the one waiting any more (it changed again since it was reviewed). Only the newest
        ``KEEP_APPROVED`` approved definitions of each tool are kept."""
        check_text("an approver", by, 128)
        async with self.db.session(write=True) as session:
            waiting = {change.tool: change for change in await self._changes(session, server)}
            names = sorted(waiting) if tools is None else list(dict.fromkeys(tools))
            unknown = [name for name in names if name not in waiting]
            if unknown:
                listed = ", ".join(sorted(waiting)) or "none"
                raise Missing(
                    f"no change of {_names(unknown)} of server {server!r} is waiting for "
                    f"approval (waiting: {listed})"
                )
            reviewed = digests or {}
            for name in names:
                prefix = reviewed.get(name)
                waiting_digest = waiting[name].current.digest
                if prefix is not None and not (prefix and waiting_digest.startswith(prefix)):
                    raise Conflict(
                        f"tool {name!r} of server {server!r} is not at {prefix!r} any more "
                        f"(waiting: {waiting_digest[:12]}): it changed since it was reviewed; "
                        "review it again"
                    )
            now = utcnow()
            approved = []
            for name in names:
                current = waiting[name].current
                await session.execute(
                    update(PinnedTool)
                    .where(
                        PinnedTool.server == server,
                        PinnedTool.tool == name,
                        PinnedTool.digest == current.digest,
                    )
                    .values(approved_at=now, approved_by=by)
                    .execution_options(synchronize_session=False)
                )
                await _prune(session, server, name)
                approved.append(waiting[name])
            return approved


async def _prune(session: AsyncSession, server: str, tool: str) -> None:
    """Keep only the newest ``KEEP_APPROVED`` approved definitions of ``tool``."""
    kept = (
        select(PinnedTool.digest)
        .where(
            PinnedTool.server == server,
            PinnedTool.tool == tool,
            PinnedTool.approved_at.is_not(None),
        )
        .order_by(PinnedTool.approved_at.desc(), PinnedTool.digest)
        .limit(KEEP_APPROVED)
    )
    digests = list(await session.scalars(kept))
    await session.execute(
        delete(PinnedTool)
        .where(
            PinnedTool.server == server,
            PinnedTool.tool == tool,
            PinnedTool.approved_at.is_not(None),
            PinnedTool.digest.not_in(digests),
        )
        .execution_options(synchronize_session=False)
    )


def _row(
    server: str, name: str, item: Seen, package: str | None, now: datetime, *, approved: bool
) -> dict[str, Any]:
    return {
        "server": server,
        "tool": name,
        "digest": item.digest,
        "definition": dict(item.definition),
        "package": package,
        "first_seen_at": now,
        "last_seen_at": now,
        "approved_at": now if approved else None,
        "approved_by": FIRST_CONTACT if approved else None,
    }


def _names(names: Sequence[str]) -> str:
    quoted = ", ".join(repr(name) for name in names)
    return f"tool {quoted}" if len(names) == 1 else f"tools {quoted}"
