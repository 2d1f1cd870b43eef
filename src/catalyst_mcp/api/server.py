"""The REST API as the gateway serves it under ``/api/``: who may call it, and what is audited.

Two kinds of routes share one router, one OpenAPI document and one error shape: the admin API
(users, keys, roles, secrets, audit: administrators only) and the REST API for tools (lists,
calls, reads, prompts: any caller, authorized object by object by the MCP pipeline, entered
through :meth:`Dispatcher.direct`). Every request, in this order::

    authenticate (AuthGate, as for /mcp) ── 401 + WWW-Authenticate
    find the route ─────────────────────── 404 / 405
    an admin route:
        admin? (role 'admin'; an API key with scopes also needs scope 'admin') ── 403, audited
        storage on? ────────────────────── 503 "storage is off" (not for /servers)
    parse path, query and body ─────────── 400 / 413 / 415 / 422
    run the handler ────────────────────── its answer, or 400 / 403 / 404 / 409 / 429 / 5xx

Every admin change (a route with ``changes``) is recorded in the audit trail as
``admin.<thing>.<verb>`` with its outcome, whether it succeeded or failed, and so is every
refusal; tool calls, reads and prompts are recorded by the MCP pipeline as they are for MCP
clients. Answers carry ``Cache-Control: no-store`` (one of them is a new API key).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel

import catalyst_mcp
from catalyst_mcp.api.admin import admin_routes
from catalyst_mcp.api.calls import CallHandlers
from catalyst_mcp.api.catalog import CatalogHandlers
from catalyst_mcp.api.events import EventHandlers
from catalyst_mcp.api.models import ADMIN_SCOPE
from catalyst_mcp.api.openapi import openapi_document
from catalyst_mcp.api.packages import PackageHandlers
from catalyst_mcp.api.packs import PackHandlers
from catalyst_mcp.api.router import (
    DEFAULT_MAX_BODY,
    ApiError,
    ApiRequest,
    Route,
    Router,
    api_error,
)
from catalyst_mcp.api.services import AdminServices
from catalyst_mcp.api.toolspec import ToolDocument
from catalyst_mcp.context import Identity
from catalyst_mcp.errors import AuditUnavailable, Forbidden
from catalyst_mcp.security.rbac import ADMIN_ROLE
from catalyst_mcp.transports.asgi import ClientGone, Receive, Scope, Send, send_bytes

if TYPE_CHECKING:
    from pathlib import Path

    from catalyst_mcp.orchestration.cache.service import ResultCache
    from catalyst_mcp.orchestration.events.bus import EventBus
    from catalyst_mcp.orchestration.rules.service import Rules
    from catalyst_mcp.orchestration.workflows.manager import Workflows
    from catalyst_mcp.packs.packset import PackSet
    from catalyst_mcp.protocol.dispatch import Dispatcher
    from catalyst_mcp.security.access import Access
    from catalyst_mcp.storage.db import Database
    from catalyst_mcp.transports.authgate import AuthGate
    from catalyst_mcp.trust.pinning import Pinning
    from catalyst_mcp.upstreams.serverset import ServerSet

__all__ = ["PREFIX", "AdminApi"]

PREFIX = "/api/v1"
NO_STORE = (b"cache-control", b"no-store")
DESCRIPTION = (
    "The tools API (tag 'tools'): list the servers, tools, resources and prompts you may use, "
    "call tools, read resources and get prompts, with the same credentials, roles, rate limits "
    "and audit as the MCP endpoint. The admin API (the other tags): manage the gateway's "
    "users, API keys, roles and secrets, read its audit trail, start, stop, restart and "
    "inspect its upstream servers, review and approve changed tool definitions, see its "
    "knowledge packs, and search and install packages; it needs an administrator: a caller "
    "whose roles include 'admin' (an API key with scopes also needs the scope 'admin')."
)


class AdminApi:
    """The ``/api/`` endpoints of one gateway: the admin API, and with ``dispatcher`` (the
    MCP endpoints' :class:`Dispatcher`) the REST API for tools."""

    def __init__(
        self,
        access: Access,
        auth: AuthGate,
        db: Database | None,
        *,
        dispatcher: Dispatcher | None = None,
        rules: Rules | None = None,
        environ: Mapping[str, str] | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        servers: ServerSet | None = None,
        pinning: Pinning | None = None,
        workflows: Workflows | None = None,
        packs: PackSet | None = None,
        config_file: Path | None = None,
        cache: ResultCache | None = None,
        events: EventBus | None = None,
    ) -> None:
        """``packs``: the knowledge packs ``/packs`` reports; ``config_file``: the file
        ``/packages/installs`` adds servers to (None: installs are refused); ``cache``: the
        result cache ``/cache`` reports and clears; ``events``: the bus whose latest events
        ``/events`` shows (None: 404)."""
        self.access = access
        self.auth = auth
        self.db = db
        self.services = AdminServices(access, db, environ, servers=servers, pinning=pinning)
        openapi = Route(
            "GET",
            "/openapi.json",
            self._openapi,
            "admin.openapi.get",
            "This document (OpenAPI 3.1)",
            "meta",
            admin=False,
        )
        tools: list[Route] = []
        if dispatcher is not None:
            public_url = getattr(getattr(auth, "auth", None), "resource_url", None)
            tools = [
                *CatalogHandlers(dispatcher, self._process_details).routes(),
                *CallHandlers(dispatcher).routes(),
                *ToolDocument(dispatcher, PREFIX, public_url).routes(),
            ]
        self.packages = PackageHandlers(access.settings.packages, config_file, access)
        watching = bool(packs is not None and access.settings.packs.watch)
        extra = [
            *PackHandlers(packs, watching).routes(),
            *self.packages.routes(),
            *EventHandlers(events).routes(),
        ]
        if rules is not None:  # the policy rules and approvals (docs/rules.md)
            from catalyst_mcp.api.rules import RuleHandlers

            tools = [*RuleHandlers(self.services, rules).routes(), *tools]
        if workflows is not None:  # the workflows room's runs (docs/api.md)
            from catalyst_mcp.api.workflows import WorkflowHandlers

            tools = [*WorkflowHandlers(workflows).routes(), *tools]
        if cache is not None:  # the result cache (docs/cache.md)
            from catalyst_mcp.api.cache import CacheHandlers

            registry = dispatcher.server.registry if dispatcher is not None else None
            extra = [*extra, *CacheHandlers(cache, registry).routes()]
        routes = [*admin_routes(self.services), *extra, *tools, openapi]
        self.router = Router(PREFIX, routes, max_body=max_body)
        self._document: dict[str, Any] | None = None
        # told of every change made (its action, path parameters and who made it) before the
        # answer goes out: other instances apply it too (cluster/announce.py)
        self.change_listeners: list[Callable[[str, dict[str, str], Identity], Awaitable[None]]] = []

    async def close(self) -> None:
        """Stop the package installs in progress (each removes what it built)."""
        await self.packages.jobs.close()

    def document(self) -> dict[str, Any]:
        """The OpenAPI document (built once)."""
        if self._document is None:
            self._document = openapi_document(
                self.router,
                title="Catalyst REST API",
                version=catalyst_mcp.__version__,
                description=DESCRIPTION,
            )
        return self._document

    async def _openapi(self, request: ApiRequest) -> dict[str, Any]:
        return self.document()

    def _process_details(self, identity: Identity) -> dict[str, dict[str, object]] | None:
        """Every served server's process state, for an administrator (GET /servers)."""
        servers = self.services.servers
        if servers is None or self.refusal(identity) is not None:
            return None
        return {str(status["name"]): status for status in servers.statuses()}

    def refusal(self, identity: Identity) -> str | None:
        """Why ``identity`` may not use the admin API, or None when it may."""
        roles = self.access.roles_of(identity)
        if ADMIN_ROLE not in roles:
            return f"Forbidden: the admin API needs the {ADMIN_ROLE!r} role"
        scopes = identity.scopes
        if identity.via == "api_key" and scopes is not None and ADMIN_SCOPE not in scopes:
            return f"Forbidden: this API key's scopes do not include {ADMIN_SCOPE!r}"
        return None

    async def __call__(
        self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes]
    ) -> None:
        identity = await self._identify(scope, headers, send)
        if identity is None:
            return
        path = scope["path"]
        raw = scope.get("raw_path")  # still percent-encoded: an encoded '/' stays in its segment
        route: Route | None = None
        params: dict[str, str] = {}
        unmatched: ApiError | None = None
        try:
            route, params = self.router.find(
                scope["method"], raw.decode("latin-1") if raw else path
            )
        except ApiError as exc:
            unmatched = exc
        if route is None:
            await _send_error(send, unmatched or ApiError(404, "no such endpoint"))
            return
        if route.admin:
            refusal = self.refusal(identity)
            if refusal is not None:
                await self.access.record_refusal(identity, route.action, path, Forbidden(refusal))
                await _send_error(send, ApiError(403, refusal))
                return
            if self.db is None and route.needs_storage:
                await _send_error(
                    send,
                    ApiError(503, "storage is off: enable audit or API keys to use the admin API"),
                )
                return
        request = ApiRequest(
            route,
            identity,
            params,
            headers,
            target="/".join(params.values()),
            scheme=scope.get("scheme", "http"),
        )
        await self._run(request, scope, receive, send)

    async def _run(self, request: ApiRequest, scope: Scope, receive: Receive, send: Send) -> None:
        route = request.route
        started = time.perf_counter()
        try:
            await self.router.parse(request, scope, receive)
            result = await route.handler(request)
        except ClientGone:
            return
        except Exception as exc:
            error = api_error(exc)
            if route.changes:
                await self.access.record(
                    request.identity,
                    route.action,
                    request.target or route.path,
                    "error",
                    started=started,
                    reason=error.message,
                    error_answer=True,
                )
            await _send_error(send, error)
            return
        if route.changes:
            for listener in self.change_listeners:  # made: the other instances make it too
                await listener(route.action, request.params, request.identity)
            target = request.target or route.path
            try:  # strict durability: the answer waits for the record's commit
                await self.access.record(
                    request.identity, route.action, target, "ok", started=started
                )
            except AuditUnavailable as exc:  # the change is made, its record is not
                await _send_error(send, api_error(exc))
                return
        await _send_result(send, route.status, result)

    async def _identify(
        self, scope: Scope, headers: dict[bytes, bytes], send: Send
    ) -> Identity | None:
        """The caller, as the MCP endpoint would see them; on a refusal, the gate's 401 (with
        its ``WWW-Authenticate`` challenge) in this API's error shape."""
        sent: list[MutableMapping[str, Any]] = []

        async def keep(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        identity = await self.auth.identify(scope, headers, keep)
        if identity is not None:
            return identity
        status, challenge, message = 401, [], "authentication required"
        for item in sent:
            if item["type"] == "http.response.start":
                status = item["status"]
                challenge = [(k, v) for k, v in item["headers"] if k == b"www-authenticate"]
            elif item.get("body"):
                with contextlib.suppress(orjson.JSONDecodeError, KeyError, TypeError):
                    message = orjson.loads(item["body"])["error"]["message"]
        await _send_error(send, ApiError(status, message, headers=challenge))
        return None


async def _send_error(send: Send, error: ApiError) -> None:
    body = orjson.dumps(error.to_json())
    await send_bytes(send, error.status, body, headers=[*error.headers, NO_STORE])


async def _send_result(
    send: Send, status: int, result: BaseModel | Mapping[str, Any] | None
) -> None:
    if result is None:
        await send_bytes(send, status, b"", None, [NO_STORE])
        return
    if isinstance(result, BaseModel):
        body = result.model_dump_json().encode()
    else:
        body = orjson.dumps(result)
    await send_bytes(send, status, body, headers=[NO_STORE])
