"""The call context: who is calling, in which era, and how to talk back to them.

Every request the gateway serves carries one :class:`CallContext` from the transport to the
provider. Later layers (authentication, RBAC, per-user secrets, audit) read and fill
``identity``; nothing below the transport needs to know how the request arrived.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from catalyst_mcp.protocol.jsonrpc import Message, RequestId
from catalyst_mcp.protocol.versions import Era

__all__ = ["ANONYMOUS", "Asker", "CallContext", "Emitter", "Identity", "same_caller"]

Emitter = Callable[[Message], Awaitable[None]]
Asker = Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling. Without authentication every caller is the local anonymous user.

    ``subject`` is the stable user name (what secrets, rate limits and audit records are keyed
    by); ``kind`` is ``anonymous``, ``user`` or ``service``; ``roles`` name RBAC roles;
    ``scopes`` narrow what an API key or token may do (None: no narrowing); ``via`` says how the
    caller proved who they are (``none``, ``api_key``, ``jwt``).
    """

    subject: str = "anonymous"
    kind: str = "anonymous"
    roles: tuple[str, ...] = ()
    scopes: frozenset[str] | None = None
    via: str = "none"


ANONYMOUS = Identity()


def same_caller(a: Identity, b: Identity) -> bool:
    """Whether two requests come from the same caller, authenticated the same way (a legacy
    session belongs to its opener: a JWT of the same name does not get an API-key user's
    session). Roles and scopes are not compared: each request is authorized on its own."""
    return a.subject == b.subject and a.via == b.via


async def _drop(message: Message) -> None:
    return None


@dataclass(slots=True, eq=False)
class CallContext:
    """One client request in flight."""

    era: Era
    protocol_version: str
    method: str = ""
    client_capabilities: dict[str, Any] = field(default_factory=dict)
    client_info: dict[str, Any] | None = None
    identity: Identity = ANONYMOUS
    request_id: RequestId | None = None
    progress_token: str | int | None = None
    log_level: str | None = None
    # Sends a notification related to this request to the client (progress, log messages).
    emit: Emitter = _drop
    # Sends a server→client request (sampling, elicitation, roots) and returns the client's
    # result. Legacy clients get a JSON-RPC request; modern clients an InputRequiredResult.
    ask: Asker | None = None
    session_id: str | None = None
    # Facts a provider adds to this call's audit record (a database write's masked statement
    # and row count); never a secret or an argument's value.
    audit_note: dict[str, Any] | None = None
    # How the request arrived: an MCP transport, or the REST API (whose callers get their tool
    # arguments checked against the input schema, and upstream failures as errors, not results)
    channel: Literal["mcp", "rest"] = "mcp"
    # A modern request on a stdio or WebSocket connection: the connection's id (the connection
    # is its session, for servers run per session). None on HTTP, where modern requests are
    # stateless, and for legacy requests (their session_id says it).
    connection_id: str | None = None

    @property
    def session_key(self) -> str | None:
        """What a per-session server keys its processes by: the legacy session, else the
        stdio/WebSocket connection; None for a stateless modern HTTP request."""
        return self.session_id if self.session_id is not None else self.connection_id

    def can(self, capability: str) -> bool:
        """Whether the client declared ``capability`` (``sampling``, ``elicitation``, ``roots``)."""
        return capability in self.client_capabilities
