"""Authentication of REST requests, and the secrets one call carries.

* :class:`SecretScope` resolves ``${secret:NAME}`` references for one call (through the
  provider's lookup, with the caller's context, each name once) and remembers every secret
  value the request carries, resolved or derived (a Basic credential, an access token), so
  recorders can redact them and no error message ever shows one.
* One :class:`Authenticator` per connection applies its ``auth``: ``bearer``, ``basic``,
  ``api_key`` (header or query) or ``oauth2_client_credentials``. The latter POSTs to the
  token endpoint with the client's credentials as HTTP Basic (RFC 6749 §2.3.1), caches the
  access token per client until shortly before ``expires_in``, lets one fetch run at a time,
  and refetches once when the API answers 401 to a token it issued.

Every auth value is a secret, whether it was a reference or (after ``${env:...}`` expansion by
the loader) a literal; so is every other value the loader expanded from ``${env:...}`` in the
connection (the connector carries them into each call's scope, :meth:`SecretScope.carry`).
"""

from __future__ import annotations

import asyncio
import base64
import functools
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import quote, quote_plus, urlencode, urlsplit

import orjson

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import PackError
from catalyst_mcp.packs.connectors.exchange import RestRequest, RestResponse
from catalyst_mcp.packs.connectors.restbuild import USER_AGENT, compile_template, render
from catalyst_mcp.packs.connectors.restbuild import secret_names as _secret_names
from catalyst_mcp.packs.schema import RestAuth

__all__ = [
    "MIN_SECRET_LENGTH",
    "Authenticator",
    "SecretLookup",
    "SecretScope",
    "TokenFetch",
    "make_authenticator",
]

SecretLookup = Callable[[str, CallContext | None], Awaitable[str | None]]
TokenFetch = Callable[[RestRequest], Awaitable[RestResponse]]
REDACTED = "<redacted>"
MIN_SECRET_LENGTH = 4  # a shorter known secret is not scrubbed (it would match everywhere)
MAX_CACHED_TOKENS = 1000  # clients (distinct credentials) whose tokens are kept
EXPIRY_MARGIN = 30.0  # seconds before expires_in when a token is refetched (10% if shorter)


class SecretScope:
    """The secrets of one call."""

    __slots__ = ("_lookup", "connection", "ctx", "resolved", "token", "values")

    def __init__(self, connection: str, lookup: SecretLookup | None, ctx: CallContext | None):
        self.connection = connection
        self._lookup = lookup
        self.ctx = ctx
        self.resolved: dict[str, str] = {}
        self.values: list[str] = []  # every secret value the request carries, and its variants
        self.token: str | None = None  # the OAuth2 access token the request was sent with

    async def resolve(self, names: Iterable[str]) -> dict[str, str]:
        """The value of each ``${secret:NAME}`` (for this call's user)."""
        for name in names:
            if name in self.resolved:
                continue
            if self._lookup is None:
                raise PackError(
                    f"connection '{self.connection}': ${{secret:{name}}} needs the secrets "
                    "store, and none is configured"
                )
            try:
                value = await self._lookup(name, self.ctx)
            except PackError:
                raise
            except Exception as exc:
                raise PackError(
                    f"connection '{self.connection}': the secrets store could not read {name}"
                ) from exc
            if value is None:
                raise PackError(
                    f"connection '{self.connection}': secret {name} is not set for this user"
                )
            self.resolved[name] = value
            self.carry(value)
        return self.resolved

    def carry(self, value: str) -> None:
        """Remember a secret value the request carries (and its percent-encoded forms)."""
        if value:
            values = self.values
            for form in _forms(value):
                if form not in values:
                    values.append(form)

    @property
    def secrets(self) -> tuple[str, ...]:
        return tuple(self.values)

    def scrub(self, text: str) -> str:
        """``text`` with every carried secret value replaced by ``<redacted>``."""
        for value in sorted(self.values, key=len, reverse=True):
            text = text.replace(value, REDACTED)
        return text


