"""The overview: the servers with their state and health, and the gateway's tool calls (calls
per minute, error rate, p50/p95) from its own metrics registry (administrators)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from catalyst_mcp.web.routing import PageRequest, PageRoute, Reply, need

if TYPE_CHECKING:
    from catalyst_mcp.web.dashboard import Dashboard

__all__ = ["routes"]


def routes(dashboard: Dashboard) -> list[PageRoute]:
    async def overview(request: PageRequest) -> Reply:
        servers = need(await request.api.get("/servers"))["servers"]
        summary = readiness = None
        if request.admin:
            summary = dashboard.metrics.summary()
            readiness = dashboard.gateway.readiness()
        return dashboard.renderer.page(
            request,
            "overview.html",
            current="overview",
            servers=servers,
            summary=summary,
            readiness=readiness,
        )

    return [PageRoute("GET", "/", overview)]
