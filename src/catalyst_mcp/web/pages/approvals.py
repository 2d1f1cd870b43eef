"""Approvals: the calls ``require_approval`` rules hold, for an approver to approve or reject.

Who may see and decide them is the API's to say: ``/api/v1/approvals`` is the admin API (the
``admin`` role, and the ``admin`` scope for a key with scopes), as for ``catalyst rules
approve``; anyone else gets the API's 403, audited as ``denied``. The page shows the pending
requests (who, the tool, the arguments as the API keeps them for the approver, the rule, the
age and the time left), a reason field with Approve and Reject, and the newest decided ones. A
decision is ``POST /api/v1/approvals/{id}/approve|reject`` with the reason as its note: the
waiting call wakes at once, and the decision is audited as ``admin.approvals.approve|reject``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from catalyst_mcp.web.apiclient import segment
from catalyst_mcp.web.pages.common import moment
from catalyst_mcp.web.routing import PageError, PageRequest, PageRoute, Reply, need

if TYPE_CHECKING:
    from catalyst_mcp.web.dashboard import Dashboard

__all__ = ["PENDING_LIMIT", "RECENT_LIMIT", "routes"]

PENDING_LIMIT = 200
RECENT_LIMIT = 50
MAX_NOTE = 500  # the API's limit on a decision's note
DONE = {"approve": "approved: the held call runs", "reject": "rejected: the call is not run"}


def _timed(approval: dict[str, Any], now: datetime) -> dict[str, Any]:
    """``approval`` with its ``age`` and the seconds ``left`` before it expires."""
    created, expires = moment(approval.get("created_at")), moment(approval.get("expires_at"))
    age = (now - created).total_seconds() if created is not None else None
    left = (expires - now).total_seconds() if expires is not None else None
    return {**approval, "age": age, "left": left, "expired": left is not None and left <= 0}


class ApprovalPages:
    def __init__(self, dashboard: Dashboard) -> None:
        self.render = dashboard.renderer

    async def list(self, request: PageRequest, flash: str | None = None) -> Reply:
        found = need(await request.api.get("/approvals", status="pending", limit=PENDING_LIMIT))
        pending = found["approvals"]
        # the newest len(pending) + RECENT_LIMIT requests hold the RECENT_LIMIT newest decided
        # ones (at most len(pending) of them are pending): one query, whatever the mix
        wanted = min(1000, len(pending) + RECENT_LIMIT)
        newest = need(await request.api.get("/approvals", limit=wanted))["approvals"]
        decided = [a for a in newest if a["status"] != "pending"][:RECENT_LIMIT]
        now = datetime.now(UTC)
        return self.render.page(
            request,
            "approvals.html",
            current="approvals",
            pending=[_timed(a, now) for a in pending],
            more=len(pending) >= PENDING_LIMIT,
            decided=decided,
            flash=flash,
        )

    async def decide(self, request: PageRequest) -> Reply:
        approval_id, verb = request.params["id"], request.params["verb"]
        if verb not in DONE:
            raise PageError(404, "there is no such page")
        form = await request.form()
        note = form.text("note")
        if note is not None and len(note) > MAX_NOTE:
            raise PageError(422, f"the reason is longer than {MAX_NOTE} characters")
        decided = need(
            await request.api.post(f"/approvals/{segment(approval_id)}/{verb}", {"note": note})
        )
        flash = f"{decided['id']} ({decided['tool']} for {decided['user']}) {DONE[verb]}"
        return await self.list(request, flash=flash)


def routes(dashboard: Dashboard) -> list[PageRoute]:
    pages = ApprovalPages(dashboard)
    return [
        PageRoute("GET", "/approvals", pages.list),
        PageRoute("POST", "/approvals/{id}/{verb}", pages.decide),
    ]