@functools.lru_cache(maxsize=1024)
def _forms(value: str) -> tuple[str, ...]:
    """A secret as sent: itself, percent-encoded (a query, a path) and form-encoded."""
    return tuple(dict.fromkeys((value, quote(value, safe=""), quote_plus(value))))


def _header_safe(connection: str, what: str, value: str) -> str:
    if "\r" in value or "\n" in value or "\0" in value:
        raise PackError(f"connection '{connection}': the {what} contains a line break")
    if not value.isascii():
        try:
            value.encode("latin-1")
        except UnicodeEncodeError:
            raise PackError(f"connection '{connection}': the {what} must be Latin-1 text") from None
    return value


class Authenticator:
    """No authentication; the base of the others."""

    secret_names: frozenset[str] = frozenset()
    refreshable = False  # a 401 may be cured by fetching a new token
    query_key: str | None = None  # the query parameter carrying the credential (URL-encoded)

    def __init__(self, connection: str) -> None:
        self.connection = connection

    def _value(self, node: Any, scope: SecretScope, what: str, secret: bool) -> str:
        value = render(node, {}, scope.resolved)
        assert isinstance(value, str)
        if secret:
            scope.carry(value)
        return _header_safe(self.connection, what, value)

    async def apply(
        self, headers: dict[str, str], url: str, scope: SecretScope, *, stale: str | None = None
    ) -> str:
        """Add the credentials to ``headers`` (in place) or to ``url`` (returned)."""
        return url


class _Fields(Authenticator):
    """An authenticator whose values may hold ``${secret:NAME}`` references."""

    def __init__(self, connection: str, **fields: str | None) -> None:
        super().__init__(connection)
        self.fields = {
            k: compile_template(v or "", params=False, secrets=True) for k, v in fields.items()
        }
        self.secret_names = frozenset().union(*(_secret_names(v) for v in self.fields.values()))

    def value(self, key: str, scope: SecretScope, *, secret: bool = True) -> str:
        """The value of ``key``; a user name or client id is not a secret unless it came
        from a ``${secret:...}`` reference (resolving it already carried it)."""
        return self._value(self.fields[key], scope, f"auth {key}", secret)


class Bearer(_Fields):
    async def apply(
        self, headers: dict[str, str], url: str, scope: SecretScope, *, stale: str | None = None
    ) -> str:
        headers["Authorization"] = "Bearer " + self.value("token", scope)
        return url


class Basic(_Fields):
    async def apply(
        self, headers: dict[str, str], url: str, scope: SecretScope, *, stale: str | None = None
    ) -> str:
        pair = f"{self.value('username', scope, secret=False)}:{self.value('password', scope)}"
        credential = base64.b64encode(pair.encode()).decode("ascii")
        scope.carry(credential)
        headers["Authorization"] = "Basic " + credential
        return url


class ApiKey(_Fields):
    def __init__(self, connection: str, name: str, value: str, where: str) -> None:
        super().__init__(connection, value=value)
        self.name = name
        self.query_key = quote(name, safe="") if where == "query" else None

    async def apply(
        self, headers: dict[str, str], url: str, scope: SecretScope, *, stale: str | None = None
    ) -> str:
        key = self.value("value", scope)
        if self.query_key is None:
            headers[self.name] = key
            return url
        sep = "&" if "?" in url else "?"
        return f"{url}{sep}{self.query_key}={quote(key, safe='')}"


@dataclass(frozen=True, slots=True)
class _Token:
    value: str
    expires: float  # time.monotonic(); inf when the endpoint gave no expires_in


