"""Packages (administrators): what is installed, the catalog (the MCP Registry or the bundled
snapshot), and installs whose progress lines follow themselves on the page (each fragment
asks the API for the lines after its last one; the API holds the request until one comes)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from catalyst_mcp.web.apiclient import segment
from catalyst_mcp.web.routing import PageError, PageRequest, PageRoute, Reply, need

if TYPE_CHECKING:
    from catalyst_mcp.web.dashboard import Dashboard

__all__ = ["routes"]

WAIT_SECONDS = 15


class PackagePages:
    def __init__(self, dashboard: Dashboard) -> None:
        self.render = dashboard.renderer

    async def list(self, request: PageRequest) -> Reply:
        installed = need(await request.api.get("/packages"))
        jobs = need(await request.api.get("/packages/installs"))["jobs"]
        catalog = None
        q = request.query.get("q")
        if q is not None:
            catalog = need(await request.api.get("/packages/catalog", q=q.strip()))
        return self.render.page(
            request,
            "packages.html",
            current="packages",
            installed=installed,
            jobs=jobs,
            catalog=catalog,
            q=q or "",
        )

    async def install(self, request: PageRequest) -> Reply:
        form = await request.form()
        package = form.text("package")
        if package is None:
            raise PageError(422, "name the package to install")
        env: dict[str, str] = {}
        for line in (form.get("env") or "").splitlines():
            if not line.strip():
                continue
            key, sep, value = line.partition("=")
            if not sep or not key.strip():
                raise PageError(422, f"environment lines are NAME=value, not {line!r}")
            env[key.strip()] = value
        body: dict[str, Any] = {"package": package, "env": env}
        if form.text("name") is not None:
            body["name"] = form.text("name")
        if form.get("force") == "on":
            body["force"] = True
        job = need(await request.api.post("/packages/installs", body))
        return self.render.fragment(request, "install.html", job=job, fresh=True)

    async def follow(self, request: PageRequest) -> Reply:
        job_id = request.params["id"]
        try:
            after = max(0, int(request.query.get("after", "0")))
        except ValueError:
            raise PageError(422, "after must be a line number") from None
        job = need(
            await request.api.get(
                f"/packages/installs/{segment(job_id)}", after=after, wait=WAIT_SECONDS
            )
        )
        return self.render.fragment(request, "install.html", job=job, fresh=False)


def routes(dashboard: Dashboard) -> list[PageRoute]:
    pages = PackagePages(dashboard)
    return [
        PageRoute("GET", "/packages", pages.list),
        PageRoute("POST", "/packages/install", pages.install),
        PageRoute("GET", "/packages/installs/{id}", pages.follow),
    ]
