"""Authentication of REST requests: each kind, OAuth2 token caching and refetching, secret
references resolved per caller, and clear messages when a secret is missing."""

from __future__ import annotations

import asyncio
import base64
from typing import Any
from urllib.parse import parse_qs

import orjson
import pytest

from catalyst_mcp.context import CallContext, Identity
from catalyst_mcp.errors import PackError
from catalyst_mcp.packs.connectors.exchange import RestRequest, RestResponse
from catalyst_mcp.packs.connectors.restauth import (
    OAuth2ClientCredentials,
    SecretScope,
    make_authenticator,
)
from catalyst_mcp.packs.schema import RestAuth

ALICE = CallContext(era="modern", protocol_version="2026-07-28", identity=Identity("alice", "user"))
BOB = CallContext(era="modern", protocol_version="2026-07-28", identity=Identity("bob", "user"))
STORE = {("alice", "TOKEN"): "alice-token", ("bob", "TOKEN"): "bob-token", ("", "SHARED"): "sh"}


async def lookup(name: str, ctx: CallContext | None) -> str | None:
    user = ctx.identity.subject if ctx is not None else ""
    return STORE.get((user, name)) or STORE.get(("", name))


async def no_fetch(request: RestRequest) -> RestResponse:
    raise AssertionError("no token request expected")


async def apply(
    auth: dict[str, Any], ctx: CallContext | None = None, url: str = "https://api.example/x"
) -> tuple[dict[str, str], str, SecretScope]:
    authenticator = make_authenticator("api", RestAuth.model_validate(auth), no_fetch)
    scope = SecretScope("api", lookup, ctx)
    await scope.resolve(authenticator.secret_names)
    headers: dict[str, str] = {}
    url = await authenticator.apply(headers, url, scope)
    return headers, url, scope


async def test_bearer() -> None:
    headers, url, scope = await apply({"type": "bearer", "token": "tok-123"})
    assert headers == {"Authorization": "Bearer tok-123"}
    assert url == "https://api.example/x"
    assert "tok-123" in scope.secrets


async def test_basic() -> None:
    headers, _, scope = await apply({"type": "basic", "username": "ada", "password": "p:w ü"})
    credential = base64.b64encode("ada:p:w ü".encode()).decode()
    assert headers == {"Authorization": f"Basic {credential}"}
    assert "p:w ü" in scope.secrets
    assert credential in scope.secrets
    assert "ada" not in scope.secrets  # a user name is not a secret


async def test_api_key_in_a_header() -> None:
    headers, url, _ = await apply({"type": "api_key", "name": "X-Api-Key", "value": "k1"})
    assert headers == {"X-Api-Key": "k1"}
    assert url == "https://api.example/x"


async def test_api_key_in_the_query() -> None:
    auth = {"type": "api_key", "name": "api key", "value": "k/1&", "in": "query"}
    headers, url, scope = await apply(auth, url="https://api.example/x?a=1")
    assert headers == {}
    assert url == "https://api.example/x?a=1&api%20key=k%2F1%26"
    assert "k%2F1%26" in scope.secrets  # the encoded form is redacted too
    _, url, _ = await apply(auth)
    assert url == "https://api.example/x?api%20key=k%2F1%26"


async def test_secret_references_resolve_per_caller() -> None:
    auth = {"type": "bearer", "token": "${secret:TOKEN}"}
    assert (await apply(auth, ALICE))[0]["Authorization"] == "Bearer alice-token"
    assert (await apply(auth, BOB))[0]["Authorization"] == "Bearer bob-token"
    _, _, scope = await apply({"type": "basic", "username": "u", "password": "${secret:SHARED}"})
    assert "sh" in scope.secrets


async def test_a_missing_secret_says_so() -> None:
    auth = {"type": "bearer", "token": "${secret:TOKEN}"}
    with pytest.raises(
        PackError, match=r"^connection 'api': secret TOKEN is not set for this user$"
    ):
        await apply(auth, CallContext(era="modern", protocol_version="x"))


async def test_without_a_secrets_store_says_so() -> None:
    authenticator = make_authenticator(
        "api", RestAuth(type="bearer", token="${secret:TOKEN}"), no_fetch
    )
    scope = SecretScope("api", None, ALICE)
    with pytest.raises(PackError, match="needs the secrets store, and none is configured"):
        await scope.resolve(authenticator.secret_names)


async def test_a_failing_secrets_store_is_a_pack_error() -> None:
    async def broken(name: str, ctx: CallContext | None) -> str | None:
        raise RuntimeError("db down: password=hunter2")

    with pytest.raises(PackError) as info:
        await SecretScope("api", broken, ALICE).resolve(["TOKEN"])
    assert str(info.value) == "connection 'api': the secrets store could not read TOKEN"


async def test_a_secret_with_a_line_break_is_refused() -> None:
    STORE[("", "BAD")] = "x\r\nX-Evil: 1"
    try:
        with pytest.raises(PackError, match="line break"):
            await apply({"type": "bearer", "token": "${secret:BAD}"})
    finally:
        del STORE[("", "BAD")]


