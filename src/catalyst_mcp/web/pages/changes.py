"""Tool changes (administrators): tools whose definitions changed since they were pinned
(decision 016), with what changed, and approving them.

``GET /api/v1/pins`` says which servers have tools waiting for approval, and ``GET
/api/v1/servers/{name}/tools/changes`` lists them for each of those servers. Each shows whether
it is new or changed, whether this gateway holds it back (``pin: strict``) or serves it
meanwhile (``pin: warn``), its digest, and the diff against the approved definition
(``trust/diff.py``: descriptions word by word, schemas by path) with the changed words marked.
Approving sends the digest that was shown (``POST .../tools/approve`` with ``digests``): a tool
that changed again since the page was drawn is refused (409) rather than approved unseen, as
``catalyst tools approve`` does.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from catalyst_mcp.web.apiclient import segment
from catalyst_mcp.web.routing import PageError, PageRequest, PageRoute, Reply, need

if TYPE_CHECKING:
    from catalyst_mcp.web.dashboard import Dashboard

__all__ = ["diff_view", "routes"]

_MARKS = re.compile(r"\[-(.*?)-\]|\{\+(.*?)\+\}", re.DOTALL)
Span = tuple[str, str]  # (kind: "", "del" or "add", text)


def diff_view(lines: list[str]) -> list[tuple[str, list[Span]]]:
    """The API's diff lines, each as (line kind, spans): a field's path (``path``), a line
    removed (``del``) or added (``add``), or a word diff (``words``) whose ``[-removed-]`` and
    ``{+added+}`` parts become spans of their own."""
    shown: list[tuple[str, list[Span]]] = []
    for line in lines:
        body = line.lstrip(" ")
        if line == body:
            shown.append(("path", [("", line)]))
        elif body.startswith(("- ", "-")) and not body.startswith("[-"):
            shown.append(("del", [("", line)]))
        elif body.startswith(("+ ", "+")) and not body.startswith("{+"):
            shown.append(("add", [("", line)]))
        else:
            spans: list[Span] = []
            last = 0
            for found in _MARKS.finditer(line):
                if found.start() > last:
                    spans.append(("", line[last : found.start()]))
                if found.group(1) is not None:
                    spans.append(("del", found.group(1)))
                else:
                    spans.append(("add", found.group(2)))
                last = found.end()
            if last < len(line):
                spans.append(("", line[last:]))
            shown.append(("words", spans))
    return shown


class ChangePages:
    def __init__(self, dashboard: Dashboard) -> None:
        self.render = dashboard.renderer

    async def list(self, request: PageRequest, flash: str | None = None) -> Reply:
        pinned = need(await request.api.get("/pins"))["servers"]
        waiting: list[dict[str, Any]] = []
        for server in pinned:
            if not server["waiting"]:
                continue
            name = server["server"]
            changes = need(await request.api.get(f"/servers/{segment(name)}/tools/changes"))
            for change in changes["changes"]:
                change["lines"] = diff_view(change.get("diff") or [])
            if changes["changes"]:
                waiting.append({"name": name, "changes": changes["changes"]})
        return self.render.page(
            request,
            "changes.html",
            current="changes",
            servers=waiting,
            pinned=len(pinned),
            count=sum(len(s["changes"]) for s in waiting),
            flash=flash,
        )

    async def approve(self, request: PageRequest) -> Reply:
        server = request.params["name"]
        form = await request.form()
        tools, digests = form.all("tool"), form.all("digest")
        if not tools or len(tools) != len(digests):
            raise PageError(422, "name the tools to approve, each with the digest reviewed")
        body = {"tools": tools, "digests": dict(zip(tools, digests, strict=True))}
        answer = need(await request.api.post(f"/servers/{segment(server)}/tools/approve", body))
        names = ", ".join(f"{a['tool']} ({a['change']})" for a in answer["approved"])
        return await self.list(request, flash=f"{server}: approved {names}; served as approved")


def routes(dashboard: Dashboard) -> list[PageRoute]:
    pages = ChangePages(dashboard)
    return [
        PageRoute("GET", "/tool-changes", pages.list),
        PageRoute("POST", "/tool-changes/{name}/approve", pages.approve),
    ]
