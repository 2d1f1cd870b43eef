"""The audit trail (administrators): newest first, filtered by actor, action, outcome, target
(a glob) and time, a page at a time (keyset paging by ``seq`` on indexed columns, so a page
costs the same on the first and the millionth record); and the hash chain verified on demand.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from catalyst_mcp.web.routing import PageRequest, PageRoute, Reply, need

if TYPE_CHECKING:
    from catalyst_mcp.web.dashboard import Dashboard

__all__ = ["FILTERS", "routes"]

FILTERS = ("actor", "action", "outcome", "target", "since", "until")
OUTCOMES = ("ok", "error", "denied", "limited", "unauthenticated")


def _moment(value: str) -> str:
    """A ``datetime-local`` field's value (``2026-11-05T14:03``) as the API takes it (UTC)."""
    return value + ":00" if len(value) == 16 else value


class AuditPages:
    def __init__(self, dashboard: Dashboard) -> None:
        self.render = dashboard.renderer
        self.size = dashboard.settings.ui.page_size

    async def search(self, request: PageRequest) -> Reply:
        filters = {k: v.strip() for k in FILTERS if (v := request.query.get(k, "")).strip()}
        query: dict[str, Any] = {
            k: _moment(v) if k in ("since", "until") else v for k, v in filters.items()
        }
        before = request.query.get("before", "").strip()
        page = need(
            await request.api.get(
                "/audit", order="desc", limit=self.size, before_seq=before or None, **query
            )
        )
        older = None
        if page.get("next_before_seq") is not None:
            older = urlencode({**filters, "before": page["next_before_seq"]})
        return self.render.page(
            request,
            "audit.html",
            current="audit",
            records=page["records"],
            filters=filters,
            outcomes=OUTCOMES,
            older=older,
            newest=urlencode(filters),
            paged=bool(before),
        )

    async def verify(self, request: PageRequest) -> Reply:
        report = need(await request.api.get("/audit/verify"))
        return self.render.fragment(request, "verify.html", report=report)


def routes(dashboard: Dashboard) -> list[PageRoute]:
    pages = AuditPages(dashboard)
    return [
        PageRoute("GET", "/audit", pages.search),
        PageRoute("GET", "/audit/verify", pages.verify),
    ]
