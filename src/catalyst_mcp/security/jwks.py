"""The identity provider's signing keys (a JWKS), fetched over HTTP and cached.

Keys come from ``jwks_url``, or from the ``jwks_uri`` of the OpenID Connect discovery document
at ``<oidc_issuer>/.well-known/openid-configuration`` (whose ``issuer`` must be exactly the
configured one). Each usable key is parsed once per allowed algorithm when the set arrives, so
verifying a token with a cached key touches neither the network nor a parser.

The cache:

- keeps a set for the ``Cache-Control: max-age`` the provider sends, bounded to
  ``[min_ttl, max_ttl]`` (``default_ttl`` without one);
- refetches when a token names a key it does not hold (the provider rotated its keys), but at
  most once per ``refetch_interval`` seconds, whatever tokens arrive: made-up key ids cannot
  make the gateway hammer the provider;
- lets concurrent callers share one fetch in flight;
- keeps serving the keys it has when a refetch fails (logged), and waits ``refetch_interval``
  before trying again.

Only signature keys of the allowed asymmetric algorithms are kept: ``use`` other than ``sig``,
``key_ops`` without ``verify``, symmetric (``oct``) keys, private keys and keys below PyJWT's
minimum length (RSA < 2048 bits) are skipped. The fetch goes through our own
:class:`~catalyst_mcp.net.httpclient.HttpClient` over https (plain http only to a
loopback address, for tests and local providers).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import ssl
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Mapping
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import urlsplit

import orjson
from jwt import PyJWK
from jwt.exceptions import PyJWTError

from catalyst_mcp.errors import CatalystError, Unauthenticated
from catalyst_mcp.net.httpclient import HttpClient, HttpError, HttpResponse

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "Fetched",
    "Fetcher",
    "HttpFetcher",
    "JwksCache",
    "JwksError",
    "cache_ttl",
    "check_url",
    "parse_jwks",
]

log = logging.getLogger("catalyst.security.jwt")

# algorithm -> (kty, crv) of the keys it verifies with
_KEY_TYPES: dict[str, tuple[str, str | None]] = {
    "RS256": ("RSA", None),
    "RS384": ("RSA", None),
    "RS512": ("RSA", None),
    "PS256": ("RSA", None),
    "PS384": ("RSA", None),
    "PS512": ("RSA", None),
    "ES256": ("EC", "P-256"),
    "ES384": ("EC", "P-384"),
    "ES512": ("EC", "P-521"),
    "EdDSA": ("OKP", "Ed25519"),
}
ASYMMETRIC_ALGORITHMS = frozenset(_KEY_TYPES)
MAX_KEYS = 64  # keys read from one set; a real provider publishes a handful
MAX_BYTES = 512 * 1024
DISCOVERY_PATH = "/.well-known/openid-configuration"
_PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "k")
_MAX_AGE = re.compile(r"(?:^|[,\s])max-age\s*=\s*\"?(\d+)", re.IGNORECASE)


class JwksError(CatalystError):
    """The signing keys could not be fetched or read; the message says why (for the log)."""


@dataclass(frozen=True, slots=True)
class Fetched:
    """One HTTP answer: status, headers (names in lower case) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


# url -> its answer; raises JwksError when there is none (tests pass their own)
Fetcher = Callable[[str], Awaitable[Fetched]]


