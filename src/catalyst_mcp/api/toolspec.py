"""``GET /tools/openapi.json``: the caller's tools as an OpenAPI 3.1 document, one operation each.

Made for clients that turn OpenAPI operations into functions a model can call: Open WebUI's
OpenAPI tool servers, LibreChat actions, or any OpenAPI client generator. What they need
shaped the document (it is the way the ``mcpo`` proxy exposes MCP tools, with a path per tool):

* one literal path per tool, ``POST /api/v1/tools/<name>/call``, no path parameters: the
  operation's whole input is its JSON body, which is the tool's arguments;
* ``operationId`` is the function name those clients give the model: the tool's name when it
  is made of ``A-Z a-z 0-9 _ -`` and at most 64 characters (OpenAI's rule for function names),
  else those characters of it and a short hash of the whole name (stable, and unique);
* ``summary`` is the tool's title (else the first line of its description), ``description``
  its description (Open WebUI shows the description, LibreChat the summary);
* the request body is the tool's ``inputSchema``, and a 200 answer's ``structuredContent`` its
  ``outputSchema`` when it has one. Their local ``$ref`` s are inlined (clients resolve only
  ``#/components/...`` references, and some only inside ``properties`` and ``items``); a
  schema that refers to itself keeps its references, rebased into ``components.schemas``;
* ``servers`` names the gateway (``auth.resource_url``'s origin when set, else the origin the
  request came to), since LibreChat calls the operations there.

Only the tools the caller may call are in it (the MCP ``tools/list`` of the same caller); each
tool's part is built once and rebuilt when the registry's tools change.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from pydantic.json_schema import models_json_schema

import catalyst_mcp
from catalyst_mcp.api import toolmodels as m
from catalyst_mcp.api.calls import CALL_ERRORS
from catalyst_mcp.api.catalog import every
from catalyst_mcp.api.openapi import (
    ERROR_RESPONSES,
    OPENAPI_VERSION,
    REF,
    SECURITY_SCHEMES,
    error_components,
)
from catalyst_mcp.api.router import ApiRequest, Route

if TYPE_CHECKING:
    from catalyst_mcp.protocol.dispatch import Dispatcher
    from catalyst_mcp.providers import ListKind

__all__ = ["ToolDocument", "inline_refs", "operation_id"]

log = logging.getLogger("catalyst.api")

Json = dict[str, Any]
MAX_OPERATION_ID = 64
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
MAX_SUMMARY = 120
MAX_INLINE_DEPTH = 32  # nested references followed when inlining, at most
TITLE = "Catalyst tools"
DESCRIPTION = (
    "The tools of a Catalyst MCP gateway that you may call, one operation each: POST the "
    "tool's arguments as a JSON object, get its result. A tool error is a 200 with isError "
    "true and the error in text; the gateway's refusals and failures are HTTP errors."
)


def operation_id(name: str) -> str:
    """A function name for tool ``name``: itself when it is one, else a stable, unique one."""
    clean = _UNSAFE.sub("_", name)
    if clean == name and len(name) <= MAX_OPERATION_ID:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{clean[: MAX_OPERATION_ID - 9]}_{digest}"


class _Recursive(Exception):
    """The schema refers to itself: it cannot be inlined."""


def inline_refs(schema: Json) -> Json | None:
    """A copy of ``schema`` with every local ``$ref`` replaced by what it points at and the
    definitions dropped; None when it refers to itself (or nests references too deeply).
    References it cannot resolve, and non-local ones, are left as they are."""
    try:
        inlined = _inline(schema, schema, ())
    except _Recursive:
        return None
    if isinstance(inlined, dict):
        for key in ("$defs", "definitions", "$schema", "$id"):
            inlined.pop(key, None)
        return inlined
    return None


def _inline(node: Any, root: Json, stack: tuple[str, ...]) -> Any:
    if isinstance(node, list):
        return [_inline(item, root, stack) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        if ref in stack or len(stack) >= MAX_INLINE_DEPTH:
            raise _Recursive
        target = _resolve(root, ref)
        if target is not None:
            resolved = _inline(target, root, (*stack, ref))
            rest = {k: _inline(v, root, stack) for k, v in node.items() if k != "$ref"}
            if not rest:
                return resolved
            if isinstance(resolved, dict) and set(rest) <= {"description", "title", "default"}:
                return {**resolved, **rest}  # annotations next to a reference
            return {"allOf": [resolved], **rest}
    return {k: _inline(v, root, stack) for k, v in node.items()}


def _resolve(root: Json, ref: str) -> Any:
    node: Any = root
    for part in ref[1:].split("/")[1:] if ref != "#" else ():
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def _rebase(node: Any, base: str) -> Any:
    """``node`` with its local ``$ref`` s pointing under ``base`` (where it is stored)."""
    if isinstance(node, list):
        return [_rebase(item, base) for item in node]
    if not isinstance(node, dict):
        return node
    return {
        k: (
            base + v[1:]
            if k == "$ref" and isinstance(v, str) and v.startswith("#")
            else _rebase(v, base)
        )
        for k, v in node.items()
    }


def _schema(schema: Any, key: str, components: Json) -> Json:
    """The schema to put in the document: inlined, or stored in ``components`` as ``key`` with
    its references rebased there (a schema that refers to itself)."""
    if not isinstance(schema, dict):
        return {"type": "object"}
    inlined = inline_refs(schema)
    if inlined is not None:
        return inlined
    base = REF.format(model=key)
    stored = _rebase(copy.deepcopy(schema), base)
    stored.pop("$schema", None)
    stored.pop("$id", None)
    components[key] = stored
    return {"$ref": base}


def _summary(tool: Json) -> str:
    title = tool.get("title")
    if isinstance(title, str) and title.strip():
        return title.strip()[:MAX_SUMMARY]
    description = tool.get("description")
    if isinstance(description, str) and description.strip():
        return description.strip().splitlines()[0][:MAX_SUMMARY]
    return str(tool["name"])


class _Part:
    """What one tool adds to the document: its path, its operation, its component schemas."""

    __slots__ = ("components", "operation", "operation_id", "path", "tool")

    def __init__(self, tool: Json, prefix: str, server: str | None) -> None:
        name = str(tool["name"])
        self.tool = tool
        self.operation_id = operation_id(name)
        self.path = f"{prefix}/tools/{quote(name, safe='')}/call"
        self.components: Json = {}
        body = _schema(tool.get("inputSchema"), f"{self.operation_id}_input", self.components)
        result: Json = {"$ref": REF.format(model="ToolCallResult")}
        output = tool.get("outputSchema")
        if isinstance(output, dict):
            structured = _schema(output, f"{self.operation_id}_output", self.components)
            result = {"allOf": [result, {"properties": {"structuredContent": structured}}]}
        self.operation: Json = {
            "operationId": self.operation_id,
            "summary": _summary(tool),
            "tags": [server or "tools"],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": body}},
            },
            "responses": {
                "200": {
                    "description": "The tool's result (isError true: a tool error, in text).",
                    "content": {"application/json": {"schema": result}},
                },
                **{
                    code: {"$ref": f"#/components/responses/{ERROR_RESPONSES[code][0]}"}
                    for code in sorted({"401", "403", *CALL_ERRORS})
                },
            },
        }
        description = tool.get("description")
        if isinstance(description, str) and description:
            self.operation["description"] = description
        if name != self.operation_id:
            self.operation["x-mcp-tool"] = name


class ToolDocument:
    """Builds the per-tool document for each caller from parts kept per tool."""

    def __init__(self, dispatcher: Dispatcher, prefix: str, public_url: str | None = None) -> None:
        self.dispatcher = dispatcher
        self.registry = dispatcher.server.registry
        self.prefix = prefix
        self.public_url = public_url
        self._parts: dict[str, _Part] = {}
        self._base_schemas, self._responses = error_components()
        _, result = models_json_schema([(m.ToolCallResult, "serialization")], ref_template=REF)
        self._base_schemas.update(result.get("$defs", {}))
        self.registry.change_listeners.append(self._changed)

    def _changed(self, kinds: set[ListKind]) -> None:
        if "tools" in kinds:
            self._parts = {}

    def _part(self, tool: Json) -> _Part:
        name = str(tool["name"])
        part = self._parts.get(name)
        if part is None or part.tool is not tool:
            owner = self.registry.owner_name("tools", name)
            part = self._parts[name] = _Part(tool, self.prefix, owner)
        return part

    def origin(self, request: ApiRequest) -> str:
        """Where clients reach the gateway: ``auth.resource_url``'s origin, else the request's."""
        if self.public_url:
            split = urlsplit(self.public_url)
            return f"{split.scheme}://{split.netloc}"
        host = request.headers.get(b"host", b"").decode("latin-1")
        return f"{request.scheme}://{host}" if host else "/"

    def document(self, tools: list[Json], origin: str) -> Json:
        paths: Json = {}
        schemas = dict(self._base_schemas)
        seen: set[str] = set()
        for tool in tools:
            part = self._part(tool)
            if part.operation_id in seen:  # two names with one function name: keep the first
                log.warning(
                    "tool %r left out of the OpenAPI document: its operationId is taken",
                    tool["name"],
                )
                continue
            seen.add(part.operation_id)
            paths[part.path] = {"post": part.operation}
            schemas.update(part.components)
        return {
            "openapi": OPENAPI_VERSION,
            "info": {
                "title": TITLE,
                "version": catalyst_mcp.__version__,
                "description": DESCRIPTION,
            },
            "servers": [{"url": origin}],
            "security": [{"bearerAuth": []}],
            "paths": paths,
            "components": {
                "schemas": dict(sorted(schemas.items())),
                "responses": self._responses,
                "securitySchemes": SECURITY_SCHEMES,
            },
        }

    async def get(self, request: ApiRequest) -> Json:
        tools = [tool async for tool in every(self.dispatcher, "tools", request.identity)]
        return self.document(tools, self.origin(request))

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET",
                "/tools/openapi.json",
                self.get,
                action="tools.openapi",
                summary="Your tools as an OpenAPI document, one operation each (for Open WebUI, "
                "LibreChat actions and OpenAPI clients)",
                tag="tools",
                admin=False,
            )
        ]