def test_scrub_replaces_every_form() -> None:
    scope = SecretScope("api", None, None)
    scope.carry("a b/c")
    text = "raw a b/c, quoted a%20b%2Fc, plus a+b%2Fc"
    assert scope.scrub(text) == "raw <redacted>, quoted <redacted>, plus <redacted>"


# ---- OAuth2 client credentials ------------------------------------------------------------


class TokenEndpoint:
    """A fake token endpoint: counts requests, hands out tok-1, tok-2, ..."""

    def __init__(self, expires_in: Any = 3600, status: int = 200, delay: float = 0) -> None:
        self.requests: list[RestRequest] = []
        self.expires_in = expires_in
        self.status = status
        self.delay = delay

    async def __call__(self, request: RestRequest) -> RestResponse:
        self.requests.append(request)
        await asyncio.sleep(self.delay)
        if self.status != 200:
            body = {"error": "invalid_client", "error_description": "bad secret sh"}
            return RestResponse(
                self.status, {"content-type": "application/json"}, orjson.dumps(body)
            )
        data: dict[str, Any] = {"access_token": f"tok-{len(self.requests)}", "token_type": "Bearer"}
        if self.expires_in is not None:
            data["expires_in"] = self.expires_in
        return RestResponse(200, {"content-type": "application/json"}, orjson.dumps(data))


OAUTH = {
    "type": "oauth2_client_credentials",
    "token_url": "https://auth.example/token",
    "client_id": "my client",
    "client_secret": "${secret:SHARED}",
    "scopes": ["read", "write"],
    "audience": "https://api.example",
}


def oauth(endpoint: TokenEndpoint) -> OAuth2ClientCredentials:
    authenticator = make_authenticator("api", RestAuth.model_validate(OAUTH), endpoint)
    assert isinstance(authenticator, OAuth2ClientCredentials)
    return authenticator


async def authorize(auth: OAuth2ClientCredentials, stale: str | None = None) -> str:
    scope = SecretScope("api", lookup, ALICE)
    await scope.resolve(auth.secret_names)
    headers: dict[str, str] = {}
    await auth.apply(headers, "https://api.example/x", scope, stale=stale)
    assert scope.token is not None and scope.token in scope.secrets
    return headers["Authorization"]


async def test_oauth2_token_request_follows_rfc_6749() -> None:
    endpoint = TokenEndpoint()
    assert await authorize(oauth(endpoint)) == "Bearer tok-1"
    (request,) = endpoint.requests
    assert request.method == "POST"
    assert request.url == "https://auth.example/token"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    credential = base64.b64encode(b"my+client:sh").decode()  # form-encoded, then Basic
    assert request.headers["Authorization"] == f"Basic {credential}"
    assert parse_qs(request.body.decode()) == {
        "grant_type": ["client_credentials"],
        "scope": ["read write"],
        "audience": ["https://api.example"],
    }
    assert "sh" in request.secrets and credential in request.secrets


async def test_oauth2_token_is_cached_until_shortly_before_expiry() -> None:
    endpoint = TokenEndpoint(expires_in=100)
    auth = oauth(endpoint)
    now = [1000.0]
    auth.clock = lambda: now[0]
    assert await authorize(auth) == "Bearer tok-1"
    now[0] += 80
    assert await authorize(auth) == "Bearer tok-1"
    now[0] += 11  # past 100 - 10% margin
    assert await authorize(auth) == "Bearer tok-2"
    assert len(endpoint.requests) == 2


async def test_oauth2_without_expires_in_is_kept_until_refused() -> None:
    endpoint = TokenEndpoint(expires_in=None)
    auth = oauth(endpoint)
    assert await authorize(auth) == "Bearer tok-1"
    assert await authorize(auth) == "Bearer tok-1"
    # the API answered 401 to tok-1: refetch once
    assert await authorize(auth, stale="tok-1") == "Bearer tok-2"
    # another caller that also saw tok-1 refused gets tok-2 without a new fetch
    assert await authorize(auth, stale="tok-1") == "Bearer tok-2"
    assert len(endpoint.requests) == 2


async def test_oauth2_one_fetch_at_a_time() -> None:
    endpoint = TokenEndpoint(delay=0.05)
    auth = oauth(endpoint)
    results = await asyncio.gather(*(authorize(auth) for _ in range(10)))
    assert set(results) == {"Bearer tok-1"}
    assert len(endpoint.requests) == 1


async def test_oauth2_token_endpoint_refusal_is_clear() -> None:
    with pytest.raises(PackError) as info:
        await authorize(oauth(TokenEndpoint(status=401)))
    assert str(info.value) == (
        "connection 'api': the token endpoint auth.example answered HTTP 401 Unauthorized: "
        "invalid_client - bad secret <redacted>"
    )


async def test_oauth2_answer_without_a_token() -> None:
    async def empty(request: RestRequest) -> RestResponse:
        return RestResponse(200, {}, b"{}")

    auth = make_authenticator("api", RestAuth.model_validate(OAUTH), empty)
    with pytest.raises(PackError, match="answered without an access_token"):
        await authorize(auth)  # type: ignore[arg-type]
