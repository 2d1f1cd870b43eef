"""The admin API as the gateway serves it under ``/api/``: who may call it, and what is audited.

Every request, in this order::

    authenticate (AuthGate, as for /mcp) ── 401 + WWW-Authenticate
    find the route ─────────────────────── (remembered: a 404/405 is only told to an admin)
    admin? (role 'admin'; an API key with scopes also needs scope 'admin') ── 403, audited
    storage on? ────────────────────────── 503 "storage is off"
    parse path, query and body ─────────── 400 / 413 / 415 / 422
    run the handler ────────────────────── its answer, or 404 / 409 / 503 ...

Every change (a route with ``changes``) is recorded in the audit trail as
``admin.<thing>.<verb>`` with its outcome, whether it succeeded or failed, and so is every
refusal. Answers carry ``Cache-Control: no-store`` (one of them is a new API key).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import BaseModel

import catalyst_mcp
from catalyst_mcp.api.admin import admin_routes
from catalyst_mcp.api.models import ADMIN_SCOPE
from catalyst_mcp.api.openapi import openapi_document
from catalyst_mcp.api.router import (
    DEFAULT_MAX_BODY,
    ApiError,
    ApiRequest,
    Route,
    Router,
    api_error,
)
from catalyst_mcp.api.services import AdminServices
from catalyst_mcp.context import Identity
from catalyst_mcp.errors import Forbidden
from catalyst_mcp.security.rbac import ADMIN_ROLE
from catalyst_mcp.transports.asgi import ClientGone, Receive, Scope, Send, send_bytes

if TYPE_CHECKING:
    from catalyst_mcp.security.access import Access
    from catalyst_mcp.storage.db import Database
    from catalyst_mcp.transports.authgate import AuthGate
    from catalyst_mcp.trust.pinning import Pinning

__all__ = ["PREFIX", "AdminApi"]

PREFIX = "/api/v1"
NO_STORE = (b"cache-control", b"no-store")
DESCRIPTION = (
    "Manage the gateway's users, API keys, roles and secrets, read its audit trail, and "
    "review and approve changed tool definitions. "
    "Every operation needs an administrator: a caller whose roles include 'admin' (an API key "
    "with scopes also needs the scope 'admin')."
)


class AdminApi:
    """The ``/api/`` endpoints of one gateway."""

    def __init__(
        self,
        access: Access,
        auth: AuthGate,
        db: Database | None,
        *,
        environ: Mapping[str, str] | None = None,
        max_body: int = DEFAULT_MAX_BODY,
        pinning: Pinning | None = None,
    ) -> None:
        self.access = access
        self.auth = auth
        self.db = db
        self.services = AdminServices(access, db, environ, pinning=pinning)
        openapi = Route(
            "GET",
            "/openapi.json",
            self._openapi,
            "admin.openapi.get",
            "This document (OpenAPI 3.1)",
            "meta",
        )
        self.router = Router(PREFIX, [*admin_routes(self.services), openapi], max_body=max_body)
        self._document: dict[str, Any] | None = None

    def document(self) -> dict[str, Any]:
        """The OpenAPI document (built once)."""
        if self._document is None:
            self._document = openapi_document(
                self.router,
                title="Catalyst admin API",
                version=catalyst_mcp.__version__,
                description=DESCRIPTION,
            )
        return self._document

    async def _openapi(self, request: ApiRequest) -> dict[str, Any]:
        return self.document()

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
        except ApiError as exc:  # told only to an administrator
            unmatched = exc
        refusal = self.refusal(identity)
        if refusal is not None:
            action = route.action if route is not None else "admin.api"
            self.access.record_refusal(identity, action, path, Forbidden(refusal))
            await _send_error(send, ApiError(403, refusal))
            return
        if route is None:
            await _send_error(send, unmatched or ApiError(404, "no such endpoint"))
            return
        if self.db is None:
            await _send_error(
                send,
                ApiError(503, "storage is off: enable audit or API keys to use the admin API"),
            )
            return
        request = ApiRequest(route, identity, params, headers, target="/".join(params.values()))
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
                self.access.record(
                    request.identity,
                    route.action,
                    request.target or route.path,
                    "error",
                    started=started,
                    reason=error.message,
                )
            await _send_error(send, error)
            return
        if route.changes:
            target = request.target or route.path
            self.access.record(request.identity, route.action, target, "ok", started=started)
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
