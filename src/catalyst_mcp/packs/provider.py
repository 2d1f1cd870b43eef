"""One loaded knowledge pack served as a :class:`Provider` (its namespace is the pack's name).

Lists are built once from the pack; calls check arguments against the declared parameters, run
within the pack's limits (:mod:`catalyst_mcp.packs.limits`), and go to the pack's connections:
SQL with every value bound, REST requests built structurally. A failed tool call is a tool
result with ``isError: true`` whose text says what went wrong (never a driver message, a
secret or a stack trace).
"""

from __future__ import annotations

import base64
import mimetypes
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import orjson
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from referencing.exceptions import Unresolvable

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import InvalidParams, NotFound, PackError, ResourceNotFound
from catalyst_mcp.packs.arguments import check_arguments, input_schema
from catalyst_mcp.packs.connectors.sql import QueryResult, SqlConnector, SqlStatement
from catalyst_mcp.packs.limits import Limiter
from catalyst_mcp.packs.loader import LoadedPack
from catalyst_mcp.packs.schema import (
    TEMPLATE_VARIABLE,
    ParamSpec,
    ResourceSpec,
    RestAction,
    SqlAction,
    SqlConnection,
    ToolSpec,
)
from catalyst_mcp.providers import ListKind, Provider

if TYPE_CHECKING:  # the HTTP stack is imported only by packs with a REST connection
    from catalyst_mcp.packs.connectors.rest import RestConnector, SecretLookup

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

    def __init__(self, loaded: LoadedPack, *, secrets: SecretLookup | None = None) -> None:
        pack = loaded.pack
        super().__init__(f"pack:{pack.pack}", pack.pack)
        self.pack = pack
        self.file = loaded.file
        self.folder = loaded.file.resolve().parent
        self.limiter = Limiter(pack.pack, pack.limits)
        self.connectors: dict[str, SqlConnector | RestConnector] = {}
        for name, conn in pack.connections.items():
            if isinstance(conn, SqlConnection):
                self.connectors[name] = SqlConnector(name, conn, secrets=secrets)
            else:
                from catalyst_mcp.packs.connectors.rest import RestConnector

                self.connectors[name] = RestConnector(
                    name, conn, secrets=secrets, known_secrets=loaded.env_values.get(name, ())
                )
        self.tools = {tool.name: tool for tool in pack.tools}
        self.prompts = {prompt.name: prompt for prompt in pack.prompts}
        self.resources = {r.uri: r for r in pack.resources if r.uri is not None}
        self.templates = [
            (_template_regex(r.uri_template), r) for r in pack.resources if r.uri_template
        ]
        self._statements: dict[int, SqlStatement] = {}
        self._validators: dict[str, Draft202012Validator] = {
            t.name: Draft202012Validator(t.output_schema)
            for t in pack.tools
            if t.output_schema is not None
        }
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
            return await self._call_tool(params, ctx)
        if method == "resources/read":
            async with self.limiter.slot():
                return await self._read(str(params.get("uri")), ctx)
        if method == "prompts/get":
            return self._prompt(params)
        if method == "completion/complete":
            return {"completion": {"values": [], "total": 0, "hasMore": False}}
        raise InvalidParams(f"{method} is not served by knowledge pack {self.pack.pack!r}")

    # ---- tools -------------------------------------------------------------------------------

    async def _call_tool(self, params: Json, ctx: CallContext) -> Json:
        name = params.get("name")
        tool = self.tools.get(name) if isinstance(name, str) else None
        if tool is None:
            raise NotFound(f"Unknown tool: {name}")
        try:
            values = check_arguments(tool.parameters, params.get("arguments"))
            async with self.limiter.slot():
                if tool.sql is not None:
                    result = await self._run(tool.sql, tool.parameters, values, ctx)
                    structured: Json | None = {"rows": result.rows, "truncated": result.truncated}
                    text = rows_text(result)
                else:
                    assert tool.rest is not None  # the schema requires sql or rest
                    structured, text = await self._request(tool.rest, values, ctx)
            if structured is not None:
                self._check_output(tool, structured)
            self.limiter.check_size(len(text) + (len(_dumps(structured)) if structured else 0))
        except PackError as error:
            return {"content": [{"type": "text", "text": error.message}], "isError": True}
        out: Json = {"content": [{"type": "text", "text": text}]}
        if structured is not None:
            out["structuredContent"] = structured
        return out

    async def _run(
        self,
        action: SqlAction,
        params: dict[str, ParamSpec],
        values: Json,
        ctx: CallContext | None = None,
    ) -> QueryResult:
        connector = self.connectors[action.connection]
        assert isinstance(connector, SqlConnector)  # the loader checks the connection's kind
        statement = self._statements.get(id(action))
        if statement is None:
            arrays = {name for name, spec in params.items() if spec.type == "array"}
            statement = self._statements[id(action)] = SqlStatement(action, arrays)
        return await connector.query(statement, values, action.max_rows, ctx)

    async def _request(
        self, action: RestAction, values: Json, ctx: CallContext | None
    ) -> tuple[Json | None, str]:
        """A REST action's result: structured content (None for a text body) and text."""
        connector = self.connectors[action.connection]
        assert not isinstance(connector, SqlConnector)  # the loader checks the connection's kind
        result = await connector.call(
            action, values, ctx, max_bytes=self.pack.limits.max_response_bytes
        )
        value = result.value
        if isinstance(value, str):
            return None, value
        if value is None:
            return None, f"HTTP {result.status}: no content."
        structured = value if isinstance(value, dict) else {"result": value}
        return structured, orjson.dumps(value, option=orjson.OPT_INDENT_2).decode()

    def _check_output(self, tool: ToolSpec, structured: Json) -> None:
        validator = self._validators.get(tool.name)
        if validator is None:
            return
        try:
            error = next(iter(validator.iter_errors(structured)), None)
        except (SchemaError, Unresolvable) as exc:  # a schema the load-time check let through
            raise PackError(f"the tool's output schema cannot be used: {exc}") from exc
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
            raise PackError(
                f"the result does not match the tool's output schema at {where}: "
                f"{error.message[:200]} (the pack's output_schema or projection needs fixing)"
            )

    # ---- resources ---------------------------------------------------------------------------

    async def _read(self, uri: str, ctx: CallContext) -> Json:
        spec = self.resources.get(uri)
        raw: dict[str, str] = {}
        if spec is None:
            for regex, template in self.templates:
                match = regex.match(uri)
                if match is not None:
                    spec, raw = template, match.groupdict()
                    break
        if spec is None:
            raise ResourceNotFound(f"Resource not found: {uri}", data={"uri": uri})
        values = _template_values(spec, raw)
        mime = spec.mime_type
        if spec.text is not None:
            body = spec.text
        elif spec.file is not None:
            return self._read_file(uri, spec, raw)
        elif spec.rest is not None:
            structured, body = await self._request(spec.rest, values, ctx)
            mime = mime or ("application/json" if structured is not None else "text/plain")
        else:
            assert spec.sql is not None  # the schema requires one source
            params = {v: spec.parameters.get(v, ParamSpec(type="string")) for v in spec.variables}
            result = await self._run(spec.sql, params, values, ctx)
            if not result.rows:
                raise ResourceNotFound(f"Resource not found: {uri}", data={"uri": uri})
            data: Any = {"rows": result.rows, "truncated": result.truncated}
            if spec.uri_template and len(result.rows) == 1:
                data = result.rows[0]  # one record of a templated resource: the record itself
            body = orjson.dumps(data, option=orjson.OPT_INDENT_2).decode()
            mime = mime or "application/json"
        self.limiter.check_size(len(body))
        return {"contents": [{"uri": uri, "mimeType": mime or "text/plain", "text": body}]}

    def _read_file(self, uri: str, spec: ResourceSpec, raw: dict[str, str]) -> Json:
        assert spec.file is not None
        name = TEMPLATE_VARIABLE.sub(lambda m: unquote(raw.get(m[1], "")), spec.file)
        # a variable names a file in the folder its template names, never above it
        fixed = TEMPLATE_VARIABLE.split(spec.file)[0]
        not_found = ResourceNotFound(f"Resource not found: {uri}", data={"uri": uri})
        try:
            path = (self.folder / name).resolve()
            base = (self.folder / fixed.rpartition("/")[0]).resolve() if raw else self.folder
            if not path.is_relative_to(base) or not path.is_file():
                raise not_found
            self.limiter.check_size(path.stat().st_size)
            data = path.read_bytes()
        except (OSError, ValueError) as error:  # unreadable, or a NUL byte in the name
            raise not_found from error
        mime = spec.mime_type or mimetypes.guess_type(path.name)[0] or "text/plain"
        content: Json = {"uri": uri, "mimeType": mime}
        try:
            content["text"] = data.decode("utf-8")
        except UnicodeDecodeError:
            content["blob"] = base64.b64encode(data).decode()
        return {"contents": [content]}

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

    async def drain(self, timeout: float) -> None:
        """Wait until no call of this pack is running: at most ``timeout`` s, or as long as the
        pack lets one call run if that is longer (so no call is cut off by the stop)."""
        await self.limiter.drain(max(timeout, self.pack.limits.timeout_seconds + 1.0))

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
    for name, quoted in raw.items():
        value = unquote(quoted)
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
    schema = input_schema(tool.parameters)
    if tool.sql is not None:
        for name, allowed in tool.sql.identifiers.items():
            schema["properties"][name].setdefault("enum", allowed)
    item["inputSchema"] = schema
    output = tool.output_schema or (OUTPUT_SCHEMA if tool.sql is not None else None)
    if output is not None:
        item["outputSchema"] = output
    if tool.annotations is not None:
        item["annotations"] = tool.annotations.model_dump(exclude_none=True)
    return item


def _dumps(value: Any) -> bytes:
    return orjson.dumps(value)


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
