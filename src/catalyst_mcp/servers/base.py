"""What every built-in server shares: declared tools, checked arguments, mapped errors.

A built-in server is a :class:`~catalyst_mcp.providers.Provider` that lives in the gateway's
process. It declares its tools as :class:`Tool` values — name, description, input and output
JSON Schemas, the four annotations clients show (``readOnlyHint``, ``destructiveHint``,
``idempotentHint``, ``openWorldHint``) and an async handler — and :class:`BuiltinServer` does
the rest the same way for every kind:

* arguments are checked against the input schema before the handler runs; a bad argument is a
  tool result with ``isError: true`` naming the argument and what is wrong (the spec's advice:
  the model can correct itself);
* a handler raises :class:`~catalyst_mcp.errors.BuiltinError` with a message for the client;
  anything else is logged with its traceback and the client gets one line saying so;
* every call runs within the server's time limit and is counted, so a retired server (hot
  reload) can wait for its calls before it stops.

Adding a kind is one module: a subclass that builds its tools (and resources, if any), plus
its options model in :mod:`catalyst_mcp.servers.config` and a line in
:data:`catalyst_mcp.servers.FACTORIES`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from jsonschema import Draft202012Validator

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import BuiltinError, InvalidParams, NotFound, ResourceNotFound
from catalyst_mcp.providers import ListKind, Provider

__all__ = ["BuiltinServer", "Json", "Result", "Tool", "obj"]

log = logging.getLogger("catalyst.servers")

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Result:
    """A tool's answer: ``structured`` (matching the output schema) and ``text`` for models
    that read text; ``extra`` content blocks follow the text (a binary file's blob)."""

    structured: Json
    text: str
    extra: Sequence[Json] = ()


Handler = Callable[[Json, CallContext], Awaitable[Result]]


@dataclass(frozen=True, slots=True)
class Tool:
    """One tool of a built-in server, declared once."""

    name: str
    title: str
    description: str
    input_schema: Json
    output_schema: Json
    handler: Handler = field(repr=False)
    read_only: bool = True
    destructive: bool = False
    idempotent: bool = True
    open_world: bool = False

    def listing(self) -> Json:
        """The ``tools/list`` entry."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "inputSchema": self.input_schema,
            "outputSchema": self.output_schema,
            "annotations": {
                "title": self.title,
                "readOnlyHint": self.read_only,
                # the spec gives destructive and idempotent meaning only for tools that write
                "destructiveHint": self.destructive and not self.read_only,
                "idempotentHint": self.idempotent,
                "openWorldHint": self.open_world,
            },
        }


def obj(properties: Json, required: Sequence[str] = (), **extra: Any) -> Json:
    """A closed JSON Schema object (no properties beyond those named)."""
    schema: Json = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    schema.update(extra)
    return schema


class BuiltinServer(Provider):
    """A built-in server: subclasses set :attr:`kind` and call :meth:`declare` with their
    tools; resources are theirs to add (:meth:`list_resources`, :meth:`read_resource`)."""

    kind: ClassVar[str] = "builtin"

    def __init__(self, name: str, namespace: str, *, timeout: float) -> None:
        super().__init__(name, namespace)
        self.timeout = timeout
        self._tools: dict[str, Tool] = {}
        self._validators: dict[str, Draft202012Validator] = {}
        self._lists: dict[ListKind, list[Json]] = {
            "tools": [],
            "resources": [],
            "resourceTemplates": [],
            "prompts": [],
        }
        self._running = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def declare(self, tools: Sequence[Tool]) -> None:
        """Serve ``tools`` (in this order)."""
        self._tools = {tool.name: tool for tool in tools}
        self._validators = {
            tool.name: Draft202012Validator(
                tool.input_schema, format_checker=Draft202012Validator.FORMAT_CHECKER
            )
            for tool in tools
        }
        self._lists["tools"] = [tool.listing() for tool in tools]

    def set_resources(self, resources: list[Json], templates: list[Json]) -> None:
        self._lists["resources"] = resources
        self._lists["resourceTemplates"] = templates

    @property
    def tools(self) -> dict[str, Tool]:
        return self._tools

    def items(self, kind: ListKind) -> list[Json]:
        return self._lists[kind]

    @property
    def capabilities(self) -> Json:
        return {"tools": {}, "resources": {}} if self._lists["resources"] else {"tools": {}}

    # ---- calls -------------------------------------------------------------------------------

    async def call(self, method: str, params: Json, ctx: CallContext) -> Json:
        if method == "tools/call":
            return await self._counted(self._call_tool(params, ctx))
        if method == "resources/read":
            uri = params.get("uri")
            if not isinstance(uri, str):
                raise InvalidParams('resources/read needs a string "uri"')
            return await self._counted(self._read(uri, ctx))
        if method == "completion/complete":
            return {"completion": {"values": [], "total": 0, "hasMore": False}}
        raise InvalidParams(f"{method} is not served by the built-in server {self.name!r}")

    async def _counted(self, work: Awaitable[Json]) -> Json:
        self._running += 1
        self._idle.clear()
        try:
            return await work
        finally:
            self._running -= 1
            if not self._running:
                self._idle.set()

    async def _call_tool(self, params: Json, ctx: CallContext) -> Json:
        name = params.get("name")
        tool = self._tools.get(name) if isinstance(name, str) else None
        if tool is None:
            raise NotFound(f"Unknown tool: {name}")
        arguments = params.get("arguments") or {}
        try:
            if not isinstance(arguments, dict):
                raise BuiltinError('"arguments" must be an object')
            self._check(tool, arguments)
            async with asyncio.timeout(self.timeout):
                result = await tool.handler(arguments, ctx)
        except BuiltinError as error:
            return failure(error.message)
        except TimeoutError:
            return failure(
                f"{self.name}: {tool.name} took longer than {self.timeout:g} s and was stopped"
            )
        except Exception:
            log.exception("built-in server %s: %s failed", self.name, tool.name)
            return failure(
                f"{self.name}: {tool.name} failed unexpectedly (the gateway log has the details)"
            )
        content: list[Json] = [{"type": "text", "text": result.text}, *result.extra]
        return {"content": content, "structuredContent": result.structured}

    def _check(self, tool: Tool, arguments: Json) -> None:
        error = next(iter(self._validators[tool.name].iter_errors(arguments)), None)
        if error is None:
            return
        where = ".".join(str(p) for p in error.absolute_path)
        if error.validator == "additionalProperties":
            allowed = sorted(tool.input_schema.get("properties", {}))
            unknown = sorted(set(arguments) - set(allowed))
            raise BuiltinError(
                f"unknown argument(s) {', '.join(unknown)}; {tool.name} takes "
                f"{', '.join(allowed) or 'none'}"
            )
        if error.validator == "required":
            missing = [n for n in error.validator_value if n not in error.instance]
            raise BuiltinError(f"missing required argument(s): {', '.join(missing)}")
        message = _explain(error.validator, error.validator_value)
        if message is None:
            cut = error.message
            message = cut if len(cut) <= 300 else cut[:300] + "..."
        raise BuiltinError(f"argument {where!r} {message}" if where else message)

    async def _read(self, uri: str, ctx: CallContext) -> Json:
        try:
            async with asyncio.timeout(self.timeout):
                return await self.read_resource(uri, ctx)
        except TimeoutError:
            raise BuiltinError(f"reading {uri} took longer than {self.timeout:g} s") from None

    async def read_resource(self, uri: str, ctx: CallContext) -> Json:
        """Serve ``resources/read`` for one of this server's URIs."""
        raise ResourceNotFound(f"Resource not found: {uri}", data={"uri": uri})

    # ---- lifecycle ---------------------------------------------------------------------------

    async def drain(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):
                await self._idle.wait()
        except TimeoutError:
            return

    def health(self) -> Json:
        return {
            "name": self.name,
            "kind": "builtin",
            "builtin": self.kind,
            "transport": "builtin",
            "status": "ready",
            "tools": len(self._lists["tools"]),
            "resources": len(self._lists["resources"]),
            "prompts": 0,
        }


def _explain(validator: Any, limit: Any) -> str | None:
    """What a failed schema keyword asks for, without echoing the (maybe huge) value."""
    words = {
        "maxLength": f"is longer than {limit} characters",
        "minLength": "must not be empty" if limit == 1 else f"is shorter than {limit} characters",
        "type": f"must be of type {limit}",
        "enum": f"must be one of {limit}",
        "minimum": f"must be at least {limit}",
        "maximum": f"must be at most {limit}",
        "maxItems": f"has more than {limit} items",
        "minItems": f"needs at least {limit} item(s)",
        "maxProperties": f"has more than {limit} entries",
        "pattern": f"must match the pattern {limit}",
    }
    return words.get(str(validator))


def failure(message: str) -> Json:
    """A tool result that reports ``message`` as an error the model can read."""
    return {"content": [{"type": "text", "text": message}], "isError": True}
