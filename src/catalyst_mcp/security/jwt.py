"""Bearer JWT validation: a token in, an :class:`~catalyst_mcp.context.Identity` out.

Two kinds of signing key, never mixed up:

- ``HS256`` with a shared ``hs256_secret`` (at least 32 bytes), for a gateway that issues its
  own tokens or shares a secret with one service;
- asymmetric algorithms (``RS256`` and ``ES256`` unless configured otherwise) with keys from
  the identity provider's JWKS (:mod:`catalyst_mcp.security.jwks`).

The token header's ``alg`` picks the kind, and each kind verifies only with its own keys: an
``HS256`` token is refused unless a secret is configured (so a provider's *public* key can
never be used as an HMAC secret: the classic algorithm-confusion forgery), an ``RS256`` token
is checked only against JWKS keys of the RSA type, and ``none`` is never accepted.

After the signature, the claims: ``exp`` is required, ``nbf`` and ``iat`` are honoured, each
with ``leeway_seconds`` for clock skew; ``iss`` must be the configured issuer (the
``oidc_issuer`` unless ``issuer`` says otherwise); ``aud`` must name this server (RFC 8707
audience binding, as the MCP authorization spec requires: a token minted for another resource
is refused even if the same provider signed it). URL audiences are compared with the scheme and
host in lower case and without a bare trailing ``/``; others exactly.

The caller becomes ``Identity(kind="user", via="jwt")``:

- ``subject`` from ``subject_claim`` (default ``sub``), with no fallback: ``sub`` is the one
  claim a provider promises never to reassign, while ``preferred_username`` or ``email`` may
  change hands. A deployment that wants readable names sets ``subject_claim`` to one of those
  explicitly, knowing its provider.
- ``roles`` from ``roles_claim`` (default ``roles``): a list of strings or a space-separated
  string; a dotted name (``realm_access.roles``) reaches into nested objects when no claim
  has that exact name.
- ``scopes`` from ``scope`` (space-separated, RFC 8693/9068) or ``scp`` (string or list);
  None when the token carries neither (no narrowing).

Every refusal is :class:`~catalyst_mcp.errors.Unauthenticated` with a short reason ("token
expired", "unknown signing key", ...) and never the token itself.
"""

from __future__ import annotations

import base64
import re
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import orjson
from cryptography.exceptions import InvalidSignature
from jwt.algorithms import Algorithm, get_default_algorithms

from catalyst_mcp.context import Identity
from catalyst_mcp.errors import ConfigError, ConfigProblem, Unauthenticated
from catalyst_mcp.security.jwks import ASYMMETRIC_ALGORITHMS, HttpFetcher, JwksCache, check_url

__all__ = ["MAX_TOKEN_CHARS", "JwtSettings", "JwtVerifier"]

MAX_TOKEN_CHARS = 16 * 1024
RESERVED_SUBJECTS = frozenset({"*", "anonymous"})
MIN_SECRET_BYTES = 32
MAX_LEEWAY_SECONDS = 300.0
_SHOWN_ALG = re.compile(r"[A-Za-z0-9]{1,10}")
_BASE64URL = re.compile(rb"[A-Za-z0-9_-]*")
_MAX_SUBJECT = 256
_MAX_ROLES = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class JwtSettings:
    """How bearer tokens are checked. Plain data; :meth:`validate` says what is wrong."""

    audience: str | Sequence[str]
    """This server's identifier(s) as tokens name it in ``aud`` (its canonical MCP URL)."""
    issuer: str | None = None
    """The ``iss`` tokens must carry; defaults to ``oidc_issuer``. None: not checked."""
    hs256_secret: str | None = field(default=None, repr=False)
    """Shared secret for HS256 tokens (>= 32 bytes). None: HS256 tokens are refused."""
    jwks_url: str | None = None
    """Where the provider publishes its signing keys (JWKS)."""
    oidc_issuer: str | None = None
    """An OpenID Connect issuer: its discovery document names the JWKS (instead of jwks_url)."""
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    """Asymmetric algorithms accepted with JWKS keys."""
    leeway_seconds: float = 30.0
    """Clock skew allowed on exp, nbf and iat."""
    roles_claim: str = "roles"
    """Claim holding the caller's roles (list or space-separated; dotted for nested)."""
    subject_claim: str = "sub"
    """Claim holding the caller's stable user name."""
    jwks_cache_seconds: float = 300.0
    """How long keys are kept when the provider sends no Cache-Control max-age."""
    jwks_refetch_seconds: float = 30.0
    """Least time between two fetches of the keys (an unknown kid waits for it)."""
    ca_file: str | None = None
    """PEM bundle trusted for the provider's TLS certificate (default: the system's)."""
    timeout_seconds: float = 10.0
    """Time allowed for one fetch of discovery or keys."""

    @property
    def audiences(self) -> tuple[str, ...]:
        if isinstance(self.audience, str):
            return (self.audience,)
        return tuple(self.audience)

    def problems(self) -> list[str]:
        """Everything wrong with these settings, one message each (empty when valid)."""
        found: list[str] = []
        audiences = self.audiences
        if not audiences or not all(isinstance(a, str) and a.strip() for a in audiences):
            found.append("audience must name this server (its canonical URL)")
        jwks = self.jwks_url is not None or self.oidc_issuer is not None
        if self.hs256_secret is None and not jwks:
            found.append("set hs256_secret, jwks_url or oidc_issuer")
        if self.jwks_url is not None and self.oidc_issuer is not None:
            found.append("set jwks_url or oidc_issuer, not both")
        secret = self.hs256_secret
        if secret is not None and len(secret.encode("utf-8")) < MIN_SECRET_BYTES:
            found.append(f"hs256_secret must be at least {MIN_SECRET_BYTES} bytes")
        for name in ("jwks_url", "oidc_issuer"):
            url = getattr(self, name)
            problem = check_url(url) if url is not None else None
            if problem is not None:
                found.append(f"{name} {problem}")
        bad = [a for a in self.algorithms if a not in ASYMMETRIC_ALGORITHMS]
        if bad:
            found.append(
                f"algorithms may only name {', '.join(sorted(ASYMMETRIC_ALGORITHMS))} "
                f"(not {', '.join(map(repr, bad))}; HS256 is enabled by hs256_secret)"
            )
        elif jwks and not self.algorithms:
            found.append("algorithms must name at least one algorithm for JWKS keys")
        if not 0 <= self.leeway_seconds <= MAX_LEEWAY_SECONDS:
            found.append(f"leeway_seconds must be between 0 and {MAX_LEEWAY_SECONDS:g}")
        for name in ("roles_claim", "subject_claim"):
            if not getattr(self, name):
                found.append(f"{name} must not be empty")
        for name in ("jwks_cache_seconds", "jwks_refetch_seconds", "timeout_seconds"):
            if getattr(self, name) <= 0:
                found.append(f"{name} must be positive")
        return found

    def validate(self, where: str = "auth.jwt") -> None:
        """Raise :class:`ConfigError` listing every problem (never the secret)."""
        found = self.problems()
        if found:
            raise ConfigError([ConfigProblem(where, None, message) for message in found])


