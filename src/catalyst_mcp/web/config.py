"""The ``ui`` section of the settings: the web dashboard at ``/ui`` (docs/dashboard.md).

Plain validated data; :mod:`catalyst_mcp.web.dashboard` builds the dashboard from it. The OIDC
client secret (for providers that do not take public clients) is a secret: hidden from
``repr`` and masked by ``catalyst config show``; give it from the environment.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["UiSettings"]


class UiSettings(BaseModel):
    """The web dashboard."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    enabled: bool = Field(
        True,
        description="Serve the web dashboard at `path`. Its pages need the same credentials as "
        "the REST API while auth is on (sign in with an API key, or with the OIDC provider "
        "when `oidc_client_id` is set).",
    )
    path: str = Field(
        "/ui",
        pattern=r"^/[A-Za-z0-9_-]+(?:/[A-Za-z0-9_-]+)*$",
        description="Where the dashboard is served (a path without a trailing '/').",
    )
    page_size: int = Field(
        50, ge=5, le=500, description="Rows per page in the tools and audit lists."
    )
    session_max_age_seconds: int = Field(
        43_200,
        ge=60,
        description="How long the browser keeps a sign-in (the session cookie's Max-Age); the "
        "credential behind it is checked on every page, so a revoked key or an expired token "
        "ends the session at once.",
    )
    oidc_client_id: str | None = Field(
        None,
        description="Sign in with the OpenID Connect provider of auth.jwt.oidc_issuer: this "
        "dashboard's client id there (authorization code flow with PKCE; register "
        "<public URL><path>/login/callback as its redirect URI). Unset: API keys only.",
    )
    oidc_client_secret: str | None = Field(
        None,
        repr=False,
        description="The client secret, for a provider that registers the dashboard as a "
        "confidential client (a public client with PKCE needs none). Give it from the "
        "environment: CATALYST_UI__OIDC_CLIENT_SECRET.",
    )
    oidc_scopes: list[str] = Field(
        default_factory=lambda: ["openid", "profile"],
        description="Scopes asked for at sign-in. The access token the provider issues is the "
        "dashboard's credential: it must be a JWT for this gateway's audience (auth.jwt), with "
        "the roles claim.",
    )
    public_url: str | None = Field(
        None,
        pattern=r"^https?://",
        description="The dashboard's public base URL (https://catalyst.example.com), for the "
        "OIDC redirect URI behind a proxy. Unset: taken from the request's Host.",
    )
