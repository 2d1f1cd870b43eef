"""What the admin API reads and writes: one pydantic model per body, query, path and answer.

Request models refuse unknown fields (a typo is a 422, not a silent no-op). The OpenAPI
document is generated from these models, so their field descriptions are the API reference.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from catalyst_mcp.security.rbac import KINDS
from catalyst_mcp.security.references import SECRET_NAME
from catalyst_mcp.settings import SERVER_NAME
from catalyst_mcp.storage.users import RESERVED_USER_NAMES

__all__ = [
    "ADMIN_SCOPE",
    "ApprovedDefinition",
    "AuditPage",
    "AuditQuery",
    "AuditRecord",
    "AuditVerification",
    "ErrorBody",
    "ErrorDetail",
    "Key",
    "KeyCreate",
    "KeyCreated",
    "KeyList",
    "KeyPath",
    "KeyQuery",
    "NamePath",
    "PinnedServer",
    "PinnedServers",
    "ProblemDetail",
    "Role",
    "RoleDeleteQuery",
    "RoleList",
    "RolePath",
    "RolePut",
    "Secret",
    "SecretList",
    "SecretPath",
    "SecretPut",
    "SecretQuery",
    "ServerPath",
    "ToolApproval",
    "ToolApprovals",
    "ToolApprove",
    "ToolChange",
    "ToolChanges",
    "User",
    "UserCreate",
    "UserList",
    "UserUpdate",
]

ADMIN_SCOPE = "admin"
"""The API key scope the admin API requires (keys without scopes are not narrowed)."""

MAX_SECRET_BYTES = 64 * 1024

_PLAIN = re.compile(r"\S*")
_PREFIX = re.compile(r"[a-z2-7]{8}")


def _plain(spaces: bool = False) -> AfterValidator:
    """A name that can sit in a URL path segment and an audit record: no '/', no control
    characters and (unless ``spaces``) no white space."""

    def check(value: str) -> str:
        if any(c == "/" or ord(c) < 32 or ord(c) == 127 for c in value):
            raise ValueError("must not contain '/' or control characters")
        if not spaces and not _PLAIN.fullmatch(value):
            raise ValueError("must not contain spaces")
        return value

    return AfterValidator(check)


def _not_reserved(value: str) -> str:
    if value in RESERVED_USER_NAMES:
        raise ValueError(
            "is reserved: '*' stands for everyone (the owner of shared secrets) and "
            "'anonymous' for callers without credentials"
        )
    return value


def _secret_name(value: str) -> str:
    if not SECRET_NAME.match(value):
        raise ValueError("must be 1 to 128 letters, digits, '_', '-' or '.'")
    return value


UserName = Annotated[
    str, StringConstraints(min_length=1, max_length=128), _plain(), AfterValidator(_not_reserved)
]
RoleName = Annotated[str, StringConstraints(min_length=1, max_length=64), _plain()]
SecretPart = Annotated[str, StringConstraints(min_length=1, max_length=128), _plain(True)]
SecretName = Annotated[
    str,
    AfterValidator(_secret_name),
    WithJsonSchema({"type": "string", "pattern": "^[A-Za-z0-9_.-]{1,128}$"}),
]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


# ---- errors -------------------------------------------------------------------------------


class ProblemDetail(_Out):
    location: str = Field(description="Where: 'body.email', 'query.limit', 'path.name'.")
    message: str = Field(description="What is wrong there.")


class ErrorDetail(_Out):
    code: str = Field(
        description="Stable machine-readable code: bad_request, unauthenticated, forbidden, "
        "not_found, method_not_allowed, conflict, body_too_large, unsupported_media_type, "
        "invalid, unavailable, internal."
    )
    message: str = Field(description="What went wrong, written for a person.")
    problems: list[ProblemDetail] | None = Field(
        None, description="Every problem found (422 only)."
    )


class ErrorBody(_Out):
    """Every error answer of the admin API."""

    error: ErrorDetail


# ---- path parameters ----------------------------------------------------------------------


class NamePath(_In):
    name: UserName = Field(description="The user's name.")


class RolePath(_In):
    name: RoleName = Field(description="The role's name.")


class KeyPath(_In):
    prefix: str = Field(description="The key's prefix: the 8 characters after 'cat_'.")

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not _PREFIX.fullmatch(value):
            raise ValueError("a key prefix is 8 characters: a-z and 2-7")
        return value


class SecretPath(_In):
    owner: SecretPart = Field(description="A user name, or '*' for everyone.")
    scope: SecretPart = Field(description="The server or pack it is for, or '*' for any.")
    name: SecretName = Field(
        description="The secret's name: 1-128 letters, digits, '_', '-' or '.'."
    )


class ServerPath(_In):
    name: Annotated[str, StringConstraints(max_length=128, pattern=SERVER_NAME.pattern)] = Field(
        description="The server's name, as in the configuration's `servers:`."
    )


# ---- users --------------------------------------------------------------------------------


class User(_Out):
    name: str = Field(description="Stable user name: what keys, secrets and audit use.")
    kind: Literal["user", "service"] = Field(description="A person or a service account.")
    display_name: str | None = Field(description="Name to show.")
    email: str | None = Field(description="Contact address.")
    disabled: bool = Field(description="A disabled user's keys are refused.")
    roles: list[str] = Field(description="Roles granted, sorted.")
    created_at: datetime
    updated_at: datetime


class UserList(_Out):
    users: list[User] = Field(description="Every user, by name.")


class UserCreate(_In):
    name: UserName = Field(
        description="Stable user name (no spaces or '/'; '*' and 'anonymous' are reserved)."
    )
    kind: Literal["user", "service"] = Field("user", description="A person or a service.")
    display_name: Annotated[str, StringConstraints(max_length=256)] | None = None
    email: Annotated[str, StringConstraints(max_length=320)] | None = None
    roles: list[RoleName] = Field(
        default_factory=list, description="Stored roles to grant (each must exist)."
    )


class UserUpdate(_In):
    """Only the fields given change; ``null`` clears display_name or email."""

    display_name: Annotated[str, StringConstraints(max_length=256)] | None = None
    email: Annotated[str, StringConstraints(max_length=320)] | None = None
    disabled: bool | None = Field(None, description="Disable (true) or enable (false).")
    roles: list[RoleName] | None = Field(None, description="Replaces every role granted.")

    @field_validator("disabled", "roles")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("leave the field out to keep it; it cannot be null")
        return value


# ---- API keys -----------------------------------------------------------------------------


def _check_scope(scope: str) -> str:
    if scope in ("mcp", ADMIN_SCOPE):
        return scope
    kind, sep, glob = scope.partition(":")
    if sep and kind in KINDS and glob:
        return scope
    raise ValueError(
        f"unknown scope {scope!r}: use 'mcp', 'admin', or 'tool:', 'resource:', 'prompt:' or "
        "'server:' followed by a glob"
    )


class Key(_Out):
    user: str = Field(description="The key's owner.")
    name: str = Field(description="What the key is for.")
    prefix: str = Field(description="The visible part that tells keys apart.")
    scopes: list[str] | None = Field(description="What the key may reach (null: not narrowed).")
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None


class KeyCreated(Key):
    token: str = Field(description="The key itself, shown this once: only its hash is stored.")


class KeyList(_Out):
    keys: list[Key] = Field(description="The keys, by user then age.")


class KeyQuery(_In):
    user: UserName | None = Field(None, description="Only this user's keys.")


class KeyCreate(_In):
    user: UserName = Field(description="The user the key acts as.")
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)] = Field(
        description="What the key is for ('laptop', 'ci')."
    )
    scopes: list[str] | None = Field(
        None,
        description="Narrow the key: 'mcp', 'admin', 'tool:<glob>', 'resource:<glob>', "
        "'prompt:<glob>', 'server:<glob>'. Leave out for a key not narrowed.",
    )
    expires_at: AwareDatetime | None = Field(
        None, description="When the key stops working (with a time zone)."
    )

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            for scope in value:
                _check_scope(scope)
        return value

    @field_validator("expires_at")
    @classmethod
    def _future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value <= datetime.now(UTC):
            raise ValueError("expires_at is in the past")
        return value


# ---- roles --------------------------------------------------------------------------------

RULES_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": {"$ref": "#/components/schemas/Rule"},
    "description": "The rules, in order: a matching deny beats every allow.",
}


class Role(_Out):
    name: str
    description: str
    rules: Annotated[list[dict[str, Any]], WithJsonSchema(RULES_SCHEMA)]
    source: Literal["stored", "config", "builtin"] = Field(
        description="stored: managed here. config: from the settings file, builtin: the "
        "built-in admin role (both read-only here; a stored role of the same name replaces "
        "either)."
    )
    created_at: datetime | None
    updated_at: datetime | None


class RoleList(_Out):
    roles: list[Role] = Field(description="Every role in effect, by name.")


class RolePut(_In):
    description: Annotated[str, StringConstraints(max_length=2000)] = ""
    rules: Annotated[list[dict[str, Any]], WithJsonSchema(RULES_SCHEMA)] = Field(
        default_factory=list
    )


class RoleDeleteQuery(_In):
    force: bool = Field(False, description="Delete it even while users hold it.")


# ---- secrets ------------------------------------------------------------------------------


class Secret(_Out):
    """A secret's metadata: its value is write-only and never returned."""

    owner: str
    scope: str
    name: str
    key_id: str = Field(description="The vault key that sealed it.")
    created_at: datetime
    updated_at: datetime


