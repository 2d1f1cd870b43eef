"""HTTP authentication for the MCP endpoints, as MCP's authorization spec asks of a server.

The gateway is an OAuth 2.1 resource server: a request without valid credentials gets 401
with a ``WWW-Authenticate: Bearer`` challenge whose ``resource_metadata`` points at the
Protected Resource Metadata (RFC 9728), served (without credentials) at
``/.well-known/oauth-protected-resource`` and its path-suffixed variant when
``auth.authorization_servers`` are configured. Tokens are checked for *this* resource's
audience (RFC 8707) by :class:`~catalyst_mcp.security.jwt.JwtVerifier` and are never passed on
to upstream servers: upstream credentials come from the gateway's own configuration and the
secrets vault.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit

from catalyst_mcp.context import ANONYMOUS, Identity
from catalyst_mcp.errors import Unauthenticated
from catalyst_mcp.protocol.jsonrpc import error_response
from catalyst_mcp.security.access import Access
from catalyst_mcp.security.resource import (
    WELL_KNOWN,
    metadata_url,
    protected_resource_metadata,
    www_authenticate,
)
from catalyst_mcp.settings import Settings
from catalyst_mcp.transports.asgi import Scope, Send, send_json

__all__ = ["AuthGate"]

log = logging.getLogger("catalyst.auth")


class AuthGate:
    def __init__(self, access: Access, settings: Settings) -> None:
        self.access = access
        self.auth = settings.auth
        self.mcp_path = settings.gateway.mcp_path
        self.publishes_metadata = bool(self.auth.enabled and self.auth.authorization_servers)

    @property
    def resource_url(self) -> str:
        """This endpoint's canonical URL (``auth.resource_url``: the settings require it when
        the metadata is published, so nothing here is taken from a request's Host)."""
        assert self.auth.resource_url is not None
        return self.auth.resource_url

    def is_metadata_path(self, path: str) -> bool:
        if not self.publishes_metadata or not path.startswith(WELL_KNOWN):
            return False
        suffix = path[len(WELL_KNOWN) :]
        return suffix in ("", "/", urlsplit(self.resource_url).path)

    async def metadata(self, scope: Scope, headers: dict[bytes, bytes], send: Send) -> None:
        """The Protected Resource Metadata document (public, cacheable)."""
        document = protected_resource_metadata(
            self.resource_url,
            self.auth.authorization_servers,
            self.auth.scopes_supported or None,
            resource_name="Catalyst MCP gateway",
        )
        await send_json(send, 200, document, [(b"cache-control", b"public, max-age=3600")])

    async def identify(
        self, scope: Scope, headers: dict[bytes, bytes], send: Send
    ) -> Identity | None:
        """The caller of this request; None when it was refused (401 already sent)."""
        authorization = headers.get(b"authorization")
        if authorization is None and not self.access.required:
            return self.access.anonymous
        try:
            return await self.access.authenticate(authorization)
        except Unauthenticated as exc:
            await self.access.record_refusal(ANONYMOUS, "authenticate", scope.get("path", ""), exc)
            await send_json(
                send,
                401,
                error_response(None, exc),
                [(b"www-authenticate", self.challenge(scope, headers, exc, authorization))],
            )
            return None

    def challenge(
        self,
        scope: Scope,
        headers: dict[bytes, bytes],
        exc: Unauthenticated,
        presented: bytes | None,
    ) -> bytes:
        error = "invalid_token" if presented is not None else None
        if self.publishes_metadata:
            url = metadata_url(self.resource_url)
            return www_authenticate(url, error, exc.message).encode("latin-1")
        value = 'Bearer realm="catalyst"'
        if error is not None:
            safe = exc.message.replace('"', "'").replace("\\", "/")
            value += f', error="{error}", error_description="{safe}"'
        return value.encode("latin-1", "replace")
