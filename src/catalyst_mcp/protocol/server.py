"""The MCP methods the gateway serves, shared by every transport and both eras.

Transports decide the era and build the :class:`CallContext`; this module routes a request to the
registry and its providers and shapes the result for the caller's era (``resultType``,
``ttlMs``/``cacheScope`` and ``serverInfo`` for modern clients; none of them for legacy ones).
Legacy-only session methods (``initialize``, ``ping``, ``logging/setLevel``, subscriptions) live
with the legacy session in :mod:`catalyst_mcp.protocol.legacy`.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from catalyst_mcp import __version__
from catalyst_mcp.context import CallContext, Identity
from catalyst_mcp.errors import (
    AccessError,
    CatalystError,
    Forbidden,
    InvalidParams,
    MethodNotFound,
    NotFound,
    UpstreamError,
    UpstreamRejected,
)
from catalyst_mcp.orchestration.workflows.tasks import (
    LEGACY_TASKS_CAPABILITY,
    TASK_METHODS,
    TASKS_EXTENSION,
    TaskRouter,
)
from catalyst_mcp.protocol.arguments import ArgumentCheck
from catalyst_mcp.protocol.mrtr import InputBridge, satisfy_for_legacy
from catalyst_mcp.protocol.versions import LATEST_LEGACY, SERVER_INFO_KEY, SUPPORTED_VERSIONS
from catalyst_mcp.providers import ListKind, Provider
from catalyst_mcp.registry import Registry

if TYPE_CHECKING:
    from catalyst_mcp.observability.metrics import Metrics
    from catalyst_mcp.orchestration.cache.service import ResultCache
    from catalyst_mcp.orchestration.events.sources import CallEvents
    from catalyst_mcp.orchestration.rules.pipeline import RulesHook
    from catalyst_mcp.security.access import Access
    from catalyst_mcp.security.rbac import Kind

__all__ = ["SERVER_INFO", "McpServer", "rest_context"]

log = logging.getLogger("catalyst.protocol")

SERVER_INFO = {"name": "catalyst", "title": "Catalyst MCP gateway", "version": __version__}
LIST_METHODS: dict[str, ListKind] = {
    "tools/list": "tools",
    "resources/list": "resources",
    "resources/templates/list": "resourceTemplates",
    "prompts/list": "prompts",
}
CACHEABLE = frozenset({*LIST_METHODS, "resources/read", "server/discover"})
LEGACY_STRIP = ("resultType", "ttlMs", "cacheScope")
PAGE_SIZE = 1000
TASKS_SINCE = "2025-11-25"  # the first legacy version with (experimental) tasks
# methods that act on one object: checked by RBAC and rate limits, and audited
# (method -> the object's kind and the param naming it)
GUARDED: dict[str, tuple[Kind, str]] = {
    "tools/call": ("tool", "name"),
    "prompts/get": ("prompt", "name"),
    "resources/read": ("resource", "uri"),
    "completion/complete": ("prompt", "ref"),  # or a resource: the ref says which (no limits)
}
MAX_NAME = 2048  # characters of a tool or prompt name, or a resource URI, a client may send
LIST_KINDS: dict[ListKind, tuple[Kind, str]] = {
    "tools": ("tool", "name"),
    "prompts": ("prompt", "name"),
    "resources": ("resource", "uri"),
    "resourceTemplates": ("resource", "uriTemplate"),
}

Handler = Callable[["McpServer", dict[str, Any], CallContext], Awaitable[dict[str, Any]]]


class McpServer:
    """Serves MCP requests from any client over the registry's providers."""

    def __init__(
        self, registry: Registry, instructions: str | None = None, access: Access | None = None
    ) -> None:
        self.registry = registry
        self.instructions = instructions
        # authorization, rate limits and audit (None: everyone may do everything, unrecorded)
        self.access = access
        self.metrics: Metrics | None = None  # tool calls and calls in flight (None: not counted)
        self.events: CallEvents | None = None  # call.finished / call.refused (None: no bus)
        self.in_flight: dict[str, int] = {}  # calls waiting for each provider (when counted)
        self.bridge = InputBridge()
        self.arguments = ArgumentCheck(registry)  # for REST callers (ctx.channel "rest")
        self.rules: RulesHook | None = None  # policy rules around tools/call (None: none)
        self.cache: ResultCache | None = None  # tools/call results served again (None: none)
        self.tasks = TaskRouter()  # MCP tasks: which provider made each task, for whom
        self._handlers: dict[str, Handler] = {
            "tools/list": McpServer._list,
            "resources/list": McpServer._list,
            "resources/templates/list": McpServer._list,
            "prompts/list": McpServer._list,
            "tools/call": McpServer._tools_call,
            "prompts/get": McpServer._prompts_get,
            "resources/read": McpServer._resources_read,
            "completion/complete": McpServer._complete,
            "server/discover": McpServer._discover,
            **dict.fromkeys(TASK_METHODS, McpServer._task_method),
        }

    def knows(self, method: str) -> bool:
        return method in self._handlers

    @property
    def capabilities(self) -> dict[str, Any]:
        return {
            "tools": {"listChanged": True},
            "resources": {"subscribe": True, "listChanged": True},
            "prompts": {"listChanged": True},
            "completions": {},
            "logging": {},
        }

    async def handle(self, method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        """Serve one request; return the result shaped for ``ctx.era`` or raise CatalystError."""
        handler = self._handlers.get(method)
        if handler is None or (method == "server/discover" and ctx.era != "modern"):
            raise MethodNotFound(f"Method not found: {method}")
        if self.access is not None and method in GUARDED:
            result = await self._guarded(self.access, handler, method, params, ctx)
        else:
            result = dict(await handler(self, params, ctx))  # shaped below: not the original
        if ctx.era == "modern":
            result.setdefault("resultType", "complete")
            if method in CACHEABLE and result["resultType"] == "complete":
                result.setdefault("ttlMs", 0)
                result.setdefault("cacheScope", "private")
            meta = result.get("_meta")
            result["_meta"] = (
                {SERVER_INFO_KEY: SERVER_INFO}
                if not meta
                else {
                    **meta,
                    SERVER_INFO_KEY: SERVER_INFO,
                }
            )
        else:
            for key in LEGACY_STRIP:
                result.pop(key, None)
            _drop_upstream_server_info(result)
        return result

    async def serve(
        self, method: str, params: dict[str, Any], identity: Identity
    ) -> dict[str, Any]:
        """Serve one request of a caller that does not speak MCP (the REST API) through the
        same pipeline as :meth:`handle`: RBAC, rate limits, audit, the provider. Such a caller
        cannot answer an upstream's questions mid-call; it may call the tools and prompts the
        registry lists (NotFound for others), its arguments are checked (InvalidArguments:
        against a tool's input schema, a prompt's declared arguments), and a failing upstream
        raises its UpstreamError instead of becoming a tool error. (The REST API comes in
        through :meth:`Dispatcher.direct`, which also watches the request: metrics, traces.)"""
        return await self.handle(method, params, rest_context(method, identity))

    async def _guarded(
        self,
        access: Access,
        handler: Handler,
        method: str,
        params: dict[str, Any],
        ctx: CallContext,
    ) -> dict[str, Any]:
        """Serve a call on one object and audit it, refused or not (in strict durability the
        answer waits for the record's commit)."""
        started = time.perf_counter()
        target = params.get(GUARDED[method][1])
        if isinstance(target, dict):  # completion/complete: a ref/prompt or ref/resource
            target = target.get("name") or target.get("uri")
        target = target[:MAX_NAME] if isinstance(target, str) else ""
        arguments = params.get("arguments")
        arguments = arguments if isinstance(arguments, dict) else None
        try:
            result = dict(await handler(self, params, ctx))
        except AccessError as exc:
            await access.record_refusal(
                ctx.identity, method, target, exc, ctx.request_id, note=ctx.audit_note
            )
            raise
        except CatalystError as exc:
            if method == "completion/complete":
                raise  # suggestions as someone types: only refusals are worth a record
            await access.record_failure(
                ctx.identity,
                method,
                target,
                exc,
                started=started,
                arguments=arguments,
                request_id=ctx.request_id,
                note=ctx.audit_note,
            )
            raise
        if method == "completion/complete":
            return result
        await access.record(
            ctx.identity,
            method,
            target,
            "error" if result.get("isError") is True else "ok",
            started=started,
            arguments=arguments,
            request_id=ctx.request_id,
            note=ctx.audit_note,
        )
        return result

    async def _admit(
        self,
        ctx: CallContext,
        provider: Provider,
        name: str,
        kind: Kind | None = None,
        *,
        limit: bool = True,
    ) -> None:
        """RBAC, key scopes and rate limits for a call of ``name`` (public) served by
        ``provider``; names longer than :data:`MAX_NAME` are refused before anything else."""
        if len(name) > MAX_NAME:
            raise InvalidParams(f"names and URIs are at most {MAX_NAME} characters")
        if self.access is not None:
            kind = kind or GUARDED[ctx.method][0]
            listed = self.registry.is_listed(kind, name)
            if limit:
                await self.access.admit(ctx.identity, kind, name, provider.name, listed=listed)
                await self.access.auditable()  # room for the call's record, or not run
            else:
                self.access.authorize(ctx.identity, kind, name, provider.name, listed=listed)

    def check_subscribe(self, identity: Identity, uri: str) -> None:
        """Forbidden unless ``identity`` may read ``uri`` (its updates are as good as reading
        it); a URI nobody serves is left for the subscription itself to refuse."""
        if self.access is None or len(uri) > MAX_NAME:
            return
        try:
            provider, _ = self.registry.resolve_uri(uri)
        except NotFound:
            return
        listed = self.registry.is_listed("resource", uri)
        self.access.authorize(identity, "resource", uri, provider.name, listed=listed)

    def may_subscribe(self, identity: Identity) -> Callable[[str], bool]:
        """A predicate for ``subscriptions/listen``: the URIs ``identity`` may follow."""

        def allowed(uri: str) -> bool:
            if len(uri) > MAX_NAME:
                return False
            try:
                self.check_subscribe(identity, uri)
            except Forbidden:
                return False
            return True

        return allowed

    # ---- lists -------------------------------------------------------------------------------

    async def _list(self, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        kind = LIST_METHODS[ctx.method]
        for provider in self.registry.providers:
            await provider.refresh()
        items = self.registry.items(kind)
        if self.access is not None:
            rbac_kind, field = LIST_KINDS[kind]
            registry = self.registry
            items = self.access.visible(
                ctx.identity,
                rbac_kind,
                items,
                lambda item: str(item[field]),
                lambda item: registry.owner_name(kind, str(item[field])),
            )
        start = _decode_cursor(params.get("cursor"))
        page = items[start : start + PAGE_SIZE]
        result: dict[str, Any] = {kind: page}
        if start + PAGE_SIZE < len(items):
            result["nextCursor"] = _encode_cursor(start + PAGE_SIZE)
        return result

    # ---- calls -------------------------------------------------------------------------------

    async def _tools_call(self, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        name = params.get("name")
        if not isinstance(name, str):
            raise InvalidParams('tools/call needs a string "name"')
        if len(name) > MAX_NAME:
            raise InvalidParams(f"names and URIs are at most {MAX_NAME} characters")
        arguments = params.get("arguments")
        if arguments is not None and not isinstance(arguments, dict):
            raise InvalidParams('"arguments" must be an object')
        if ctx.channel == "rest" and not self.registry.is_listed("tool", name):
            raise NotFound(f"Unknown tool: {name}")  # only listed tools: schemas to check
        provider, original = self.registry.resolve("tools", name)
        metrics, events = self.metrics, self.events
        if metrics is None and events is None:
            return await self._call_tool(provider, name, original, params, ctx)
        started = time.perf_counter()
        outcome = "error"
        refusal: AccessError | None = None
        try:
            result = await self._call_tool(provider, name, original, params, ctx)
            outcome = "tool_error" if result.get("isError") is True else "ok"
            return result
        except AccessError as exc:
            outcome, refusal = "refused", exc
            raise
        finally:
            if metrics is not None:  # a name the registry does not list: no label of its own
                tool = name if self.registry.is_listed("tool", name) else "other"
                metrics.tool_call(provider.name, tool, outcome, started)
            if events is not None:
                events.ended(provider.name, name, outcome, ctx, started, refusal)

    async def _call_tool(
        self,
        provider: Provider,
        name: str,
        original: str,
        params: dict[str, Any],
        ctx: CallContext,
    ) -> dict[str, Any]:
        await self._admit(ctx, provider, name)
        if ctx.channel == "rest":
            self.arguments.check(name, params.get("arguments") or {})
        # the result cache sits last, in front of the provider (docs/cache.md)
        relay = self._relay_tool if self.cache is None else self._relay_cached
        if self.rules is not None:  # after RBAC and rate limits (docs/rules.md, "Order")
            return await self.rules.call(ctx, provider, name, original, params, relay)
        return await relay(provider, original, params, ctx)

    async def _relay_cached(
        self, provider: Provider, original: str, params: dict[str, Any], ctx: CallContext
    ) -> dict[str, Any]:
        assert self.cache is not None
        return await self.cache.call(provider, original, params, ctx, self._relay_tool)

    async def _relay_tool(
        self, provider: Provider, original: str, params: dict[str, Any], ctx: CallContext
    ) -> dict[str, Any]:
        try:
            result = await self._relay(provider, "tools/call", {**params, "name": original}, ctx)
        except UpstreamRejected:
            raise
        except UpstreamError as exc:
            if ctx.channel == "rest":  # an HTTP error of its own (502/503/504), not a result
                raise
            # A server that is down is a tool error the model can read, not a protocol failure.
            return {"content": [{"type": "text", "text": exc.message}], "isError": True}
        if "content" not in result:  # a CreateTaskResult: later task methods go there
            self.tasks.created(result, provider, ctx)
        return result

    async def _task_method(self, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        return await self.tasks.handle(ctx.method, params, ctx)

    async def _prompts_get(self, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        name = params.get("name")
        if not isinstance(name, str):
            raise InvalidParams('prompts/get needs a string "name"')
        if ctx.channel == "rest" and not self.registry.is_listed("prompt", name):
            raise NotFound(f"Unknown prompt: {name}")
        provider, original = self.registry.resolve("prompts", name)
        await self._admit(ctx, provider, name)
        arguments = params.get("arguments")
        if ctx.channel == "rest" and isinstance(arguments, dict):
            self.arguments.check_prompt(name, arguments)
        return await self._relay(provider, "prompts/get", {**params, "name": original}, ctx)

    async def _resources_read(self, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        uri = params.get("uri")
        if not isinstance(uri, str):
            raise InvalidParams('resources/read needs a string "uri"')
        provider, original = self.registry.resolve_uri(uri)
        await self._admit(ctx, provider, uri)
        result = await self._relay(provider, "resources/read", {**params, "uri": original}, ctx)
        if ctx.era == "legacy" and "contents" not in result:
            raise CatalystError(f"{provider.name} returned no contents for {uri}")
        return result

    async def _complete(self, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        ref = params.get("ref")
        if not isinstance(ref, dict):
            raise InvalidParams('completion/complete needs a "ref" object')
        if ref.get("type") == "ref/prompt" and isinstance(ref.get("name"), str):
            provider, original = self.registry.resolve("prompts", ref["name"])
            await self._admit(ctx, provider, ref["name"], "prompt", limit=False)
            ref = {**ref, "name": original}
        elif ref.get("type") == "ref/resource" and isinstance(ref.get("uri"), str):
            provider, original = self.registry.resolve_uri(ref["uri"])
            await self._admit(ctx, provider, ref["uri"], "resource", limit=False)
            ref = {**ref, "uri": original}
        else:
            raise InvalidParams('"ref" must be a ref/prompt with "name" or ref/resource with "uri"')
        if "completions" not in provider.capabilities:
            return {"completion": {"values": [], "hasMore": False}}
        return await provider.call("completion/complete", {**params, "ref": ref}, ctx)

    async def _relay(
        self, provider: Provider, method: str, params: dict[str, Any], ctx: CallContext
    ) -> dict[str, Any]:
        """Call a provider, bridging client input across eras, and give URIs public names."""
        metrics = self.metrics
        if metrics is None:
            return await self._relay_now(provider, method, params, ctx)
        in_flight = self.in_flight  # plain counts (one event loop): read at scrape time
        name = provider.name
        in_flight[name] = in_flight.get(name, 0) + 1
        try:
            return await self._relay_now(provider, method, params, ctx)
        finally:
            in_flight[name] -= 1

    async def _relay_now(
        self, provider: Provider, method: str, params: dict[str, Any], ctx: CallContext
    ) -> dict[str, Any]:
        if ctx.era == "modern":
            if provider.may_ask or self.bridge.owns(params):
                result = await self.bridge.run(
                    ctx, params, lambda call_ctx: provider.call(method, params, call_ctx)
                )
            else:
                result = await provider.call(method, params, ctx)
        else:
            result = await provider.call(method, params, ctx)
            if result.get("resultType") == "input_required":
                result = await satisfy_for_legacy(
                    result, params, ctx, lambda p: provider.call(method, p, ctx)
                )
        return self.registry.rewrite_content(provider, result)

    # ---- discovery ---------------------------------------------------------------------------

    async def _discover(self, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        result: dict[str, Any] = {
            "supportedVersions": list(SUPPORTED_VERSIONS),
            "capabilities": {**self.capabilities, "extensions": {TASKS_EXTENSION: {}}},
        }
        if self.instructions:
            result["instructions"] = self.instructions
        return result

    def initialize_result(self, version: str) -> dict[str, Any]:
        """The legacy ``InitializeResult`` for a negotiated ``version``."""
        capabilities = self.capabilities
        if version >= TASKS_SINCE:
            capabilities = {**capabilities, "tasks": LEGACY_TASKS_CAPABILITY}
        result: dict[str, Any] = {
            "protocolVersion": version,
            "capabilities": capabilities,
            "serverInfo": SERVER_INFO,
        }
        if self.instructions:
            result["instructions"] = self.instructions
        return result


def rest_context(method: str, identity: Identity) -> CallContext:
    """The context of a REST API request (``channel`` ``rest``, see :meth:`McpServer.serve`)."""
    return CallContext(
        era="legacy",  # results without the modern era's resultType/ttlMs/cacheScope
        protocol_version=LATEST_LEGACY,
        method=method,
        identity=identity,
        channel="rest",
    )


def _drop_upstream_server_info(result: dict[str, Any]) -> None:
    """Legacy results: a modern upstream's ``_meta`` serverInfo names it, not the gateway."""
    meta = result.get("_meta")
    if isinstance(meta, dict) and SERVER_INFO_KEY in meta:
        rest = {k: v for k, v in meta.items() if k != SERVER_INFO_KEY}
        if rest:
            result["_meta"] = rest
        else:
            del result["_meta"]


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(f"o:{offset}".encode()).decode()


def _decode_cursor(cursor: Any) -> int:
    if cursor is None:
        return 0
    if isinstance(cursor, str):
        try:
            text = base64.urlsafe_b64decode(cursor.encode()).decode()
        except (binascii.Error, UnicodeDecodeError, ValueError):
            text = ""
        if text.startswith("o:") and text[2:].isdigit():
            return int(text[2:])
    raise InvalidParams("Invalid cursor: use the nextCursor of a previous page")
