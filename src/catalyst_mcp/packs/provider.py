"""One loaded knowledge pack served as a :class:`Provider` (its namespace is the pack's name).

Lists are built once from the pack; calls check arguments against the declared parameters and
run the pack's SQL with every value bound. A failed tool call is a tool result with
``isError: true`` whose text says what went wrong (never a driver message or a stack trace).
"""

from __future__ import annotations

import re
from typing import Any

import orjson

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import InvalidParams, NotFound, PackError, ResourceNotFound
from catalyst_mcp.packs.arguments import check_arguments, input_schema
from catalyst_mcp.packs.connectors.sql import QueryResult, SqlConnector
from catalyst_mcp.packs.loader import LoadedPack
from catalyst_mcp.packs.schema import TEMPLATE_VARIABLE, ResourceSpec, SqlAction, ToolSpec
from catalyst_mcp.providers import ListKind, Provider

__all__ = ["OUTPUT_SCHEMA", "PackProvider", "rows_text"]

Json = dict[str, Any]
OUTPUT_SCHEMA: Json = {
    "type": "object",
    "properties": {
        "rows": {"type": "array", "items": {"type": "object"}},
        "truncated": {"type": "boolean"},
    },
    "required": ["rows", "truncated"],
}
MAX_TEXT_ROWS = 50


class PackProvider(Provider):
    """Serves one pack's tools, resources, resource templates and prompts."""

    def __init__(self, loaded: LoadedPack) -> None:
        pack = loaded.pack
        super().__init__(f"pack:{pack.pack}", pack.pack)
        self.pack = pack
        self.file = loaded.file
        self.connectors = {name: SqlConnector(name, c) for name, c in pack.connections.items()}
        self.tools = {tool.name: tool for tool in pack.tools}
        self.prompts = {prompt.name: prompt for prompt in pack.prompts}
        self.resources = {r.uri: r for r in pack.resources if r.uri is not None}
        self.templates = [
            (_template_regex(r.uri_template), r) for r in pack.resources if r.uri_template
        ]
        self._lists: dict[ListKind, list[Json]] = {
            "tools": [_tool_listing(t) for t in pack.tools],
            "resources": [_resource_listing(r) for r in pack.resources if r.uri is not None],
            "resourceTemplates": [
                _resource_listing(r) for r in pack.resources if r.uri_template is not None
            ],
            "prompts": [_prompt_listing(p) for p in pack.prompts],
        }

    def items(self, kind: ListKind) -> list[Json]:
        return self._lists[kind]

    async def call(self, method: str, params: Json, ctx: CallContext) -> Json:
        if method == "tools/call":
            return await self._call_tool(params)
        if method == "resources/read":
            return await self._read(str(params.get("uri")))
        if method == "prompts/get":
            return self._prompt(params)
        if method == "completion/complete":
            return {"completion": {"values": [], "total": 0, "hasMore": False}}
        raise InvalidParams(f"{method} is not served by knowledge pack {self.pack.pack!r}")

    # ---- tools -------------------------------------------------------------------------------

    async def _call_tool(self, params: Json) -> Json:
        name = params.get("name")
        tool = self.tools.get(name) if isinstance(name, str) else None
        if tool is None:
            raise NotFound(f"Unknown tool: {name}")
        try:
            values = check_arguments(tool.parameters, params.get("arguments"))
            result = await self._run(tool.sql, values)
        except PackError as error:
            return {"content": [{"type": "text", "text": error.message}], "isError": True}
        structured = {"rows": result.rows, "truncated": result.truncated}
        return {
            "content": [{"type": "text", "text": rows_text(result)}],
            "structuredContent": structured,
        }

    async def _run(self, action: SqlAction, values: Json) -> QueryResult:
        connector = self.connectors[action.connection]
        return await connector.query(action.statement, values, action.max_rows)

    # ---- resources ---------------------------------------------------------------------------

    async def _read(self, uri: str) -> Json:
        spec = self.resources.get(uri)
        values: Json = {}
        if spec is None:
            for regex, template in self.templates:
                match = regex.match(uri)
                if match is not None:
                    spec, values = template, _template_values(template, match.groupdict())
                    break
        if spec is None:
            raise ResourceNotFound(f"Resource not found: {uri}", data={"uri": uri})
        if spec.text is not None:
            body = spec.text
        else:
            assert spec.sql is not None  # the schema requires text or sql
            result = await self._run(spec.sql, values)
            if not result.rows:
                raise ResourceNotFound(f"Resource not found: {uri}", data={"uri": uri})
            data: Any = {"rows": result.rows, "truncated": result.truncated}
            if spec.uri_template and len(result.rows) == 1:
                data = result.rows[0]  # one record of a templated resource: the record itself
            body = orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()
        mime = spec.mime_type or ("text/plain" if spec.text is not None else "application/json")
        return {"contents": [{"uri": uri, "mimeType": mime, "text": body}]}

    # ---- prompts -----------------------------------------------------------------------------

    def _prompt(self, params: Json) -> Json:
        name = params.get("name")
        prompt = self.prompts.get(name) if isinstance(name, str) else None
        if prompt is None:
            raise NotFound(f"Unknown prompt: {name}")
        args = params.get("arguments") or {}
        if not isinstance(args, dict):
            raise InvalidParams("prompt arguments must be an object")
        missing = [a.name for a in prompt.arguments if a.required and not args.get(a.name)]
        if missing:
            raise InvalidParams(f"missing required argument(s): {', '.join(missing)}")
        values = {a.name: str(args.get(a.name, "")) for a in prompt.arguments}
        messages = [
            {
                "role": m.role,
                "content": {
                    "type": "text",
                    "text": TEMPLATE_VARIABLE.sub(lambda v: values.get(v[1], v[0]), m.text),
                },
            }
            for m in prompt.messages
        ]
        result: Json = {"messages": messages}
        if prompt.description:
            result["description"] = prompt.description
        return result

    # ---- lifecycle ---------------------------------------------------------------------------

    @property
    def capabilities(self) -> Json:
        return {"tools": {}, "resources": {}, "prompts": {}}

    @property
    def instructions(self) -> str | None:
        return self.pack.description

    async def stop(self) -> None:
        for connector in self.connectors.values():
            await connector.close()

    def health(self) -> Json:
        return {
            "name": self.name,
            "kind": "pack",
            "status": "ready",
            "file": str(self.file),
            "tools": len(self.pack.tools),
            "resources": len(self.pack.resources),
            "prompts": len(self.pack.prompts),
        }


