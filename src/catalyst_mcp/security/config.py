"""The security sections of the settings: ``auth``, ``rbac``, ``rate_limits`` and ``audit``.

Plain validated data (docs/configuration.md lists every field); :mod:`catalyst_mcp.security.
access` builds the working objects from it. Secret values (the HS256 secret, the Redis URL's
password) are best given as environment overrides (``CATALYST_AUTH__JWT__HS256_SECRET``), never
committed in a file; they are hidden from ``repr``.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from catalyst_mcp.errors import ConfigError
from catalyst_mcp.security.jwt import JwtSettings
from catalyst_mcp.security.rbac import RoleSpec, load_roles

__all__ = [
    "AuditSettings",
    "AuthSettings",
    "JwtConfig",
    "RateLimit",
    "RateLimitSettings",
    "RbacSettings",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class JwtConfig(_Model):
    """Bearer JWTs: HS256 with a local secret and/or RS256/ES256 from an OIDC provider."""

    issuer: str | None = Field(
        None, description="The iss claim tokens must carry (default: oidc_issuer)."
    )
    audience: list[str] = Field(
        default_factory=list,
        description="This gateway as tokens name it in aud (RFC 8707). Default: auth.resource_url.",
    )
    hs256_secret: str | None = Field(
        None,
        repr=False,
        description="Shared secret for HS256 tokens, at least 32 bytes. Give it from the "
        "environment: CATALYST_AUTH__JWT__HS256_SECRET.",
    )
    jwks_url: str | None = Field(None, description="The provider's signing keys (JWKS URL).")
    oidc_issuer: str | None = Field(
        None, description="An OpenID Connect issuer whose discovery document names the JWKS."
    )
    algorithms: list[str] = Field(
        default_factory=lambda: ["RS256", "ES256"],
        description="Asymmetric algorithms accepted with JWKS keys.",
    )
    leeway_seconds: float = Field(30.0, ge=0, description="Clock skew allowed on exp/nbf/iat.")
    roles_claim: str = Field("roles", description="Claim with the caller's roles (dotted: nested).")
    subject_claim: str = Field("sub", description="Claim with the caller's stable user name.")
    ca_file: str | None = Field(None, description="PEM bundle trusted for the provider's TLS.")

    def to_settings(self, default_audience: str | None) -> JwtSettings:
        audience = self.audience or ([default_audience] if default_audience else [])
        settings = JwtSettings(
            audience=tuple(audience),
            issuer=self.issuer,
            hs256_secret=self.hs256_secret,
            jwks_url=self.jwks_url,
            oidc_issuer=self.oidc_issuer,
            algorithms=tuple(self.algorithms),
            leeway_seconds=self.leeway_seconds,
            roles_claim=self.roles_claim,
            subject_claim=self.subject_claim,
            ca_file=self.ca_file,
        )
        settings.validate("auth.jwt")
        return settings


class AuthSettings(_Model):
    """Who may connect (docs/security.md)."""

    enabled: bool = Field(
        False,
        description="Require credentials (an API key or a bearer JWT) on every MCP and admin "
        "request. Off: every caller is the local anonymous user with anonymous_roles, which "
        "is only allowed on a loopback address (see gateway.allow_non_loopback).",
    )
    api_keys: bool = Field(True, description="Accept API keys (`catalyst keys create`).")
    jwt: JwtConfig | None = Field(None, description="Accept bearer JWTs checked like this.")
    resource_url: str | None = Field(
        None,
        description="The public URL of the MCP endpoint (e.g. https://mcp.example.com/mcp): "
        "the resource of the Protected Resource Metadata (RFC 9728) and the default JWT "
        "audience.",
    )
    authorization_servers: list[str] = Field(
        default_factory=list,
        description="OAuth authorization server issuer URLs clients should get tokens from "
        "(published in the Protected Resource Metadata).",
    )
    scopes_supported: list[str] = Field(
        default_factory=list, description="Scopes published in the Protected Resource Metadata."
    )
    anonymous_roles: list[str] = Field(
        default_factory=lambda: ["admin"],
        description="Roles of the local anonymous user: every HTTP caller while auth is off, "
        "and always the stdio transport and the CLI's in-process client (local users).",
    )

    @model_validator(mode="after")
    def _check(self) -> AuthSettings:
        if self.enabled and self.authorization_servers and not self.resource_url:
            raise ValueError(
                "auth.resource_url is required with authorization_servers: it is the resource "
                "the Protected Resource Metadata describes and tokens must name (e.g. "
                "https://mcp.example.com/mcp)"
            )
        return self

    key_cache_seconds: float = Field(
        30.0,
        ge=0,
        description="How long a checked API key is trusted before the database is asked "
        "again: a key revoked on another instance stops working within this time.",
    )


class RbacSettings(_Model):
    """Roles and their rules (docs/security.md); roles stored with `catalyst roles` add to them."""

    default: Literal["allow", "deny"] = Field("deny", description="What no matching rule decides.")
    roles: dict[str, RoleSpec] = Field(
        default_factory=dict, description="Roles by name: {description, rules: [...]}."
    )

    @field_validator("roles", mode="before")
    @classmethod
    def _roles(cls, value: Any) -> Any:
        try:
            return load_roles(value or {}, source="rbac.roles")
        except ConfigError as exc:  # located by the settings loader like any other problem
            raise ValueError("; ".join(p.message for p in exc.problems)) from None


class RateLimit(_Model):
    """A token bucket: ``rate_per_second`` on average, up to ``burst`` at once."""

    rate_per_second: float = Field(gt=0, description="Calls per second on average.")
    burst: int = Field(ge=1, description="Calls allowed at once after a quiet period.")


class RateLimitSettings(_Model):
    """Call rate limits per user, per user and tool, per user and server or pack."""

    backend: Literal["memory", "redis"] = Field(
        "memory",
        description="memory: per gateway process. redis: shared exactly by every instance.",
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0", repr=False, description="Redis for the redis backend."
    )
    per_user: RateLimit | None = Field(None, description="All calls of one user.")
    per_tool: RateLimit | None = Field(None, description="One user's calls of one tool.")
    per_server: RateLimit | None = Field(
        None, description="One user's calls to one server or pack."
    )

    @property
    def active(self) -> bool:
        return any((self.per_user, self.per_tool, self.per_server))


class AuditSettings(_Model):
    """The hash-chained audit trail (`catalyst audit verify|search|export`)."""

    enabled: bool = Field(True, description="Record calls, denials and admin changes.")
    record_values: list[str] = Field(
        default_factory=list,
        description="Argument names whose values are recorded in clear; every other argument "
        "is recorded as a keyed digest only.",
    )
    durability: Literal["buffered", "strict"] = Field(
        "buffered",
        description="buffered: a response does not wait for its record, which is committed "
        "in the background within about 50 ms (a killed gateway loses the records not yet "
        "committed). strict: every response waits until its record is committed durably "
        "(concurrent calls share one commit); a call whose record cannot be committed gets "
        "an error instead of its result.",
    )
    max_pending: int = Field(
        10_000,
        ge=1,
        description="At most this many records wait uncommitted: when they do (the database "
        "is slow or down), a new call waits for room before it runs, and a refusal's record "
        "is dropped (and counted).",
    )
    max_wait_seconds: float = Field(
        10.0,
        gt=0,
        description="How long a call waits for the audit trail: for room under max_pending "
        "(then it is refused, not run), or in strict mode for its record's commit (then the "
        "client gets an error saying the call ran but its record is not committed).",
    )