class JwtVerifier:
    """Checks bearer tokens against :class:`JwtSettings`. ``clock`` is Unix seconds."""

    def __init__(
        self,
        settings: JwtSettings,
        *,
        jwks: JwksCache | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        settings.validate()
        self.settings = settings
        self.clock = clock
        self.issuer = settings.issuer or settings.oidc_issuer
        self.audiences = frozenset(_canonical(a) for a in settings.audiences)
        self.algorithms = frozenset(settings.algorithms)
        self.leeway = settings.leeway_seconds
        # PyJWT's algorithms check signatures; the compact form and every claim are read here
        # (once per token, against our clock)
        self._hmac = get_default_algorithms()["HS256"]
        secret = settings.hs256_secret
        self._secret = secret.encode("utf-8") if secret is not None else None
        if jwks is None and (settings.jwks_url or settings.oidc_issuer):
            jwks = JwksCache(
                jwks_url=settings.jwks_url,
                oidc_issuer=settings.oidc_issuer,
                algorithms=settings.algorithms,
                fetch=HttpFetcher(
                    timeout=settings.timeout_seconds, ssl_context=_ssl_context(settings)
                ),
                default_ttl=settings.jwks_cache_seconds,
                refetch_interval=settings.jwks_refetch_seconds,
            )
        self.jwks = jwks

    def __repr__(self) -> str:
        return f"JwtVerifier(issuer={self.issuer!r}, audiences={sorted(self.audiences)!r})"

    async def verify(self, token: str) -> Identity:
        """The caller a valid token names; :class:`Unauthenticated` with the reason otherwise."""
        if not isinstance(token, str) or not token:
            raise Unauthenticated("no bearer token")
        if len(token) > MAX_TOKEN_CHARS:
            raise Unauthenticated("token is too large")
        header, signing_input, payload, signature = _split(token)
        alg = header.get("alg")
        kid = header.get("kid")
        if not isinstance(alg, str) or (kid is not None and not isinstance(kid, str)):
            raise Unauthenticated("token is malformed")
        if "crit" in header or header.get("b64", True) is not True:
            raise Unauthenticated("token header is not supported")  # RFC 7515 4.1.11, RFC 7797
        algorithm: Algorithm
        key: Any
        if alg == "HS256" and self._secret is not None:
            algorithm, key = self._hmac, self._secret
        elif alg in self.algorithms and self.jwks is not None:
            jwk = await self.jwks.key_for(kid, alg)
            algorithm, key = jwk.Algorithm, jwk.key
        else:
            shown = f" {alg!r}" if _SHOWN_ALG.fullmatch(alg) else ""
            raise Unauthenticated(f"token algorithm{shown} is not allowed")
        try:
            valid = algorithm.verify(signing_input, key, signature)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise Unauthenticated("token signature is invalid") from exc
        if not valid:
            raise Unauthenticated("token signature is invalid")
        try:
            claims = orjson.loads(payload)
        except orjson.JSONDecodeError as exc:
            raise Unauthenticated("token claims are malformed") from exc
        if not isinstance(claims, dict):
            raise Unauthenticated("token claims are malformed")
        return self._identity(claims)

    def _identity(self, claims: dict[str, Any]) -> Identity:
        self._check_times(claims)
        if self.issuer is not None and claims.get("iss") != self.issuer:
            raise Unauthenticated("token issuer is not trusted")
        self._check_audience(claims.get("aud"))
        subject = _claim(claims, self.settings.subject_claim)
        if not isinstance(subject, str) or not subject.strip() or len(subject) > _MAX_SUBJECT:
            raise Unauthenticated("token has no subject")
        if subject in RESERVED_SUBJECTS:  # the shared owner of secrets, the local user
            raise Unauthenticated(f"token subject {subject!r} is reserved")
        roles = _strings(_claim(claims, self.settings.roles_claim))
        return Identity(
            subject=subject,
            kind="user",
            roles=tuple(dict.fromkeys(roles[:_MAX_ROLES])),
            scopes=_scopes(claims),
            via="jwt",
        )

    def _check_times(self, claims: dict[str, Any]) -> None:
        now, leeway = self.clock(), self.leeway
        exp = claims.get("exp")
        if exp is None:
            raise Unauthenticated("token has no expiry")
        if not _number(exp):
            raise Unauthenticated("token expiry is malformed")
        if now >= exp + leeway:
            raise Unauthenticated("token expired")
        nbf = claims.get("nbf")
        if nbf is not None:
            if not _number(nbf):
                raise Unauthenticated("token nbf is malformed")
            if now + leeway < nbf:
                raise Unauthenticated("token is not valid yet")
        iat = claims.get("iat")
        if iat is not None:
            if not _number(iat):
                raise Unauthenticated("token iat is malformed")
            if iat > now + leeway:
                raise Unauthenticated("token was issued in the future")

    def _check_audience(self, aud: object) -> None:
        if aud is None:
            raise Unauthenticated("token has no audience")
        named = [aud] if isinstance(aud, str) else aud
        if not isinstance(named, list) or not all(isinstance(a, str) for a in named):
            raise Unauthenticated("token audience is malformed")
        if not any(_canonical(a) in self.audiences for a in named):
            raise Unauthenticated("token audience is not this server")

    async def aclose(self) -> None:
        if self.jwks is not None:
            await self.jwks.aclose()


def _ssl_context(settings: JwtSettings) -> ssl.SSLContext | None:
    if settings.ca_file is None:
        return None
    try:
        return ssl.create_default_context(cafile=settings.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            [
                ConfigProblem(
                    "auth.jwt",
                    None,
                    f"ca_file: cannot load {settings.ca_file}: {exc.strerror or exc}",
                )
            ]
        ) from exc


def _segment(data: bytes) -> bytes:
    """One base64url segment, strictly: unpadded, canonical (no stray bits), alphabet only."""
    if len(data) % 4 == 1 or not _BASE64URL.fullmatch(data):
        raise ValueError("not base64url")
    decoded = base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))
    if base64.urlsafe_b64encode(decoded).rstrip(b"=") != data:
        raise ValueError("not canonical base64url")
    return decoded


