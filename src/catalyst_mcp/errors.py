"""Catalyst's one exception hierarchy.

Every failure inside Catalyst is raised as one of these classes. Lower-layer errors (OS, HTTP,
JSON, subprocess) are mapped to them at the boundary with ``raise ... from exc``. What a client
may see is decided in one place: :meth:`CatalystError.to_jsonrpc` (the message is written for the
client; the cause, a stack trace or a secret never is).

::

    CatalystError                       base; code = -32603 (internal error)
    ├── ConfigError                     a config file or setting is wrong (carries every problem)
    ├── ProtocolError                   the client sent something the protocol does not allow
    │   ├── ParseError                  body is not JSON                          -32700
    │   ├── InvalidRequest              not a JSON-RPC request of the right shape -32600
    │   ├── MethodNotFound              unknown or unsupported method             -32601
    │   ├── InvalidParams               params of the wrong shape, unknown name   -32602
    │   │   └── NotFound                no such tool / prompt / resource
    │   │       └── ResourceNotFound    no such resource URI                      -32002
    │   │   └── InvalidArguments        arguments not matching the tool's inputSchema (checked
    │   │                               for REST callers); data.errors: path + message each
    │   │   └── MalformedMeta           a modern request lacks required _meta     -32602
    │   ├── HeaderMismatch              MCP-* headers missing or disagree w/ body -32020
    │   ├── MissingCapability           the client lacks a capability we need     -32021
    │   └── UnsupportedVersion          protocol version not supported            -32022
    ├── AccessError                     who is calling, or what they may do, stops the call
    │   ├── Unauthenticated             no or bad credentials (HTTP 401 + WWW-Authenticate)
    │   ├── Forbidden                   RBAC denies this object to this caller      -32003
    │   │   ├── ApprovalRequired        a rule holds the call for an approver; data: approval
    │   │   │                           id and status (pending, rejected, expired, cancelled)
    │   │   └── ToolHeldBack            a tool changed since it was approved (trust/pinning.py)
    │   └── RateLimited                 a rate limit is exhausted; data.retryAfterSeconds -32029
    ├── ApiError (api/router.py)        an admin REST API answer: HTTP status + error code
    ├── LimiterUnavailable, SecretUnreadable, JwksError (security/): a store or key is missing
    ├── StorageError                    the database failed or refused a change
    │   ├── Conflict                    the user/key/role/secret already exists
    │   ├── Missing                     no such user/key/role/secret
    │   └── AuditUnavailable            a call's audit record cannot be committed (or queued);
    │                                   data.executed says whether the call ran
    ├── RequestCancelled                the caller cancelled the request
    ├── SessionLimit                    no room for another legacy session (HTTP 429 / 503) -32000
    ├── SharedStateUnavailable          Redis (state shared by instances) cannot be reached
    │                                   (HTTP 503)                                -32000
    ├── PackError                       a knowledge pack could not serve a call (bad arguments,
    │                                   a database failure); tools/call shows it as isError
    ├── BuiltinError                    a built-in server (servers/) could not serve a call: a
    │                                   refused path, a file too large, a database error;
    │                                   tools/call shows it as isError
    ├── EventDeliveryError              a webhook could not be delivered (orchestration/events;
    │                                   logged and counted, never a client's answer)
    ├── PackageError                    an MCP server package could not be found, installed or
    │   │                               verified (packages/; the CLI's `catalyst packages`)
    │   ├── PackageNotFound             no such server, package or version
    │   ├── RegistryUnreachable         the MCP Registry, npm or PyPI cannot be reached
    │   ├── RuntimeMissing              node/npm, uv or python is not installed
    │   ├── InstallFailed               the installer failed (the message ends with its output)
    │   ├── IntegrityError              a downloaded distribution differs from the lock's hash
    │   └── PackageConflict             a server of that name exists, or it is not installed
    └── UpstreamError                   an upstream MCP server failed this call
        ├── UpstreamUnavailable         not connected / crashed / circuit open / stopped
        │   └── ProcessLimit            a per-user/per-session process past a cap; data names it
        ├── UpstreamTimeout             no answer within the call's timeout
        ├── UpstreamProtocolError       answered something that is not MCP
        └── UpstreamRejected            answered with a JSON-RPC error (relayed as-is)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "AccessError",
    "ApprovalRequired",
    "AuditUnavailable",
    "BuiltinError",
    "CatalystError",
    "ConfigError",
    "ConfigProblem",
    "Conflict",
    "EventDeliveryError",
    "Forbidden",
    "HeaderMismatch",
    "InstallFailed",
    "IntegrityError",
    "InvalidArguments",
    "InvalidParams",
    "InvalidRequest",
    "MalformedMeta",
    "MethodNotFound",
    "Missing",
    "MissingCapability",
    "NotFound",
    "PackError",
    "PackageConflict",
    "PackageError",
    "PackageNotFound",
    "ParseError",
    "ProcessLimit",
    "ProtocolError",
    "RateLimited",
    "RegistryUnreachable",
    "RequestCancelled",
    "ResourceNotFound",
    "RuntimeMissing",
    "SessionLimit",
    "SharedStateUnavailable",
    "StorageError",
    "ToolHeldBack",
    "Unauthenticated",
    "UnsupportedVersion",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamRejected",
    "UpstreamTimeout",
    "UpstreamUnavailable",
]

# JSON-RPC 2.0 and MCP error codes.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
RESOURCE_NOT_FOUND = -32002  # legacy era; the modern era uses INVALID_PARAMS
HEADER_MISMATCH = -32020
MISSING_CAPABILITY = -32021
UNSUPPORTED_VERSION = -32022
FORBIDDEN = -32003
RATE_LIMITED = -32029
SERVER_BUSY = -32000  # JSON-RPC's implementation-defined server error


class CatalystError(Exception):
    """Base of every Catalyst error. ``str(err)`` is safe to show to a client."""

    code: int = INTERNAL_ERROR
    # HTTP status for a modern-era client (the spec ties some codes to 400 and 404).
    http_status: int = 200

    def __init__(self, message: str, *, data: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.data = data

    def to_jsonrpc(self) -> dict[str, Any]:
        """The JSON-RPC ``error`` object a client sees for this failure."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong in a config file, located as precisely as we can."""

    file: str
    line: int | None
    message: str
    column: int | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        if self.line is not None and self.column is not None:
            where += f":{self.column}"
        return f"{where}: {self.message}"


