"""Signing in to the dashboard with the gateway's OpenID Connect provider.

The authorization code flow with PKCE (RFC 7636, ``S256``) against the provider of
``auth.jwt.oidc_issuer``, whose discovery document names the authorization and token endpoints
(the issuer it states must be exactly the configured one; endpoints must be https, or http on
loopback). The dashboard is the client ``ui.oidc_client_id``: public (PKCE alone) or, with
``ui.oidc_client_secret``, confidential (HTTP Basic at the token endpoint). With
``auth.resource_url`` set, both requests name it as the ``resource`` (RFC 8707), so the
provider issues the access token for this gateway.

The access token is then the session's credential, checked by the gateway's JWT verifier like
any bearer token (signature from the provider's keys, issuer, audience, expiry, roles claim):
the dashboard trusts nothing the token endpoint says that the verifier would not. The ID token
is not used, so no nonce is needed; ``state`` and the PKCE verifier live in a short-lived
``SameSite=Lax`` cookie scoped to the callback (the provider's redirect back is a cross-site
navigation, which a Lax cookie follows and a Strict one does not).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
from collections.abc import Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import quote_plus, urlencode, urlsplit

import orjson

from catalyst_mcp.errors import CatalystError
from catalyst_mcp.net.httpclient import HttpClient, HttpError
from catalyst_mcp.security.jwks import DISCOVERY_PATH, Fetcher, HttpFetcher, JwksError, check_url

__all__ = [
    "FLOW_COOKIE",
    "Flow",
    "OidcClient",
    "OidcError",
    "pkce_challenge",
    "read_flow",
]

FLOW_COOKIE = "catalyst_ui_oidc"
FLOW_SECONDS = 600  # time allowed between leaving for the provider and coming back
DISCOVERY_SECONDS = 3600.0
TIMEOUT_SECONDS = 10.0
MAX_BYTES = 256 * 1024


class OidcError(CatalystError):
    """The provider could not be used, or refused: the message says why (shown to the user;
    it never holds a token or the client secret)."""


def pkce_challenge(verifier: str) -> str:
    """The ``S256`` code challenge of a PKCE verifier."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class Flow:
    """One sign-in in progress: kept in the flow cookie until the provider sends the user
    back."""

    state: str
    verifier: str
    next: str

    @staticmethod
    def new(next_path: str) -> Flow:
        return Flow(secrets.token_urlsafe(24), secrets.token_urlsafe(48), next_path)

    def cookie_value(self) -> str:
        raw = orjson.dumps({"s": self.state, "v": self.verifier, "n": self.next})
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def read_flow(headers: Mapping[bytes, bytes]) -> Flow | None:
    """The sign-in in progress named by the flow cookie (None: none, or unreadable)."""
    raw = headers.get(b"cookie", b"").decode("latin-1")
    for part in raw.split(";"):
        name, sep, value = part.strip().partition("=")
        if not sep or name != FLOW_COOKIE or len(value) > 2048:
            continue
        try:
            data = orjson.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
        except (ValueError, orjson.JSONDecodeError):
            return None
        if isinstance(data, dict) and all(isinstance(data.get(k), str) for k in "svn"):
            return Flow(data["s"], data["v"], data["n"])
        return None
    return None