class SecretList(_Out):
    secrets: list[Secret]


class SecretQuery(_In):
    owner: SecretPart | None = Field(None, description="Only this owner's secrets.")
    scope: SecretPart | None = Field(None, description="Only secrets for this scope.")


class SecretPut(_In):
    value: SecretStr = Field(
        min_length=1, max_length=MAX_SECRET_BYTES, description="The value (write-only)."
    )


# ---- audit --------------------------------------------------------------------------------


class AuditQuery(_In):
    actor: str | None = Field(None, description="Exactly this user.")
    action: str | None = Field(None, description="Exactly this action: tools/call, admin.*.")
    outcome: Literal["ok", "error", "denied", "limited", "unauthenticated"] | None = None
    target: str | None = Field(None, description="Target, or a glob with * and ?.")
    since: datetime | None = Field(None, description="From this time (naive: UTC).")
    until: datetime | None = Field(None, description="Before this time (naive: UTC).")
    limit: int = Field(100, ge=1, le=1000, description="At most this many records.")
    after_seq: int | None = Field(None, ge=0, description="Records after this seq (paging).")
    order: Literal["asc", "desc"] = Field(
        "asc",
        description="asc: oldest first, paged with after_seq; desc: newest first, paged with "
        "before_seq.",
    )
    before_seq: int | None = Field(
        None, ge=1, description="Records before this seq (paging with order=desc)."
    )

    @model_validator(mode="after")
    def _paging(self) -> AuditQuery:
        if self.order == "desc" and self.after_seq is not None:
            raise ValueError("order=desc pages with before_seq, not after_seq")
        if self.order == "asc" and self.before_seq is not None:
            raise ValueError("before_seq pages with order=desc")
        return self


