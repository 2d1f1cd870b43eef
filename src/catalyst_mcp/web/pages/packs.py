"""The knowledge packs: each file's state, and its problems as ``file:line:col`` (the last
reload's error while an invalid edit keeps the previous version serving)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from catalyst_mcp.web.routing import PageRequest, PageRoute, Reply, need

if TYPE_CHECKING:
    from catalyst_mcp.web.dashboard import Dashboard

__all__ = ["routes"]


def routes(dashboard: Dashboard) -> list[PageRoute]:
    async def packs(request: PageRequest) -> Reply:
        listing = need(await request.api.get("/packs"))
        return dashboard.renderer.page(request, "packs.html", current="packs", listing=listing)

    return [PageRoute("GET", "/packs", packs)]
