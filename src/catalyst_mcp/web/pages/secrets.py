"""Secrets: their names and owners, set and delete. A value goes to the API once, when it is
set, and is never shown again (the API never returns one; the form is never filled back)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from catalyst_mcp.web.apiclient import segment
from catalyst_mcp.web.routing import PageError, PageRequest, PageRoute, Reply, need

if TYPE_CHECKING:
    from catalyst_mcp.web.dashboard import Dashboard

__all__ = ["routes"]


class SecretPages:
    def __init__(self, dashboard: Dashboard) -> None:
        self.render = dashboard.renderer

    async def list(self, request: PageRequest, flash: str | None = None) -> Reply:
        secrets = need(await request.api.get("/secrets"))["secrets"]
        return self.render.page(
            request, "secrets.html", current="secrets", secrets=secrets, flash=flash
        )

    async def put(self, request: PageRequest) -> Reply:
        form = await request.form()
        owner, scope, name = (form.text(k) or "" for k in ("owner", "scope", "name"))
        value = form.get("value")
        if not (owner and scope and name):
            raise PageError(422, "owner, scope and name are all needed ('*': everyone, any)")
        if not value:
            raise PageError(422, "the value is empty")
        path = f"/secrets/{segment(owner)}/{segment(scope)}/{segment(name)}"
        need(await request.api.put(path, {"value": value}))
        return await self.list(request, flash=f"secret {owner}/{scope}/{name} set")

    async def delete(self, request: PageRequest) -> Reply:
        owner, scope, name = (request.params[k] for k in ("owner", "scope", "name"))
        path = f"/secrets/{segment(owner)}/{segment(scope)}/{segment(name)}"
        need(await request.api.delete(path))
        return await self.list(request, flash=f"secret {owner}/{scope}/{name} deleted")


def routes(dashboard: Dashboard) -> list[PageRoute]:
    pages = SecretPages(dashboard)
    return [
        PageRoute("GET", "/secrets", pages.list),
        PageRoute("POST", "/secrets", pages.put),
        PageRoute("POST", "/secrets/{owner}/{scope}/{name}/delete", pages.delete),
    ]
