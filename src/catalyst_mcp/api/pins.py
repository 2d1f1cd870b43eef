"""``/pins`` and ``/servers/{name}/tools``: the pinned servers with how many of their tools
wait for approval, those tools' definitions with diffs, and approving them.

An approval here releases the tools on this gateway at once (clients get
``notifications/tools/list_changed``); other instances pick it up within seconds
(:mod:`catalyst_mcp.trust.pinning`).
"""

from __future__ import annotations

from catalyst_mcp.api import models as m
from catalyst_mcp.api.router import ApiRequest, Route
from catalyst_mcp.api.services import AdminServices
from catalyst_mcp.storage.pins import PinChange, PinRecord
from catalyst_mcp.trust.diff import definition_diff

__all__ = ["PinHandlers", "change_model"]


def _approved(record: PinRecord | None) -> m.ApprovedDefinition | None:
    if record is None or record.approved_at is None:
        return None
    return m.ApprovedDefinition(
        digest=record.digest,
        approved_at=record.approved_at,
        approved_by=record.approved_by or "",
        package=record.package,
        definition=record.definition,
    )


def change_model(change: PinChange, held: bool) -> m.ToolChange:
    current = change.current
    approved = change.approved.definition if change.approved is not None else None
    return m.ToolChange(
        tool=change.tool,
        change="new" if change.approved is None else "changed",
        held=held,
        digest=current.digest,
        first_seen_at=current.first_seen_at,
        last_seen_at=current.last_seen_at,
        package=current.package,
        definition=current.definition,
        approved=_approved(change.approved),
        diff=definition_diff(approved, current.definition),
    )


class PinHandlers:
    def __init__(self, services: AdminServices) -> None:
        self.services = services

    async def servers(self, request: ApiRequest) -> m.PinnedServers:
        pinning = self.services.pinning
        waiting = await pinning.waiting()
        return m.PinnedServers(
            servers=[
                m.PinnedServer(
                    server=server,
                    waiting=count,
                    held=sorted(pinning.held_on(server)) if count else [],
                )
                for server, count in waiting.items()
            ]
        )

    async def changes(self, request: ApiRequest) -> m.ToolChanges:
        server = request.path_as(m.ServerPath).name
        pinning = self.services.pinning
        found = await pinning.changes(server)
        held = pinning.held_on(server)
        return m.ToolChanges(
            server=server, changes=[change_model(c, c.tool in held) for c in found]
        )

    async def approve(self, request: ApiRequest) -> m.ToolApprovals:
        server = request.path_as(m.ServerPath).name
        body = request.body_as(m.ToolApprove)
        tools = None if body.all else body.tools
        approved = await self.services.pinning.approve(
            server, tools, request.identity, body.digests
        )
        return m.ToolApprovals(
            server=server,
            approved=[
                m.ToolApproval(
                    tool=change.tool,
                    change="new" if change.approved is None else "changed",
                    digest=change.current.digest,
                    previous=change.approved.digest if change.approved is not None else None,
                )
                for change in approved
            ],
        )

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET",
                "/pins",
                self.servers,
                action="admin.pins.list",
                summary="Pinned servers, with how many of their tools wait for approval",
                tag="pins",
                response=m.PinnedServers,
            ),
            Route(
                "GET",
                "/servers/{name}/tools/changes",
                self.changes,
                action="admin.tools.changes",
                summary="Tools of a server whose definitions wait for approval, with diffs",
                tag="pins",
                path_model=m.ServerPath,
                response=m.ToolChanges,
            ),
            Route(
                "POST",
                "/servers/{name}/tools/approve",
                self.approve,
                action="admin.tools.approve",
                summary="Approve tools' current definitions: held tools are served again",
                tag="pins",
                path_model=m.ServerPath,
                body=m.ToolApprove,
                response=m.ToolApprovals,
                changes=True,
            ),
        ]