def rows_text(result: QueryResult) -> str:
    """Rows as readable text: a count, then one ``key: value, ...`` line per row."""
    if not result.rows:
        return "No rows."
    count = f"{len(result.rows)} row{'s' if len(result.rows) != 1 else ''}"
    if result.truncated:
        count += " (more rows exist: the result was truncated)"
    lines = [count + ":"]
    for row in result.rows[:MAX_TEXT_ROWS]:
        lines.append(", ".join(f"{k}: {v}" for k, v in row.items()))
    if len(result.rows) > MAX_TEXT_ROWS:
        lines.append(f"... {len(result.rows) - MAX_TEXT_ROWS} more in structuredContent")
    return "\n".join(lines)


def _template_regex(template: str) -> re.Pattern[str]:
    parts = TEMPLATE_VARIABLE.split(template)
    pattern = "".join(
        f"(?P<{part}>[^/?#]+)" if i % 2 else re.escape(part) for i, part in enumerate(parts)
    )
    return re.compile(f"^{pattern}$")


def _template_values(spec: ResourceSpec, raw: dict[str, str]) -> Json:
    values: Json = {}
    for name, value in raw.items():
        kind = spec.parameters[name].type if name in spec.parameters else "string"
        try:
            if kind == "integer":
                values[name] = int(value)
            elif kind == "number":
                values[name] = float(value)
            elif kind == "boolean":
                values[name] = value.lower() == "true"
            else:
                values[name] = value
        except ValueError as error:
            raise InvalidParams(f"URI variable '{name}' must be a {kind}") from error
    return values


def _tool_listing(tool: ToolSpec) -> Json:
    item: Json = {"name": tool.name}
    if tool.title:
        item["title"] = tool.title
    item["description"] = tool.description
    item["inputSchema"] = input_schema(tool.parameters)
    item["outputSchema"] = OUTPUT_SCHEMA
    if tool.annotations is not None:
        item["annotations"] = tool.annotations.model_dump(exclude_none=True)
    return item


def _resource_listing(spec: ResourceSpec) -> Json:
    item: Json = {"uri": spec.uri} if spec.uri is not None else {"uriTemplate": spec.uri_template}
    item["name"] = spec.name
    if spec.description:
        item["description"] = spec.description
    if spec.mime_type:
        item["mimeType"] = spec.mime_type
    return item


def _prompt_listing(prompt: Any) -> Json:
    item: Json = {"name": prompt.name}
    if prompt.title:
        item["title"] = prompt.title
    if prompt.description:
        item["description"] = prompt.description
    if prompt.arguments:
        item["arguments"] = [a.model_dump(exclude_none=True) for a in prompt.arguments]
    return item