class AuditRecord(_Out):
    seq: int
    at: str = Field(description="UTC, ISO 8601.")
    actor: str
    actor_kind: str
    action: str
    target: str
    outcome: str
    latency_ms: float | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str


class AuditPage(_Out):
    records: list[AuditRecord]
    next_after_seq: int | None = Field(
        description="Pass as after_seq for the next page (null: this was the last)."
    )
    next_before_seq: int | None = Field(
        None,
        description="With order=desc: pass as before_seq for the next (older) page (null: "
        "this was the last).",
    )


class AuditVerification(_Out):
    ok: bool = Field(description="Whether every link of the hash chain holds.")
    records: int = Field(description="Records checked good.")
    first_bad_seq: int | None
    reason: str | None
    last_hash: str | None = Field(description="The head hash: keep it elsewhere as an anchor.")


# ---- tool pins ----------------------------------------------------------------------------


class ApprovedDefinition(_Out):
    digest: str = Field(description="SHA-256 of the definition's canonical JSON.")
    approved_at: datetime
    approved_by: str = Field(description="Who approved it ('first-contact': as first listed).")
    package: str | None = Field(description="runtime:package@version it was seen with.")
    definition: dict[str, Any] = Field(
        description="name, title, description, inputSchema, outputSchema, annotations."
    )


class ToolChange(_Out):
    tool: str = Field(description="The tool's name on its server.")
    change: Literal["changed", "new"] = Field(
        description="'changed': its definition differs from the approved one; 'new': it was "
        "not listed when the server's tools were approved."
    )
    held: bool = Field(
        description="Held back by this gateway now (pin: strict); false under pin: warn."
    )
    digest: str = Field(description="SHA-256 of the current definition: what approving pins.")
    first_seen_at: datetime
    last_seen_at: datetime
    package: str | None = Field(description="runtime:package@version it was seen with.")
    definition: dict[str, Any] = Field(description="The current definition.")
    approved: ApprovedDefinition | None = Field(
        description="The newest approved definition (null for a new tool)."
    )
    diff: list[str] = Field(description="What changed, one line each, for a person to read.")


class PinnedServer(_Out):
    server: str
    waiting: int = Field(description="How many of its tools wait for approval.")
    held: list[str] = Field(description="Those this gateway holds back now (pin: strict).")


class PinnedServers(_Out):
    servers: list[PinnedServer] = Field(description="Every server pinned so far, by name.")


class ToolChanges(_Out):
    server: str
    changes: list[ToolChange] = Field(description="Tools waiting for approval, by name.")


class ToolApprove(_In):
    tools: list[Annotated[str, StringConstraints(min_length=1, max_length=512)]] = Field(
        default_factory=list, description="The tools whose current definitions to approve."
    )
    all: bool = Field(False, description="Approve every tool waiting (instead of `tools`).")
    digests: dict[str, Annotated[str, StringConstraints(min_length=8, max_length=64)]] = Field(
        default_factory=dict,
        description="Optional: tool -> the digest (or a prefix of 8+ characters) that was "
        "reviewed; 409 if the tool changed again since.",
    )

    @model_validator(mode="after")
    def _one_way(self) -> ToolApprove:
        if self.all == bool(self.tools):
            raise ValueError("give `tools` or `all: true` (one of them)")
        return self


class ToolApproval(_Out):
    tool: str
    change: Literal["changed", "new"]
    digest: str = Field(description="The definition approved.")
    previous: str | None = Field(description="The approved definition it follows, if any.")


class ToolApprovals(_Out):
    server: str
    approved: list[ToolApproval]
