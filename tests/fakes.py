"""In-process stand-ins: a fake Provider, and builders for modern and legacy MCP requests."""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import Awaitable, Callable
from typing import Any

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import NotFound, ResourceNotFound, UpstreamUnavailable
from catalyst_mcp.protocol.versions import (
    CLIENT_CAPS_KEY,
    CLIENT_INFO_KEY,
    LOG_LEVEL_KEY,
    PROTOCOL_VERSION_KEY,
    log_level_allows,
)
from catalyst_mcp.providers import ListKind, Provider

MODERN = "2026-07-28"
LEGACY = "2025-11-25"

Handler = Callable[[str, dict[str, Any], CallContext], Awaitable[dict[str, Any]]]


def tool(name: str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "inputSchema": {"type": "object"}, **extra}


def text_result(text: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": text}]}


class FakeProvider(Provider):
    """A provider whose lists are plain data and whose calls are served in-process.

    Built-in tools: ``echo`` (returns ``text``), ``link`` (a resource link and an embedded
    resource), ``progress`` (two progress notifications), ``log`` (one log message per level),
    ``ask`` (asks the client for elicitation through ``ctx.ask``), ``fail`` (the server is
    down), ``boom`` (a bug: raises RuntimeError), ``wait`` (blocks until ``release`` is set).
    Every call is recorded in ``calls``.
    """

    def __init__(
        self,
        name: str = "fake",
        namespace: str | None = None,
        *,
        tools: list[dict[str, Any]] | None = None,
        resources: list[dict[str, Any]] | None = None,
        templates: list[dict[str, Any]] | None = None,
        prompts: list[dict[str, Any]] | None = None,
        capabilities: dict[str, Any] | None = None,
        may_ask: bool = False,
        handler: Handler | None = None,
    ) -> None:
        super().__init__(name, name if namespace is None else namespace)
        default_tools = [
            tool(n) for n in ("echo", "link", "progress", "log", "ask", "fail", "boom", "wait")
        ]
        self.lists: dict[ListKind, list[dict[str, Any]]] = {
            "tools": default_tools if tools is None else tools,
            "resources": (
                [{"uri": "mem://a", "name": "a", "mimeType": "text/plain"}]
                if resources is None
                else resources
            ),
            "resourceTemplates": (
                [{"uriTemplate": "mem://t/{x}", "name": "t"}] if templates is None else templates
            ),
            "prompts": [{"name": "hello"}] if prompts is None else prompts,
        }
        self._capabilities = (
            {"tools": {}, "resources": {}, "prompts": {}, "completions": {}}
            if capabilities is None
            else capabilities
        )
        self._may_ask = may_ask
        self.handler = handler
        self.calls: list[tuple[str, dict[str, Any], CallContext]] = []
        self.release = asyncio.Event()
        self.entered = asyncio.Event()
        self.cancelled = asyncio.Event()
        self.status = "ready"
        self.started = False
        self.stopped = False
        self.subscribed: list[str] = []
        self.unsubscribed: list[str] = []

    # ---- Provider ----------------------------------------------------------------------------

    def items(self, kind: ListKind) -> list[dict[str, Any]]:
        return self.lists[kind]

    def set_items(self, kind: ListKind, items: list[dict[str, Any]]) -> None:
        self.lists[kind] = items
        self.on_change(self, {kind})

    @property
    def capabilities(self) -> dict[str, Any]:
        return self._capabilities

    @property
    def may_ask(self) -> bool:
        return self._may_ask

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def subscribe(self, uri: str) -> None:
        self.subscribed.append(uri)

    async def unsubscribe(self, uri: str) -> None:
        self.unsubscribed.append(uri)

    def health(self) -> dict[str, Any]:
        return {"name": self.name, "kind": "fake", "status": self.status}

    async def call(self, method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        self.calls.append((method, params, ctx))
        if self.handler is not None:
            return await self.handler(method, params, ctx)
        if method == "tools/call":
            return await self._tool(params, ctx)
        if method == "resources/read":
            uri = params["uri"]
            known = {r["uri"] for r in self.lists["resources"]}
            if uri not in known and not uri.startswith("mem://t/"):
                raise ResourceNotFound(f"no resource {uri}")
            return {"contents": [{"uri": uri, "mimeType": "text/plain", "text": f"text of {uri}"}]}
        if method == "prompts/get":
            if params["name"] not in {p["name"] for p in self.lists["prompts"]}:
                raise NotFound(f"Unknown prompt: {params['name']}")
            return {
                "messages": [
                    {"role": "user", "content": {"type": "text", "text": "hello there"}},
                    {
                        "role": "user",
                        "content": {"type": "resource_link", "uri": "mem://a", "name": "a"},
                    },
                ]
            }
        if method == "completion/complete":
            return {"completion": {"values": ["one", "two"], "hasMore": False}}
        raise NotFound(f"unexpected method {method}")

    async def _tool(self, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        name = params["name"]
        args = params.get("arguments") or {}
        if name == "echo":
            return text_result(str(args.get("text", "")))
        if name == "link":
            return {
                "content": [
                    {"type": "resource_link", "uri": "mem://a", "name": "a"},
                    {"type": "resource", "resource": {"uri": "mem://b", "text": "b"}},
                    {"type": "text", "text": "plain"},
                ]
            }
        if name == "progress":
            for i in (1, 2):
                if ctx.progress_token is not None:
                    await ctx.emit(
                        {
                            "jsonrpc": "2.0",
                            "method": "notifications/progress",
                            "params": {"progressToken": ctx.progress_token, "progress": i},
                        }
                    )
            return text_result("progressed")
        if name == "log":
            for level in ("debug", "info", "error"):
                if log_level_allows(ctx.log_level, level):
                    await ctx.emit(
                        {
                            "jsonrpc": "2.0",
                            "method": "notifications/message",
                            "params": {"level": level, "data": f"a {level} message"},
                        }
                    )
            return text_result("logged")
        if name == "ask":
            if ctx.ask is None:
                return {**text_result("nobody to ask"), "isError": True}
            answer = await ctx.ask(
                "elicitation/create",
                {"mode": "form", "message": "name?", "requestedSchema": {"type": "object"}},
            )
            return text_result(f"answer: {answer.get('content')}")
        if name == "fail":
            raise UpstreamUnavailable(self.name, f"{self.name} is down")
        if name == "boom":
            raise RuntimeError("secret internals /etc/passwd")
        if name == "wait":
            self.entered.set()
            try:
                await self.release.wait()
            except asyncio.CancelledError:
                self.cancelled.set()
                raise
            return text_result("released")
        raise NotFound(f"Unknown tool: {name}")


# ---- request builders ----------------------------------------------------------------------

_ids = itertools.count(1)


def meta(
    version: str = MODERN,
    capabilities: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    out: dict[str, Any] = {
        PROTOCOL_VERSION_KEY: version,
        CLIENT_CAPS_KEY: {} if capabilities is None else capabilities,
        CLIENT_INFO_KEY: {"name": "tests", "version": "0"},
    }
    if "log_level" in extra:
        out[LOG_LEVEL_KEY] = extra.pop("log_level")
    out.update(extra)
    return out


def modern_request(
    method: str,
    params: dict[str, Any] | None = None,
    *,
    request_id: int | str | None = None,
    version: str = MODERN,
    capabilities: dict[str, Any] | None = None,
    **meta_extra: Any,
) -> dict[str, Any]:
    body_params = dict(params or {})
    body_params["_meta"] = meta(version, capabilities, **meta_extra)
    return {
        "jsonrpc": "2.0",
        "id": next(_ids) if request_id is None else request_id,
        "method": method,
        "params": body_params,
    }


def encode_header(value: str) -> str:
    return "=?base64?" + base64.b64encode(value.encode()).decode() + "?="


def modern_headers(message: dict[str, Any], **overrides: str | None) -> dict[str, str]:
    """The headers a correct modern client sends with ``message``; override or drop (None)."""
    params = message.get("params") or {}
    found = params.get("_meta")
    version = found.get(PROTOCOL_VERSION_KEY, MODERN) if isinstance(found, dict) else MODERN
    headers = {
        "content-type": "application/json",
        "accept": "application/json, text/event-stream",
        "mcp-protocol-version": version,
        "mcp-method": message.get("method", ""),
    }
    method = message.get("method")
    if method in ("tools/call", "prompts/get"):
        headers["mcp-name"] = params.get("name", "")
    elif method == "resources/read":
        headers["mcp-name"] = params.get("uri", "")
    for key, value in overrides.items():
        name = key.replace("_", "-").lower()
        if value is None:
            headers.pop(name, None)
        else:
            headers[name] = value
    return headers


JSON_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}


def legacy_request(
    method: str, params: dict[str, Any] | None = None, *, request_id: int | str | None = None
) -> dict[str, Any]:
    message: dict[str, Any] = {
        "jsonrpc": "2.0",
        "id": next(_ids) if request_id is None else request_id,
        "method": method,
    }
    if params is not None:
        message["params"] = params
    return message


def initialize_request(
    version: str = LEGACY, capabilities: dict[str, Any] | None = None
) -> dict[str, Any]:
    return legacy_request(
        "initialize",
        {
            "protocolVersion": version,
            "capabilities": {} if capabilities is None else capabilities,
            "clientInfo": {"name": "tests", "version": "0"},
        },
    )
