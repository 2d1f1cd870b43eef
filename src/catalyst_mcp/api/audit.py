"""``/audit``: search the audit trail and verify its hash chain."""

from __future__ import annotations

from catalyst_mcp.api import models as m
from catalyst_mcp.api.router import ApiRequest, Route
from catalyst_mcp.api.services import AdminServices
from catalyst_mcp.observability.auditchain import verify
from catalyst_mcp.observability.auditsearch import search

__all__ = ["AuditHandlers"]


class AuditHandlers:
    def __init__(self, services: AdminServices) -> None:
        self.services = services

    async def search(self, request: ApiRequest) -> m.AuditPage:
        q = request.query_as(m.AuditQuery)
        newest_first = q.order == "desc"
        found = await search(
            self.services.db,
            actor=q.actor,
            action=q.action,
            outcome=q.outcome,
            target=q.target,
            since=q.since,
            until=q.until,
            limit=q.limit + 1,  # one more tells whether there is a next page
            after_seq=q.before_seq if newest_first else q.after_seq,
            newest_first=newest_first,
        )
        page = found[: q.limit]
        more = page[-1]["seq"] if len(found) > q.limit else None
        return m.AuditPage(
            records=[m.AuditRecord.model_validate(r) for r in page],
            next_after_seq=None if newest_first else more,
            next_before_seq=more if newest_first else None,
        )

    async def verify(self, request: ApiRequest) -> m.AuditVerification:
        report = await verify(self.services.db)
        return m.AuditVerification(
            ok=report.ok,
            records=report.records,
            first_bad_seq=report.first_bad_seq,
            reason=report.reason,
            last_hash=report.last_hash,
        )

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET",
                "/audit",
                self.search,
                action="admin.audit.search",
                summary="Search the audit trail, a page at a time (oldest or newest first)",
                tag="audit",
                query=m.AuditQuery,
                response=m.AuditPage,
            ),
            Route(
                "GET",
                "/audit/verify",
                self.verify,
                action="admin.audit.verify",
                summary="Verify the audit trail's hash chain",
                tag="audit",
                response=m.AuditVerification,
            ),
        ]