def _split(token: str) -> tuple[dict[str, Any], bytes, bytes, bytes]:
    """(header, signing input, payload, signature) of a compact JWS; 'malformed' otherwise."""
    try:
        raw = token.encode("ascii")
        head, payload, signature = raw.split(b".")
        header = orjson.loads(_segment(head))
        parts = (header, head + b"." + payload, _segment(payload), _segment(signature))
    except (UnicodeEncodeError, ValueError) as exc:  # JSONDecodeError is a ValueError
        raise Unauthenticated("token is malformed") from exc
    if not isinstance(header, dict):
        raise Unauthenticated("token is malformed")
    return parts


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _canonical(audience: str) -> str:
    """A URL audience with its scheme and host in lower case and no bare trailing '/'."""
    try:
        parts = urlsplit(audience)
    except ValueError:
        return audience
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return audience
    path = "" if parts.path == "/" else parts.path
    return parts._replace(
        scheme=parts.scheme.lower(), netloc=parts.netloc.lower(), path=path
    ).geturl()


def _claim(claims: dict[str, Any], name: str) -> Any:
    """``claims[name]``, or for a dotted name absent as such, the nested value it points to."""
    if name in claims or "." not in name:
        return claims.get(name)
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _strings(value: object) -> list[str]:
    """A claim as a list of strings: a list (non-strings dropped) or a space-separated string."""
    if isinstance(value, str):
        return value.split()
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v]
    return []


def _scopes(claims: dict[str, Any]) -> frozenset[str] | None:
    if "scope" not in claims and "scp" not in claims:
        return None
    return frozenset(_strings(claims.get("scope")) + _strings(claims.get("scp")))