class ConfigError(CatalystError):
    """The configuration is invalid. ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems) or "invalid configuration")


class ProtocolError(CatalystError):
    """The client sent something the protocol does not allow."""

    code = INVALID_REQUEST


class ParseError(ProtocolError):
    code = PARSE_ERROR
    http_status = 400


class InvalidRequest(ProtocolError):
    code = INVALID_REQUEST
    http_status = 400


class MethodNotFound(ProtocolError):
    code = METHOD_NOT_FOUND
    http_status = 404


class InvalidParams(ProtocolError):
    code = INVALID_PARAMS


class NotFound(InvalidParams):
    """No tool, prompt or resource template of that name."""


class InvalidArguments(InvalidParams):
    """``tools/call`` arguments that do not match the tool's ``inputSchema`` (the gateway
    checks them for callers that do not speak MCP: the REST API). The message names the tool
    and where, never a value (it goes to the audit trail); ``data["errors"]`` lists every
    error for the caller: ``{"path": JSON Pointer, "message", "keyword"}``."""


class ResourceNotFound(NotFound):
    """Legacy clients get -32002; modern ones -32602 (see ``to_jsonrpc_for``)."""

    code = RESOURCE_NOT_FOUND


class MalformedMeta(InvalidParams):
    http_status = 400


class HeaderMismatch(ProtocolError):
    code = HEADER_MISMATCH
    http_status = 400


class MissingCapability(ProtocolError):
    code = MISSING_CAPABILITY
    http_status = 400


class UnsupportedVersion(ProtocolError):
    code = UNSUPPORTED_VERSION
    http_status = 400


class AccessError(CatalystError):
    """The caller may not do this (now). Messages name what was refused and why, never a
    credential; every one of them is audited."""


class Unauthenticated(AccessError):
    """No credentials, or credentials that are invalid, expired or revoked. HTTP transports
    answer 401 with a ``WWW-Authenticate`` challenge before any JSON-RPC is read."""

    code = INVALID_REQUEST
    http_status = 401


class Forbidden(AccessError):
    """The caller is known but RBAC (or a key's scopes) denies this object."""

    code = FORBIDDEN


class ApprovalRequired(Forbidden):
    """A ``require_approval`` rule holds the call and it did not run: the approval request is
    still pending (the caller may repeat the same call once it is approved), or it was
    rejected, expired or cancelled. ``data``: ``{"approval": id, "status": ...}``."""

    def __init__(self, message: str, approval: str, status: str) -> None:
        super().__init__(message, data={"approval": approval, "status": status})
        self.approval = approval
        self.status = status


class ToolHeldBack(Forbidden):
    """The tool's definition (what the model is told) changed, or the tool is new, since an
    administrator approved the server's tools: it is held back until one approves it. ``data``
    names the server, the tool and why (``changed``, ``new`` or ``unverified``)."""

    def __init__(self, server: str, tool: str, reason: str, message: str) -> None:
        super().__init__(message, data={"server": server, "tool": tool, "reason": reason})
        self.server = server
        self.tool = tool
        self.reason = reason


class RateLimited(AccessError):
    """A rate limit is exhausted; ``retry_after`` seconds until one more call is allowed."""

    code = RATE_LIMITED

    def __init__(self, message: str, retry_after: float) -> None:
        self.retry_after = max(0.0, retry_after)
        super().__init__(message, data={"retryAfterSeconds": round(self.retry_after, 3)})


class StorageError(CatalystError):
    """The database failed or refused a change. The message names the object, never a URL,
    a statement or a stored value."""


class Conflict(StorageError):
    """The object already exists (a user name, a role, a key prefix, a secret)."""


class Missing(StorageError):
    """No such stored object."""


class AuditUnavailable(StorageError):
    """The audit trail cannot take a call's record: with ``audit.durability: strict`` its
    commit failed or timed out (the call ran: its result is withheld), or the trail cannot be
    written at all, or (either mode) too many records wait for the database (the call was not
    run). ``data.executed`` says which; the message says what to do."""


class RequestCancelled(CatalystError):
    """The caller cancelled the request; nothing is sent back for it."""


class SessionLimit(CatalystError):
    """No room for another legacy session: a cap is reached and every session under it is
    busy. ``http_status`` is 429 for the caller's own cap, 503 for the gateway's; ``data``
    names the cap (``per_caller`` or ``global``) and its limit."""

    code = SERVER_BUSY
    http_status = 503

    def __init__(self, message: str, *, status: int = 503, data: Any = None) -> None:
        super().__init__(message, data=data)
        self.http_status = status


class SharedStateUnavailable(CatalystError):
    """The state the gateway's instances share (Redis, ``redis.url``) cannot be reached, so
    a request that needs it (a legacy session another instance made, a new one) is refused
    with HTTP 503; the client may retry."""

    code = SERVER_BUSY
    http_status = 503


class PackError(CatalystError):
    """A knowledge pack could not serve a call. The message is written for the client: it never
    carries SQL driver internals, statements, bound values or connection URLs."""


class BuiltinError(CatalystError):
    """A built-in server (``servers/``) could not serve a call. The message is written for the
    client and says what to do (a path outside the roots, a file over a size limit, a read-only
    database); it never carries a stack trace, a driver message, a statement's values or a
    connection URL. ``tools/call`` turns it into a tool result with ``isError: true``."""


class EventDeliveryError(CatalystError):
    """An event could not be delivered to a webhook after its retries (with Redis, the entry is
    delivered again later). Logged and counted; no client ever sees it."""


class PackageError(CatalystError):
    """An MCP server package could not be found, installed, verified or removed. The message
    is one line for the user (an installer's failure adds the tail of its output after it)."""


class PackageNotFound(PackageError):
    """No such server in the catalog, no such package on npm or PyPI, or no such version."""


class RegistryUnreachable(PackageError):
    """The MCP Registry, the npm registry or the Python package index cannot be reached."""


class RuntimeMissing(PackageError):
    """A program the install needs (node and npm, uv, python) is not installed."""


class InstallFailed(PackageError):
    """The installer (npm, uv, pip) failed for another reason; the tail of its output follows."""


class IntegrityError(PackageError):
    """A distribution's hash differs from the one in ``catalyst.lock``: nothing was installed."""


class PackageConflict(PackageError):
    """A server entry of that name exists already, or the package is not installed."""


class UpstreamError(CatalystError):
    """An upstream MCP server failed this call. ``server`` names it."""

    def __init__(self, server: str, message: str, *, data: Any = None) -> None:
        super().__init__(message, data=data)
        self.server = server


class UpstreamUnavailable(UpstreamError):
    pass


class ProcessLimit(UpstreamUnavailable):
    """A caller needs a process of their own (``sharing: per-user`` or ``per-session``) and a
    cap is reached; ``data`` names the cap (``max_processes`` or ``max_processes_per_user``)
    and its limit. The message says what the caller can do."""


class UpstreamTimeout(UpstreamError):
    pass


class UpstreamProtocolError(UpstreamError):
    pass


class UpstreamRejected(UpstreamError):
    """The upstream answered with a JSON-RPC error; relayed with its own code and message."""

    def __init__(self, server: str, error: dict[str, Any]) -> None:
        code = error.get("code")
        message = error.get("message")
        super().__init__(
            server,
            message if isinstance(message, str) else "upstream error",
            data=error.get("data"),
        )
        self.code = code if isinstance(code, int) and not isinstance(code, bool) else INTERNAL_ERROR
