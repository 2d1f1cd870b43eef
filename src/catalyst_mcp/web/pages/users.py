"""Users, API keys and roles (administrators): list, create, change, delete, through the admin
API (which checks every field, keeps an administrator from locking themselves out, and audits
every change). A new key's token is shown once, in the answer that created it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import yaml

from catalyst_mcp.web.apiclient import segment
from catalyst_mcp.web.routing import PageError, PageRequest, PageRoute, Reply, need

if TYPE_CHECKING:
    from catalyst_mcp.web.dashboard import Dashboard

__all__ = ["routes"]

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class AccessPages:
    def __init__(self, dashboard: Dashboard) -> None:
        self.render = dashboard.renderer

    # ---- users ---------------------------------------------------------------------------

    async def users(self, request: PageRequest, flash: str | None = None) -> Reply:
        users = need(await request.api.get("/users"))["users"]
        roles = need(await request.api.get("/roles"))["roles"]
        return self.render.page(
            request,
            "users.html",
            current="users",
            users=users,
            roles=[r["name"] for r in roles],
            flash=flash,
        )

    async def create_user(self, request: PageRequest) -> Reply:
        form = await request.form()
        body: dict[str, Any] = {
            "name": form.text("name") or "",
            "kind": form.get("kind", "user") or "user",
            "roles": form.all("roles"),
        }
        for field in ("display_name", "email"):
            if form.text(field) is not None:
                body[field] = form.text(field)
        need(await request.api.post("/users", body))
        return await self.users(request, flash=f"user {body['name']} created")

    async def update_user(self, request: PageRequest) -> Reply:
        name = request.params["name"]
        form = await request.form()
        body = {"roles": form.all("roles"), "disabled": form.get("disabled") == "on"}
        need(await request.api.patch(f"/users/{segment(name)}", body))
        return await self.users(request, flash=f"user {name} updated")

    async def delete_user(self, request: PageRequest) -> Reply:
        name = request.params["name"]
        need(await request.api.delete(f"/users/{segment(name)}"))
        return await self.users(request, flash=f"user {name} deleted, with their keys and secrets")

    # ---- keys ----------------------------------------------------------------------------

    async def keys(
        self, request: PageRequest, flash: str | None = None, created: Any = None
    ) -> Reply:
        keys = need(await request.api.get("/keys"))["keys"]
        users = need(await request.api.get("/users"))["users"]
        return self.render.page(
            request,
            "keys.html",
            current="keys",
            keys=keys,
            users=[u["name"] for u in users],
            flash=flash,
            created=created,
        )

    async def create_key(self, request: PageRequest) -> Reply:
        form = await request.form()
        body: dict[str, Any] = {"user": form.text("user") or "", "name": form.text("name") or ""}
        scopes = (form.text("scopes") or "").replace(",", " ").split()
        if scopes:
            body["scopes"] = scopes
        expires = form.text("expires")
        if expires is not None:
            if not _DATE.match(expires):
                raise PageError(422, "expires must be a date: YYYY-MM-DD")
            body["expires_at"] = f"{expires}T00:00:00Z"
        created = need(await request.api.post("/keys", body))
        return await self.keys(request, flash="key created", created=created)

    async def revoke_key(self, request: PageRequest) -> Reply:
        prefix = request.params["prefix"]
        need(await request.api.delete(f"/keys/{segment(prefix)}"))
        return await self.keys(request, flash=f"key {prefix} revoked")

    # ---- roles ---------------------------------------------------------------------------

    async def roles(self, request: PageRequest, flash: str | None = None) -> Reply:
        roles = need(await request.api.get("/roles"))["roles"]
        return self.render.page(request, "roles.html", current="roles", roles=roles, flash=flash)

    async def put_role(self, request: PageRequest) -> Reply:
        form = await request.form()
        name = form.text("name")
        if name is None:
            raise PageError(422, "the role needs a name")
        try:
            rules = yaml.safe_load(form.get("rules") or "[]")
        except yaml.YAMLError as exc:
            raise PageError(422, f"the rules are not YAML or JSON: {exc}") from None
        if rules is None:
            rules = []
        if not isinstance(rules, list):
            raise PageError(422, "the rules must be a list: [{effect: allow, match: [...]}]")
        body = {"description": form.get("description"), "rules": rules}
        need(await request.api.put(f"/roles/{segment(name)}", body))
        return await self.roles(request, flash=f"role {name} saved")

    async def delete_role(self, request: PageRequest) -> Reply:
        name = request.params["name"]
        form = await request.form()
        force = form.get("force") == "on"
        need(await request.api.delete(f"/roles/{segment(name)}", force=force or None))
        return await self.roles(request, flash=f"role {name} deleted")


def routes(dashboard: Dashboard) -> list[PageRoute]:
    pages = AccessPages(dashboard)
    return [
        PageRoute("GET", "/users", pages.users),
        PageRoute("POST", "/users", pages.create_user),
        PageRoute("POST", "/users/{name}/update", pages.update_user),
        PageRoute("POST", "/users/{name}/delete", pages.delete_user),
        PageRoute("GET", "/keys", pages.keys),
        PageRoute("POST", "/keys", pages.create_key),
        PageRoute("POST", "/keys/{prefix}/revoke", pages.revoke_key),
        PageRoute("GET", "/roles", pages.roles),
        PageRoute("POST", "/roles", pages.put_role),
        PageRoute("POST", "/roles/{name}/delete", pages.delete_role),
    ]
