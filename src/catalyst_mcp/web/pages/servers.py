"""The servers: their state, start/stop/restart, the tail of their logs, their tools.

Everyone sees the servers they may use something of (``GET /api/v1/servers``); administrators
also see each one's process and may act on it (the admin API's ``/servers/{name}/...``, which
audits every action). The logs tail follows itself: each fragment asks for the lines after
its last one, and the API holds that request until a line arrives (long polling).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from catalyst_mcp.web.apiclient import segment
from catalyst_mcp.web.pages.common import every_tool
from catalyst_mcp.web.routing import PageError, PageRequest, PageRoute, Reply, need

if TYPE_CHECKING:
    from catalyst_mcp.web.dashboard import Dashboard

__all__ = ["routes"]

ACTIONS = {"start": "started", "stop": "stopped", "restart": "restarted"}
LOG_TAIL = 200
LOG_WAIT_SECONDS = 15


class ServerPages:
    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard
        self.render = dashboard.renderer

    async def list(self, request: PageRequest) -> Reply:
        servers = need(await request.api.get("/servers"))["servers"]
        return self.render.page(request, "servers.html", current="servers", servers=servers)

    async def _entry(self, request: PageRequest, name: str) -> dict[str, Any]:
        for server in need(await request.api.get("/servers"))["servers"]:
            if server["name"] == name:
                return dict(server)
        raise PageError(404, f"no server {name!r} (or none you may use)")

    async def show(self, request: PageRequest, flash: str | None = None) -> Reply:
        name = request.params["name"]
        entry = await self._entry(request, name)
        status = logs = None
        if request.admin:
            answer = await request.api.get(f"/servers/{segment(name)}")
            if answer.status != 404:  # 404: a knowledge pack, or a provider not configured
                status = need(answer)
                logs = need(await request.api.get(f"/servers/{segment(name)}/logs", tail=LOG_TAIL))
        tools = [t async for t in every_tool(request) if _of(t["name"], entry["namespace"])]
        return self.render.page(
            request,
            "server.html",
            current="servers",
            name=name,
            server=entry,
            process=status,
            logs=logs,
            tools=tools,
            flash=flash,
        )

    async def act(self, request: PageRequest) -> Reply:
        name, action = request.params["name"], request.params["action"]
        if action not in ACTIONS:
            raise PageError(404, "there is no such page")
        answer = need(await request.api.post(f"/servers/{segment(name)}/{action}"))
        done = ACTIONS[action] if answer.get("changed") else f"already {ACTIONS[action]}"
        state = answer.get("server", {}).get("state", "")
        return await self.show(request, flash=f"{name}: {done} (now {state})")

    async def logs(self, request: PageRequest) -> Reply:
        name = request.params["name"]
        try:
            after = max(0, int(request.query.get("after", "0")))
        except ValueError:
            raise PageError(422, "after must be a line number") from None
        logs = need(
            await request.api.get(
                f"/servers/{segment(name)}/logs", after=after, wait=LOG_WAIT_SECONDS
            )
        )
        return self.render.fragment(request, "logs.html", name=name, logs=logs)


def _of(tool: str, namespace: str | None) -> bool:
    """Whether ``tool`` (a public name) belongs to the server of ``namespace``."""
    if namespace:
        return tool.startswith(namespace + "__")
    return "__" not in tool  # a server without a namespace keeps its names as they are


def routes(dashboard: Dashboard) -> list[PageRoute]:
    pages = ServerPages(dashboard)
    return [
        PageRoute("GET", "/servers", pages.list),
        PageRoute("GET", "/servers/{name}", pages.show),
        PageRoute("POST", "/servers/{name}/{action}", pages.act),
        PageRoute("GET", "/servers/{name}/logs", pages.logs),
    ]