class OidcClient:
    """The dashboard as a client of one OpenID Connect provider."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        *,
        client_secret: str | None = None,
        scopes: list[str] | tuple[str, ...] = ("openid",),
        resource: str | None = None,
        fetch: Fetcher | None = None,
    ) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.client_secret = client_secret
        self.scopes = tuple(scopes)
        self.resource = resource
        self.fetch: Fetcher = fetch or HttpFetcher(timeout=TIMEOUT_SECONDS)
        self._document: dict[str, Any] | None = None
        self._fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def endpoints(self) -> tuple[str, str]:
        """The authorization and token endpoints (discovery read at most hourly)."""
        async with self._lock:
            if self._document is None or time.monotonic() - self._fetched_at > DISCOVERY_SECONDS:
                self._document = await self._discover()
                self._fetched_at = time.monotonic()
            document = self._document
        return document["authorization_endpoint"], document["token_endpoint"]

    async def _discover(self) -> dict[str, Any]:
        url = self.issuer.rstrip("/") + DISCOVERY_PATH
        try:
            answer = await self.fetch(url)
        except JwksError as exc:
            raise OidcError(f"the sign-in provider cannot be reached: {exc.message}") from None
        if answer.status != 200:
            raise OidcError(f"the sign-in provider's {url} answered HTTP {answer.status}")
        try:
            document = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            raise OidcError(f"the sign-in provider's {url} is not JSON") from None
        if not isinstance(document, dict) or document.get("issuer") != self.issuer:
            raise OidcError(f"{url} names another issuer than {self.issuer}")
        for name in ("authorization_endpoint", "token_endpoint"):
            endpoint = document.get(name)
            if not isinstance(endpoint, str):
                raise OidcError(f"{url} has no {name}")
            problem = check_url(endpoint)
            if problem is not None:
                raise OidcError(f"the {name} in {url} {problem}")
        methods = document.get("code_challenge_methods_supported")
        if isinstance(methods, list) and "S256" not in methods:
            raise OidcError(f"the sign-in provider at {self.issuer} does not support PKCE S256")
        return cast("dict[str, Any]", document)

    async def authorization_url(self, flow: Flow, redirect_uri: str) -> str:
        """Where to send the browser to sign in."""
        endpoint, _ = await self.endpoints()
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "scope": " ".join(self.scopes),
            "state": flow.state,
            "code_challenge": pkce_challenge(flow.verifier),
            "code_challenge_method": "S256",
        }
        if self.resource:
            params["resource"] = self.resource
        joiner = "&" if urlsplit(endpoint).query else "?"
        return endpoint + joiner + urlencode(params)

    async def exchange(self, code: str, flow: Flow, redirect_uri: str) -> str:
        """The access token for ``code`` (OidcError when the provider refuses)."""
        _, endpoint = await self.endpoints()
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "code_verifier": flow.verifier,
            "client_id": self.client_id,
        }
        if self.resource:
            form["resource"] = self.resource
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        if self.client_secret is not None:
            pair = f"{_form_quote(self.client_id)}:{_form_quote(self.client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode()
        status, body = await _post(endpoint, headers, urlencode(form).encode())
        try:
            answer = orjson.loads(body)
        except orjson.JSONDecodeError:
            answer = None
        if not isinstance(answer, dict):
            raise OidcError(f"the sign-in provider's token endpoint answered HTTP {status}")
        if status != 200:
            error = str(answer.get("error") or f"HTTP {status}")
            detail = answer.get("error_description")
            text = f"{error}: {detail}" if isinstance(detail, str) else error
            raise OidcError(f"the sign-in provider refused the code ({text[:300]})")
        token = answer.get("access_token")
        if not isinstance(token, str) or not token:
            raise OidcError("the sign-in provider's answer has no access_token")
        kind = answer.get("token_type")
        if isinstance(kind, str) and kind.lower() not in ("bearer", "dpop"):
            raise OidcError(f"the sign-in provider issued a {kind!r} token, not a bearer token")
        return token


def _form_quote(value: str) -> str:
    """RFC 6749 §2.3.1: the client id and secret are form-encoded inside Basic auth."""
    return quote_plus(value)


async def _post(url: str, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
    try:
        client = HttpClient(url, connect_timeout=TIMEOUT_SECONDS)
    except HttpError as exc:
        raise OidcError(f"the token endpoint {url} is not usable: {exc}") from None
    try:
        async with asyncio.timeout(TIMEOUT_SECONDS):
            response = await client.request("POST", headers, body, retry_stale=False)
            parts: list[bytes] = []
            size = 0
            async with aclosing(response.iter_chunks()) as chunks:  # type: ignore[type-var]
                async for chunk in chunks:
                    size += len(chunk)
                    if size > MAX_BYTES:
                        raise OidcError("the token endpoint answered too much")
                    parts.append(chunk)
            return response.status, b"".join(parts)
    except TimeoutError:
        raise OidcError(f"the token endpoint did not answer within {TIMEOUT_SECONDS:g}s") from None
    except HttpError as exc:
        raise OidcError(f"the token endpoint cannot be reached: {exc}") from None
    finally:
        await client.aclose()