def check_url(url: str) -> str | None:
    """Why ``url`` may not serve keys or discovery (None if it may): https, or http to a
    loopback address."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return "is not a valid URL"
    if not host or parts.scheme not in ("http", "https"):
        return "must be an https:// URL"
    if parts.fragment:
        return "must not have a #fragment"
    if parts.scheme == "http" and not _loopback(host):
        return "must use https (plain http is allowed only to a loopback address)"
    return None


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class HttpFetcher:
    """GETs a JSON document with a fresh :class:`HttpClient` (fetches are minutes apart, so a
    pool would only hold idle connections). Redirects are not followed."""

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.timeout = timeout
        self.ssl_context = ssl_context
        self.max_bytes = max_bytes

    async def __call__(self, url: str) -> Fetched:
        try:
            client = HttpClient(url, connect_timeout=self.timeout, ssl_context=self.ssl_context)
        except HttpError as exc:
            raise JwksError(f"cannot fetch {url}: {exc}") from exc
        try:
            async with asyncio.timeout(self.timeout):
                response = await client.request("GET", {"Accept": "application/json"})
                try:
                    body = await self._read(url, response)
                except BaseException:
                    response.aclose_nowait()
                    raise
                return Fetched(response.status, response.headers, body)
        except TimeoutError as exc:
            raise JwksError(f"{url} did not answer within {self.timeout:g}s") from exc
        except HttpError as exc:
            raise JwksError(f"cannot fetch {url}: {exc}") from exc
        finally:
            await client.aclose()

    async def _read(self, url: str, response: HttpResponse) -> bytes:
        """The body, refused as soon as it is known to exceed ``max_bytes``."""
        length = response.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_bytes:
            raise JwksError(f"{url} answered more than {self.max_bytes} bytes")
        parts: list[bytes] = []
        size = 0
        stream = cast("AsyncGenerator[bytes, None]", response.iter_chunks())
        async with aclosing(stream):
            async for chunk in stream:
                size += len(chunk)
                if size > self.max_bytes:
                    raise JwksError(f"{url} answered more than {self.max_bytes} bytes")
                parts.append(chunk)
        return b"".join(parts)


def cache_ttl(
    cache_control: str | None, *, default: float, minimum: float, maximum: float
) -> float:
    """How long to keep a key set: its ``max-age`` (``no-store``/``no-cache``: as short as
    allowed), or ``default`` without one, bounded to ``[minimum, maximum]``."""
    ttl = default
    if cache_control:
        lowered = cache_control.lower()
        match = _MAX_AGE.search(lowered)
        if "no-store" in lowered or "no-cache" in lowered:
            ttl = minimum
        elif match is not None:
            ttl = float(match.group(1))
    return max(minimum, min(maximum, ttl))


@dataclass(frozen=True, slots=True)
class _Key:
    kid: str | None
    alg: str
    jwk: PyJWK


def parse_jwks(body: bytes, algorithms: Iterable[str]) -> list[_Key]:
    """The usable keys of a JWKS document, one entry per (key, allowed algorithm) pair.

    Keys that are not for signatures, not of an allowed algorithm, private, malformed or too
    weak are skipped; :class:`JwksError` if the document itself is not a JWKS.
    """
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise JwksError("the key set is not JSON") from exc
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise JwksError("the key set has no 'keys' list")
    allowed = [alg for alg in algorithms if alg in _KEY_TYPES]
    keys: list[_Key] = []
    for entry in entries[:MAX_KEYS]:
        if not isinstance(entry, dict) or not _for_signatures(entry):
            continue
        kid = entry.get("kid")
        if kid is not None and not isinstance(kid, str):
            continue
        for alg in allowed:
            kty, crv = _KEY_TYPES[alg]
            if entry.get("kty") != kty or (crv is not None and entry.get("crv") != crv):
                continue
            if entry.get("alg") not in (None, alg):
                continue
            try:
                jwk = PyJWK(entry, alg)
            except (PyJWTError, KeyError, ValueError, TypeError) as exc:
                log.warning("skipping signing key %r (%s): %s", kid, alg, exc)
                continue
            weak = jwk.Algorithm.check_key_length(jwk.key)
            if weak:
                log.warning("skipping signing key %r (%s): %s", kid, alg, weak)
                continue
            keys.append(_Key(kid, alg, jwk))
    return keys


def _for_signatures(entry: dict[str, Any]) -> bool:
    if entry.get("use", "sig") != "sig":
        return False
    ops = entry.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        return False
    if any(member in entry for member in _PRIVATE_MEMBERS):
        log.warning(
            "skipping signing key %r: the key set publishes private key material", entry.get("kid")
        )
        return False
    return True


class JwksCache:
    """The signing keys of one identity provider (see the module notes for the policy).

    ``clock`` is monotonic seconds and ``fetch`` the HTTP GET; tests replace both.
    """

    def __init__(
        self,
        *,
        jwks_url: str | None = None,
        oidc_issuer: str | None = None,
        algorithms: Iterable[str] = ("RS256", "ES256"),
        fetch: Fetcher | None = None,
        clock: Callable[[], float] = time.monotonic,
        default_ttl: float = 300.0,
        min_ttl: float = 60.0,
        max_ttl: float = 86400.0,
        refetch_interval: float = 30.0,
    ) -> None:
        if (jwks_url is None) == (oidc_issuer is None):
            raise ValueError("give exactly one of jwks_url and oidc_issuer")
        self.oidc_issuer = oidc_issuer
        self.algorithms = tuple(algorithms)
        self.fetch: Fetcher = fetch or HttpFetcher()
        self.clock = clock
        self.default_ttl = default_ttl
        self.min_ttl = min(min_ttl, max_ttl)
        self.max_ttl = max_ttl
        self.refetch_interval = refetch_interval
        self.fetches = 0  # attempts made (a figure for tests and /ready)
        self._jwks_url = jwks_url
        self._index: dict[tuple[str | None, str], PyJWK] = {}
        self._by_alg: dict[str, list[PyJWK]] = {}
        self._loaded = False
        self._expires = 0.0
        self._last_attempt: float | None = None
        self._inflight: asyncio.Task[None] | None = None

    @property
    def jwks_url(self) -> str | None:
        """Where the keys come from (after discovery, when configured by issuer)."""
        return self._jwks_url

    @property
    def key_ids(self) -> tuple[str, ...]:
        """The ids of the keys held now."""
        return tuple(dict.fromkeys(kid for kid, _ in self._index if kid is not None))

    def cached(self, kid: str | None, alg: str) -> PyJWK | None:
        """The held key for a token's ``kid`` and ``alg`` (no I/O). Without a ``kid``, the one
        key of that algorithm, if the set holds exactly one."""
        if kid is None:
            candidates = self._by_alg.get(alg, ())
            return candidates[0] if len(candidates) == 1 else None
        return self._index.get((kid, alg))

    async def key_for(self, kid: str | None, alg: str) -> PyJWK:
        """The key to verify a token with; :class:`Unauthenticated` when there is none."""
        if not self._loaded or self.clock() >= self._expires:
            await self._refresh_if_allowed()
            if not self._loaded:
                raise Unauthenticated("signing keys are unavailable")
        key = self.cached(kid, alg)
        if key is not None:
            return key
        # a key we do not hold: the provider may have rotated; look again (rate-limited)
        await self._refresh_if_allowed()
        key = self.cached(kid, alg)
        if key is not None:
            return key
        if kid is None:
            raise Unauthenticated("token does not name its signing key")
        raise Unauthenticated("unknown signing key")

    async def refresh(self) -> None:
        """Fetch the keys now (joining a fetch in flight); :class:`JwksError` if it fails,
        the keys held so far staying in use."""
        task = self._inflight
        if task is None:
            self._last_attempt = self.clock()
            self.fetches += 1
            task = self._inflight = asyncio.get_running_loop().create_task(self._fetch())
            task.add_done_callback(self._fetched)
        await asyncio.shield(task)

    async def _refresh_if_allowed(self) -> bool:
        """Refresh unless one was tried within ``refetch_interval``; whether it was tried and
        succeeded."""
        last = self._last_attempt
        may = (
            self._inflight is not None
            or last is None
            or self.clock() - last >= self.refetch_interval
        )
        if not may:
            return False
        try:
            await self.refresh()
        except JwksError as exc:
            kept = "keeping the keys held" if self._loaded else "no keys held"
            log.warning("cannot refresh the signing keys (%s): %s", kept, exc.message)
            return False
        return True

    def _fetched(self, task: asyncio.Task[None]) -> None:
        if self._inflight is task:
            self._inflight = None
        if not task.cancelled():
            task.exception()  # retrieved here, so no waiter leaving early leaks a warning

    async def _fetch(self) -> None:
        url = self._jwks_url or await self._discover()
        answer = await self._get(url)
        if answer.status != 200:
            raise JwksError(f"{url} answered HTTP {answer.status}")
        keys = parse_jwks(answer.body, self.algorithms)
        if not keys:
            raise JwksError(f"{url} holds no usable key for {', '.join(self.algorithms)}")
        index: dict[tuple[str | None, str], PyJWK] = {}
        by_alg: dict[str, list[PyJWK]] = {}
        for key in keys:
            index.setdefault((key.kid, key.alg), key.jwk)
            by_alg.setdefault(key.alg, []).append(key.jwk)
        ttl = cache_ttl(
            answer.headers.get("cache-control"),
            default=self.default_ttl,
            minimum=self.min_ttl,
            maximum=self.max_ttl,
        )
        self._index, self._by_alg = index, by_alg
        self._loaded = True
        self._expires = self.clock() + ttl
        log.info("loaded %d signing keys from %s for %gs", len(keys), url, ttl)

    async def _get(self, url: str) -> Fetched:
        try:
            return await self.fetch(url)
        except JwksError:
            raise
        except Exception as exc:  # a fetcher's own failure, whatever it is, is a failed fetch
            raise JwksError(f"cannot fetch {url}: {type(exc).__name__}") from exc

    async def _discover(self) -> str:
        """The ``jwks_uri`` of the issuer's OpenID Connect discovery document."""
        issuer = self.oidc_issuer
        assert issuer is not None
        url = issuer.rstrip("/") + DISCOVERY_PATH
        answer = await self._get(url)
        if answer.status != 200:
            raise JwksError(f"{url} answered HTTP {answer.status}")
        try:
            document = orjson.loads(answer.body)
        except orjson.JSONDecodeError as exc:
            raise JwksError(f"{url} is not JSON") from exc
        if not isinstance(document, dict):
            raise JwksError(f"{url} is not a discovery document")
        if document.get("issuer") != issuer:
            raise JwksError(f"{url} names another issuer than {issuer}")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise JwksError(f"{url} has no jwks_uri")
        problem = check_url(jwks_uri)
        if problem is not None:
            raise JwksError(f"the jwks_uri in {url} {problem}")
        self._jwks_url = jwks_uri
        return jwks_uri

    async def aclose(self) -> None:
        """Stop a fetch in flight (nothing else is held open between fetches)."""
        task, self._inflight = self._inflight, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, JwksError):
                await task