class OAuth2ClientCredentials(_Fields):
    """OAuth2 client-credentials grant; ``fetch`` sends the token request (the connector's
    exchange, so the SSRF guard, timeouts and recordings apply to it too)."""

    refreshable = True
    clock: Callable[[], float] = staticmethod(time.monotonic)  # replaceable (tests)

    def __init__(self, connection: str, auth: RestAuth, fetch: TokenFetch) -> None:
        super().__init__(connection, client_id=auth.client_id, client_secret=auth.client_secret)
        self.token_url = auth.token_url or ""
        self.host = urlsplit(self.token_url).hostname or self.token_url
        form = {"grant_type": "client_credentials"}
        if auth.scopes:
            form["scope"] = " ".join(auth.scopes)
        if auth.audience:
            form["audience"] = auth.audience
        self.form = urlencode(form).encode()
        self.fetch = fetch
        self._tokens: dict[tuple[str, str], _Token] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def apply(
        self, headers: dict[str, str], url: str, scope: SecretScope, *, stale: str | None = None
    ) -> str:
        client = (
            self.value("client_id", scope, secret=False),
            self.value("client_secret", scope),
        )
        token = await self.token(client, scope, stale)
        scope.carry(token)
        scope.token = token
        headers["Authorization"] = "Bearer " + _header_safe(self.connection, "access token", token)
        return url

    async def token(self, client: tuple[str, str], scope: SecretScope, stale: str | None) -> str:
        """The cached access token of ``client``, fetched if absent, expiring or ``stale``."""
        entry = self._tokens.get(client)
        if entry is not None and entry.expires > self.clock() and entry.value != stale:
            return entry.value
        lock = self._locks.get(client)
        if lock is None:
            lock = self._locks[client] = asyncio.Lock()
        async with lock:
            entry = self._tokens.get(client)
            if entry is None or entry.expires <= self.clock() or entry.value == stale:
                entry = await self._fetch(client, scope)
                self._tokens[client] = entry
                while len(self._tokens) > MAX_CACHED_TOKENS:
                    oldest = next(iter(self._tokens))
                    del self._tokens[oldest]
                    self._locks.pop(oldest, None)
            return entry.value

    async def _fetch(self, client: tuple[str, str], scope: SecretScope) -> _Token:
        pair = f"{quote_plus(client[0])}:{quote_plus(client[1])}"  # RFC 6749 §2.3.1
        credential = base64.b64encode(pair.encode()).decode("ascii")
        scope.carry(credential)
        headers = {
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Content-Type": "application/x-www-form-urlencoded",
            "Authorization": "Basic " + credential,
        }
        request = RestRequest("POST", self.token_url, headers, self.form, secrets=scope.secrets)
        started = self.clock()
        response = await self.fetch(request)
        data = _json_object(response.body)
        token = data.get("access_token") if data is not None else None
        if not 200 <= response.status < 300 or not isinstance(token, str) or not token:
            raise PackError(self._failure(response, data, scope))
        lifetime = data.get("expires_in") if data is not None else None
        expires = float("inf")
        if isinstance(lifetime, int | float) and not isinstance(lifetime, bool) and lifetime > 0:
            expires = started + lifetime - min(EXPIRY_MARGIN, lifetime * 0.1)
        return _Token(token, expires)

    def _failure(
        self, response: RestResponse, data: dict[str, Any] | None, scope: SecretScope
    ) -> str:
        where = f"connection '{self.connection}': the token endpoint {self.host}"
        if not 200 <= response.status < 300:
            phrase = _phrase(response.status)
            detail = ""
            if data is not None:
                error, description = data.get("error"), data.get("error_description")
                parts = [
                    " ".join(scope.scrub(p).split())[:300]  # scrubbed before it is cut
                    for p in (error, description)
                    if isinstance(p, str) and p
                ]
                detail = ": " + " - ".join(parts) if parts else ""
            return f"{where} answered HTTP {response.status} {phrase}{detail}".rstrip()
        return f"{where} answered without an access_token"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def make_authenticator(connection: str, auth: RestAuth | None, fetch: TokenFetch) -> Authenticator:
    """The authenticator of a connection's ``auth`` (the schema checked its fields)."""
    if auth is None:
        return Authenticator(connection)
    if auth.type == "bearer":
        return Bearer(connection, token=auth.token)
    if auth.type == "basic":
        return Basic(connection, username=auth.username, password=auth.password)
    if auth.type == "api_key":
        return ApiKey(connection, auth.name or "", auth.value or "", auth.in_)
    return OAuth2ClientCredentials(connection, auth, fetch)
