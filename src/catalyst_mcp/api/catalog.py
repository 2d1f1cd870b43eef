"""``/servers``, ``/tools``, ``/resources``, ``/prompts``: what the caller may use, read-only.

Every list comes from the MCP endpoint's own list methods (:meth:`Dispatcher.direct`): filtered
by the caller's roles and API key scopes exactly as ``tools/list`` is for them, a page of at
most 1,000 at a time with the same ``nextCursor``. ``/servers`` summarises those lists by the
server each item belongs to (this is the read-only view for API clients; starting and stopping
servers belongs to the admin side).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from catalyst_mcp.api import toolmodels as m
from catalyst_mcp.api.router import ApiRequest, Handler, Route
from catalyst_mcp.errors import NotFound
from catalyst_mcp.providers import LIST_KINDS, ListKind
from catalyst_mcp.registry import NAME_FIELD

if TYPE_CHECKING:
    from catalyst_mcp.context import Identity
    from catalyst_mcp.protocol.dispatch import Dispatcher

__all__ = ["LIST_METHOD", "CatalogHandlers", "every"]

LIST_METHOD: dict[ListKind, str] = {
    "tools": "tools/list",
    "resources": "resources/list",
    "resourceTemplates": "resources/templates/list",
    "prompts": "prompts/list",
}


async def every(
    dispatcher: Dispatcher, kind: ListKind, identity: Identity
) -> AsyncIterator[dict[str, Any]]:
    """Every item of ``kind`` the caller may see, page after page of the MCP list."""
    params: dict[str, Any] = {}
    while True:
        page = await dispatcher.direct(LIST_METHOD[kind], params, identity)
        for item in page[kind]:
            yield item
        cursor = page.get("nextCursor")
        if not cursor:
            return
        params = {"cursor": cursor}


# An administrator's view of the served servers' processes, by name (None for anyone else).
ProcessDetails = Callable[["Identity"], Mapping[str, Mapping[str, object]] | None]


class CatalogHandlers:
    def __init__(self, dispatcher: Dispatcher, details: ProcessDetails | None = None) -> None:
        self.dispatcher = dispatcher
        self.server = dispatcher.server
        self.details = details

    async def _page(self, kind: ListKind, request: ApiRequest) -> dict[str, Any]:
        cursor = request.query_as(m.ListQuery).cursor
        params = {} if cursor is None else {"cursor": cursor}
        return await self.dispatcher.direct(
            LIST_METHOD[kind], params, request.identity, request.headers
        )

    async def tools(self, request: ApiRequest) -> dict[str, Any]:
        return await self._page("tools", request)

    async def tool(self, request: ApiRequest) -> dict[str, Any]:
        name = request.path_as(m.ToolPath).name
        async for tool in every(self.dispatcher, "tools", request.identity):
            if tool["name"] == name:
                return tool
        raise NotFound(f"Unknown tool: {name}")  # or one the caller may not see

    async def resources(self, request: ApiRequest) -> dict[str, Any]:
        return await self._page("resources", request)

    async def templates(self, request: ApiRequest) -> dict[str, Any]:
        return await self._page("resourceTemplates", request)

    async def prompts(self, request: ApiRequest) -> dict[str, Any]:
        return await self._page("prompts", request)

    async def servers(self, request: ApiRequest) -> dict[str, Any]:
        """Each server the caller may use something of, or that RBAC allows as a server,
        with how many of its tools, resources, templates and prompts the caller sees."""
        identity = request.identity
        registry = self.server.registry
        counts: dict[str, dict[str, int]] = {}
        for kind in LIST_KINDS:
            field = NAME_FIELD[kind]
            async for item in every(self.dispatcher, kind, identity):
                owner = registry.owner_name(kind, str(item[field]))
                if owner is not None:
                    mine = counts.setdefault(owner, dict.fromkeys(LIST_KINDS, 0))
                    mine[kind] += 1
        access = self.server.access
        providers = registry.providers
        allowed = {p.name for p in providers}
        if access is not None:
            allowed = {
                p.name
                for p in access.visible(
                    identity, "server", providers, lambda p: p.name, lambda p: p.name
                )
            }
        details = self.details(identity) if self.details is not None else None
        servers = []
        for provider in providers:
            seen = counts.get(provider.name)
            if seen is None and provider.name not in allowed:
                continue
            seen = seen or dict.fromkeys(LIST_KINDS, 0)
            status = provider.health().get("status")
            entry: dict[str, Any] = {
                "name": provider.name,
                "namespace": provider.namespace,
                "status": status if isinstance(status, str) else "unknown",
                **seen,
            }
            if details is not None and provider.name in details:
                entry["process"] = details[provider.name]
            servers.append(entry)
        return {"servers": servers}

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET",
                "/servers",
                self.servers,
                action="servers.list",
                summary="List the servers whose tools, resources or prompts you may use",
                tag="tools",
                response=m.ServerList,
                admin=False,
            ),
            _page("/tools", self.tools, "tools.list", "the tools you may call", m.ToolList),
            Route(
                "GET",
                "/tools/{name}",
                self.tool,
                action="tools.get",
                summary="Get one tool: its description and input and output schemas",
                tag="tools",
                path_model=m.ToolPath,
                response=m.Tool,
                admin=False,
            ),
            _page(
                "/resources",
                self.resources,
                "resources.list",
                "the resources you may read",
                m.ResourceList,
            ),
            _page(
                "/resources/templates",
                self.templates,
                "resources.templates.list",
                "the resource templates you may read",
                m.ResourceTemplateList,
            ),
            _page(
                "/prompts", self.prompts, "prompts.list", "the prompts you may get", m.PromptList
            ),
        ]


def _page(path: str, handler: Handler, action: str, what: str, response: type[BaseModel]) -> Route:
    return Route(
        "GET",
        path,
        handler,
        action=action,
        summary=f"List {what}, a page at a time",
        tag="tools",
        query=m.ListQuery,
        response=response,
        admin=False,
        errors=("400",),  # a cursor that is not one
    )
