"""The tools: search, one tool's details, and a "try it" form made from its input schema.

The form has one field per property of the input schema (a select for enums and booleans, a
number field for numbers, a text area holding JSON for objects, arrays and anything else); an
empty field is left out. Values are parsed by their declared types
(:mod:`catalyst_mcp.cli.schemaargs`, as ``catalyst connect`` parses them), or the arguments are
given whole as JSON. The call is ``POST /api/v1/tools/{name}/call``: the MCP pipeline's RBAC,
rate limits, argument validation and audit record, like any REST call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from catalyst_mcp.cli.schemaargs import ArgumentError, Parameter, parameters, parse_value
from catalyst_mcp.web.apiclient import segment
from catalyst_mcp.web.pages.common import every_tool, page_number
from catalyst_mcp.web.routing import Form, PageRequest, PageRoute, Reply, need

if TYPE_CHECKING:
    from catalyst_mcp.web.dashboard import Dashboard

__all__ = ["FIELD_PREFIX", "JSON_FIELD", "arguments_from", "routes"]

FIELD_PREFIX = "arg."
JSON_FIELD = "json_arguments"


def _matches(tool: dict[str, Any], words: list[str]) -> bool:
    text = " ".join(str(tool.get(key) or "") for key in ("name", "title", "description")).lower()
    return all(word in text for word in words)


def arguments_from(form: Form, schema: Any) -> tuple[dict[str, Any], list[str]]:
    """The arguments a try-it form gives, and what is wrong with its fields."""
    raw = form.text(JSON_FIELD)
    if raw is not None:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            return {}, [f"the JSON arguments are not JSON: {exc}"]
        if not isinstance(value, dict):
            return {}, ['the JSON arguments must be an object: {"name": value, ...}']
        return value, []
    arguments: dict[str, Any] = {}
    problems: list[str] = []
    for parameter in parameters(schema):
        text = form.get(FIELD_PREFIX + parameter.name)
        if text == "":
            continue
        try:
            arguments[parameter.name] = parse_value(parameter, text)
        except ArgumentError as exc:
            problems.append(str(exc))
    return arguments, problems


def widget(parameter: Parameter) -> str:
    """How the form asks for a parameter: select, boolean, integer, number, text or json."""
    types = parameter.types
    if parameter.enum is not None:
        return "select"
    if types == ["boolean"]:
        return "boolean"
    if types == ["integer"]:
        return "integer"
    if types == ["number"]:
        return "number"
    if types == ["string"]:
        return "text"
    return "json"


class ToolPages:
    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard
        self.render = dashboard.renderer
        self.size = dashboard.settings.ui.page_size

    async def list(self, request: PageRequest) -> Reply:
        q = request.query.get("q", "").strip()
        words = q.lower().split()
        found = [tool async for tool in every_tool(request) if _matches(tool, words)]
        page = page_number(request)
        pages = max(1, -(-len(found) // self.size))
        page = min(page, pages)
        shown = found[(page - 1) * self.size : page * self.size]
        return self.render.page(
            request,
            "tools.html",
            current="tools",
            tools=shown,
            total=len(found),
            q=q,
            page=page,
            pages=pages,
        )

    async def show(self, request: PageRequest) -> Reply:
        name = request.params["name"]
        tool = need(await request.api.get(f"/tools/{segment(name)}"))
        params = parameters(tool.get("inputSchema"))
        return self.render.page(
            request,
            "tool.html",
            current="tools",
            tool=tool,
            parameters=[(p, widget(p)) for p in params],
            prefix=FIELD_PREFIX,
            json_field=JSON_FIELD,
        )

    async def call(self, request: PageRequest) -> Reply:
        name = request.params["name"]
        tool = need(await request.api.get(f"/tools/{segment(name)}"))
        arguments, problems = arguments_from(await request.form(), tool.get("inputSchema"))
        if problems:
            return self.render.fragment(
                request, "result.html", status=422, problems=problems, answer=None, name=name
            )
        answer = await request.api.post(f"/tools/{segment(name)}/call", arguments)
        return self.render.fragment(
            request,
            "result.html",
            status=answer.status,
            problems=[],
            answer=answer,
            name=name,
            arguments=arguments,
        )


def routes(dashboard: Dashboard) -> list[PageRoute]:
    pages = ToolPages(dashboard)
    return [
        PageRoute("GET", "/tools", pages.list),
        PageRoute("GET", "/tools/{name}", pages.show),
        PageRoute("POST", "/tools/{name}/call", pages.call),
    ]
