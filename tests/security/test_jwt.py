"""Bearer JWT validation: HS256 with a shared secret, RS256/ES256 with keys from a real
loopback identity provider (OIDC discovery + JWKS), key rotation, refetch rate limiting,
and every way a token is refused. Clocks are injected; nothing sleeps."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt import PyJWS
from jwt import encode as jwt_encode
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from catalyst_mcp.context import Identity
from catalyst_mcp.errors import ConfigError, Unauthenticated
from catalyst_mcp.security.jwks import (
    Fetched,
    JwksCache,
    JwksError,
    cache_ttl,
    check_url,
    parse_jwks,
)
from catalyst_mcp.security.jwt import JwtSettings, JwtVerifier
from tests.certs import certificate, write_pem
from tests.conftest import free_port
from tests.packs.connectors.apiserver import ApiServer, Reply, Seen, json_reply

NOW = 1_700_000_000.0
AUD = "https://mcp.example.com/mcp"
ISS = "https://idp.example.com"
SECRET = "an-hs256-secret-that-is-long-enough-0123"
DROP = object()
DISCOVERY = "/.well-known/openid-configuration"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "sub": "alice",
        "aud": AUD,
        "iss": ISS,
        "exp": NOW + 300,
        "iat": NOW - 10,
        "roles": ["admin", "dev"],
        "scope": "tools:read tools:call",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not DROP}


def hs256(
    payload: dict[str, Any], secret: str = SECRET, headers: dict[str, Any] | None = None
) -> str:
    return jwt_encode(payload, secret, algorithm="HS256", headers=headers)


def forge(header: dict[str, Any], payload: Any, key: bytes | None = None) -> str:
    """A token put together by hand: alg none (no key) or an HMAC over ``key``."""
    signing_input = f"{b64(orjson.dumps(header))}.{b64(orjson.dumps(payload))}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest() if key else b""
    return f"{signing_input}.{b64(signature)}"


def hs_verifier(**settings: Any) -> JwtVerifier:
    config: dict[str, Any] = {"audience": AUD, "issuer": ISS, "hs256_secret": SECRET, **settings}
    return JwtVerifier(JwtSettings(**config), clock=lambda: NOW)


async def refused(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(Unauthenticated) as info:
        await verifier.verify(token)
    message = str(info.value)
    assert token not in message or not token
    assert info.value.http_status == 401
    return message


# ---- HS256 ---------------------------------------------------------------------------------


async def test_hs256_token_becomes_an_identity() -> None:
    identity = await hs_verifier().verify(hs256(claims()))
    assert identity == Identity(
        subject="alice",
        kind="user",
        roles=("admin", "dev"),
        scopes=frozenset({"tools:read", "tools:call"}),
        via="jwt",
    )


async def test_wrong_secret() -> None:
    token = hs256(claims(), secret="another-secret-that-is-long-enough-012345")
    assert await refused(hs_verifier(), token) == "token signature is invalid"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"exp": NOW - 31}, "token expired"),
        ({"exp": DROP}, "token has no expiry"),
        ({"exp": "tomorrow"}, "token expiry is malformed"),
        ({"exp": True}, "token expiry is malformed"),
        ({"nbf": NOW + 31}, "token is not valid yet"),
        ({"nbf": "soon"}, "token nbf is malformed"),
        ({"iat": NOW + 31}, "token was issued in the future"),
        ({"iat": [1]}, "token iat is malformed"),
        ({"aud": "https://other.example.com/mcp"}, "token audience is not this server"),
        ({"aud": ["https://other.example.com", "api"]}, "token audience is not this server"),
        ({"aud": DROP}, "token has no audience"),
        ({"aud": 7}, "token audience is malformed"),
        ({"aud": [AUD, 7]}, "token audience is malformed"),
        ({"iss": "https://evil.example.com"}, "token issuer is not trusted"),
        ({"iss": DROP}, "token issuer is not trusted"),
        ({"sub": DROP}, "token has no subject"),
        ({"sub": ""}, "token has no subject"),
        ({"sub": 42}, "token has no subject"),
        ({"sub": "x" * 300}, "token has no subject"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
async def test_claims_are_checked(changes: dict[str, Any], reason: str) -> None:
    assert await refused(hs_verifier(), hs256(claims(**changes))) == reason


@pytest.mark.parametrize(
    "changes",
    [
        {"exp": NOW - 29},  # within leeway
        {"nbf": NOW + 29},
        {"iat": NOW + 29},
        {"aud": ["https://other.example.com", AUD]},
        {"aud": "HTTPS://MCP.EXAMPLE.COM/mcp"},  # scheme and host are case-insensitive
        {"exp": NOW + 1.5, "nbf": NOW - 0.5},
    ],
)
async def test_claims_that_pass(changes: dict[str, Any]) -> None:
    assert (await hs_verifier().verify(hs256(claims(**changes)))).subject == "alice"


async def test_root_audience_ignores_a_bare_trailing_slash() -> None:
    verifier = hs_verifier(audience=["https://mcp.example.com"])
    identity = await verifier.verify(hs256(claims(aud="https://mcp.example.com/")))
    assert identity.subject == "alice"
    # a path is not normalised away
    token = hs256(claims(aud="https://mcp.example.com/mcp"))
    assert await refused(verifier, token) == "token audience is not this server"


async def test_no_issuer_configured_means_no_issuer_check() -> None:
    verifier = hs_verifier(issuer=None)
    assert (await verifier.verify(hs256(claims(iss=DROP)))).subject == "alice"


async def test_leeway_zero() -> None:
    verifier = hs_verifier(leeway_seconds=0)
    assert await refused(verifier, hs256(claims(exp=NOW))) == "token expired"


async def test_subject_roles_and_scopes_from_other_claims() -> None:
    verifier = hs_verifier(subject_claim="preferred_username", roles_claim="realm_access.roles")
    token = hs256(
        claims(
            preferred_username="bob",
            realm_access={"roles": ["ops", "ops", 7]},
            roles=DROP,
            scope=DROP,
            scp=["a", "b"],
        )
    )
    identity = await verifier.verify(token)
    assert identity.subject == "bob"
    assert identity.roles == ("ops",)
    assert identity.scopes == frozenset({"a", "b"})


async def test_roles_claim_with_dots_in_its_name_and_as_a_string() -> None:
    name = "https://example.com/roles"
    verifier = hs_verifier(roles_claim=name)
    identity = await verifier.verify(hs256(claims(**{name: "a b"}, scope=DROP)))
    assert identity.roles == ("a", "b")
    assert identity.scopes is None  # no scope claim: no narrowing


async def test_missing_roles_claim_means_no_roles() -> None:
    identity = await hs_verifier().verify(hs256(claims(roles=DROP, scope="")))
    assert identity.roles == ()
    assert identity.scopes == frozenset()


async def test_alg_none_is_refused() -> None:
    token = forge({"alg": "none", "typ": "JWT"}, claims())
    assert await refused(hs_verifier(), token) == "token algorithm 'none' is not allowed"
    token = forge({"alg": "None"}, claims())
    assert await refused(hs_verifier(), token) == "token algorithm 'None' is not allowed"


async def test_asymmetric_token_is_refused_when_only_hs256_is_configured(rsa_key: Any) -> None:
    token = jwt_encode(claims(), rsa_key, algorithm="RS256")
    assert await refused(hs_verifier(), token) == "token algorithm 'RS256' is not allowed"


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "....",
        "a.b.c.d.e",
        b64(b'{"alg":"HS256"}') + ".!!!." + b64(b"sig"),
        b64(b"[1]") + "." + b64(b"{}") + ".",
        b64(b'{"alg": 5}') + "." + b64(b"{}") + ".",
        b64(b'{"alg": "HS256", "kid": 5}') + "." + b64(b"{}") + ".",
        "Bearer " + hs256(claims()),
    ],
)
async def test_garbage_is_malformed(token: str) -> None:
    reason = await refused(hs_verifier(), token)
    assert reason in (
        "token is malformed",
        "no bearer token",
        "token signature is invalid",
        "token header is not supported",
    )


async def test_huge_token_is_refused_before_parsing() -> None:
    assert await refused(hs_verifier(), "a" * 20_000) == "token is too large"


async def test_claims_that_are_not_an_object() -> None:
    token = PyJWS().encode(b"[1, 2]", SECRET.encode(), algorithm="HS256")
    assert await refused(hs_verifier(), token) == "token claims are malformed"
    token = PyJWS().encode(b"not json", SECRET.encode(), algorithm="HS256")
    assert await refused(hs_verifier(), token) == "token claims are malformed"


async def test_critical_header_extensions_are_refused() -> None:
    token = hs256(claims(), headers={"crit": ["exp-ext"], "exp-ext": 1})
    assert await refused(hs_verifier(), token) == "token header is not supported"


# ---- settings ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({}, "set hs256_secret, jwks_url or oidc_issuer"),
        ({"hs256_secret": "short"}, "at least 32 bytes"),
        ({"jwks_url": "https://a/jwks", "oidc_issuer": "https://a"}, "not both"),
        ({"jwks_url": "http://idp.example.com/jwks"}, "jwks_url must use https"),
        ({"oidc_issuer": "idp.example.com"}, "oidc_issuer must be an https:// URL"),
        ({"jwks_url": "https://a/j", "algorithms": ("HS256",)}, "HS256 is enabled by hs256_secret"),
        ({"jwks_url": "https://a/j", "algorithms": ("none",)}, "not 'none'"),
        ({"jwks_url": "https://a/j", "algorithms": ()}, "at least one algorithm"),
        ({"hs256_secret": SECRET, "audience": ""}, "audience must name this server"),
        ({"hs256_secret": SECRET, "audience": []}, "audience must name this server"),
        ({"hs256_secret": SECRET, "leeway_seconds": 1000}, "leeway_seconds"),
        ({"hs256_secret": SECRET, "roles_claim": ""}, "roles_claim must not be empty"),
        ({"hs256_secret": SECRET, "jwks_refetch_seconds": 0}, "jwks_refetch_seconds"),
    ],
)
def test_bad_settings(settings: dict[str, Any], message: str) -> None:
    config: dict[str, Any] = {"audience": AUD, **settings}
    with pytest.raises(ConfigError, match=message) as info:
        JwtVerifier(JwtSettings(**config))
    assert all(p.file == "auth.jwt" for p in info.value.problems)


def test_secret_is_never_shown() -> None:
    settings = JwtSettings(audience=AUD, hs256_secret=SECRET)
    assert SECRET not in repr(settings)
    assert SECRET not in repr(JwtVerifier(settings))
    short = "tiny-secret"
    with pytest.raises(ConfigError) as info:
        JwtSettings(audience=AUD, hs256_secret=short).validate()
    assert short not in str(info.value)


def test_unreadable_ca_file(tmp_path: Path) -> None:
    settings = JwtSettings(audience=AUD, jwks_url="https://a/j", ca_file=str(tmp_path / "no.pem"))
    with pytest.raises(ConfigError, match="ca_file"):
        JwtVerifier(settings)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("https://idp.example.com/jwks", None),
        ("http://127.0.0.1:8080/jwks", None),
        ("http://[::1]/jwks", None),
        ("http://localhost/jwks", None),
        ("http://idp.example.com/jwks", "must use https"),
        ("ftp://idp.example.com/jwks", "https://"),
        ("https://idp.example.com/jwks#x", "fragment"),
        ("https://idp.example.com:99999/", "not a valid URL"),
    ],
)
def test_check_url(url: str, problem: str | None) -> None:
    found = check_url(url)
    assert found is None if problem is None else (found is not None and problem in found)


# ---- keys ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def rsa_key2() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def rsa_jwk(key: rsa.RSAPrivateKey, kid: str | None, **extra: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = dict(RSAAlgorithm.to_jwk(key.public_key(), as_dict=True))
    if kid is not None:
        jwk["kid"] = kid
    return {**jwk, **extra}


def ec_jwk(key: ec.EllipticCurvePrivateKey, kid: str, **extra: Any) -> dict[str, Any]:
    jwk: dict[str, Any] = dict(ECAlgorithm.to_jwk(key.public_key(), as_dict=True))
    return {**jwk, "kid": kid, **extra}


def jwks_body(*keys: Any) -> bytes:
    return orjson.dumps({"keys": list(keys)})


def test_parse_jwks_keeps_only_usable_signature_keys(
    rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    private = dict(RSAAlgorithm.to_jwk(rsa_key, as_dict=True), kid="private")
    body = jwks_body(
        rsa_jwk(rsa_key, "r1", use="sig", alg="RS256"),
        rsa_jwk(rsa_key, "r-any"),  # no alg: usable with every allowed RSA algorithm
        rsa_jwk(rsa_key, "enc", use="enc"),
        rsa_jwk(rsa_key, "ops", key_ops=["encrypt"]),
        rsa_jwk(rsa_key, "ps", alg="PS256"),  # not an allowed algorithm
        rsa_jwk(weak, "weak"),
        ec_jwk(ec_key, "e1"),
        ec_jwk(ec_key, "e-wrong-curve", crv="P-384"),
        {"kty": "oct", "k": b64(b"k" * 32), "kid": "oct"},
        {"kty": "RSA", "kid": "broken", "n": "!!", "e": "AQAB"},
        private,
        {"kid": 7, "kty": "RSA"},
        "not a key",
    )
    keys = parse_jwks(body, ["RS256", "RS512", "ES256"])
    assert sorted((k.kid, k.alg) for k in keys) == [
        ("e1", "ES256"),
        ("r-any", "RS256"),
        ("r-any", "RS512"),
        ("r1", "RS256"),
    ]


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"keys": {}}', b"{}"])
def test_parse_jwks_refuses_what_is_not_a_key_set(body: bytes) -> None:
    with pytest.raises(JwksError):
        parse_jwks(body, ["RS256"])


@pytest.mark.parametrize(
    ("header", "ttl"),
    [
        (None, 300),
        ("", 300),
        ("public, max-age=120", 120),
        ('max-age="600", must-revalidate', 600),
        ("s-maxage=900", 300),
        ("max-age=5", 60),  # bounded below
        ("max-age=999999999", 86400),  # and above
        ("no-store", 60),
        ("no-cache, max-age=3600", 60),
        ("Max-Age=100", 100),
    ],
)
def test_cache_ttl(header: str | None, ttl: float) -> None:
    assert cache_ttl(header, default=300, minimum=60, maximum=86400) == ttl


def test_cache_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        JwksCache()
    with pytest.raises(ValueError, match="exactly one"):
        JwksCache(jwks_url="https://a/j", oidc_issuer="https://a")


# ---- a real identity provider on loopback --------------------------------------------------


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Idp:
    """OIDC discovery and a JWKS the test changes as it goes, on a real loopback server."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self.keys: list[dict[str, Any]] = []
        self.status = 200
        self.cache_control: str | None = None
        self.claimed_issuer: str | None = None
        self.delay = 0.0
        self.server = ApiServer({DISCOVERY: self._discovery, "/jwks": self._jwks}, ssl_context)

    @property
    def issuer(self) -> str:
        return self.server.url

    @property
    def jwks_url(self) -> str:
        return f"{self.server.url}/jwks"

    def hits(self, path: str = "/jwks") -> int:
        return len(self.server.seen(path))

    async def _discovery(self, seen: Seen) -> Reply:
        issuer = self.claimed_issuer or self.issuer
        return json_reply({"issuer": issuer, "jwks_uri": self.jwks_url})

    async def _jwks(self, seen: Seen) -> Reply:
        if self.delay:
            await asyncio.sleep(self.delay)
        if self.status != 200:
            return json_reply({"error": "down"}, self.status)
        headers = {"Cache_Control": self.cache_control} if self.cache_control else {}
        return json_reply({"keys": self.keys}, 200, **headers)


@pytest_asyncio.fixture
async def idp() -> AsyncIterator[Idp]:
    provider = Idp()
    async with provider.server.running():
        yield provider


def jwks_verifier(idp: Idp, clock: Clock, *, discovery: bool = True, **cache: Any) -> JwtVerifier:
    source: dict[str, Any] = (
        {"oidc_issuer": idp.issuer} if discovery else {"jwks_url": idp.jwks_url}
    )
    settings = JwtSettings(audience=AUD, issuer=idp.issuer, **source)
    jwks = JwksCache(**source, algorithms=settings.algorithms, clock=clock, **cache)
    return JwtVerifier(settings, jwks=jwks, clock=lambda: NOW)


def signed(idp: Idp, key: Any, alg: str, kid: str | None, **changes: Any) -> str:
    headers = {"kid": kid} if kid is not None else None
    return jwt_encode(claims(iss=idp.issuer, **changes), key, algorithm=alg, headers=headers)


@pytest.mark.network
async def test_rs256_and_es256_through_oidc_discovery(
    idp: Idp, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    idp.keys = [rsa_jwk(rsa_key, "r1", alg="RS256", use="sig"), ec_jwk(ec_key, "e1")]
    verifier = jwks_verifier(idp, Clock())
    for _ in range(5):
        rs = await verifier.verify(signed(idp, rsa_key, "RS256", "r1"))
        es = await verifier.verify(signed(idp, ec_key, "ES256", "e1", sub="bob"))
        assert (rs.subject, rs.via, rs.kind) == ("alice", "jwt", "user")
        assert es.subject == "bob"
    # one discovery and one key fetch, then no network per call
    assert (idp.hits(DISCOVERY), idp.hits()) == (1, 1)
    assert verifier.jwks is not None and verifier.jwks.jwks_url == idp.jwks_url
    assert verifier.jwks.key_ids == ("r1", "e1")
    await verifier.aclose()


@pytest.mark.network
async def test_jwks_url_without_discovery(idp: Idp, ec_key: ec.EllipticCurvePrivateKey) -> None:
    idp.keys = [ec_jwk(ec_key, "e1")]
    verifier = jwks_verifier(idp, Clock(), discovery=False)
    assert (await verifier.verify(signed(idp, ec_key, "ES256", "e1"))).subject == "alice"
    assert (idp.hits(DISCOVERY), idp.hits()) == (0, 1)


@pytest.mark.network
async def test_settings_build_their_own_cache(idp: Idp, rsa_key: rsa.RSAPrivateKey) -> None:
    idp.keys = [rsa_jwk(rsa_key, "r1")]
    settings = JwtSettings(audience=AUD, oidc_issuer=idp.issuer, timeout_seconds=5)
    verifier = JwtVerifier(settings, clock=lambda: NOW)
    token = jwt_encode(claims(iss=idp.issuer), rsa_key, algorithm="RS256", headers={"kid": "r1"})
    assert (await verifier.verify(token)).subject == "alice"
    # the issuer defaults to the OIDC issuer
    wrong = jwt_encode(claims(), rsa_key, algorithm="RS256", headers={"kid": "r1"})
    assert await refused(verifier, wrong) == "token issuer is not trusted"


@pytest.mark.network
async def test_token_signed_by_another_key_with_a_known_kid(
    idp: Idp, rsa_key: rsa.RSAPrivateKey, rsa_key2: rsa.RSAPrivateKey
) -> None:
    idp.keys = [rsa_jwk(rsa_key, "r1")]
    verifier = jwks_verifier(idp, Clock())
    token = signed(idp, rsa_key2, "RS256", "r1")
    assert await refused(verifier, token) == "token signature is invalid"


@pytest.mark.network
async def test_key_rotation_triggers_one_refetch(
    idp: Idp, rsa_key: rsa.RSAPrivateKey, rsa_key2: rsa.RSAPrivateKey
) -> None:
    clock = Clock()
    idp.keys = [rsa_jwk(rsa_key, "r1")]
    verifier = jwks_verifier(idp, clock)
    await verifier.verify(signed(idp, rsa_key, "RS256", "r1"))
    assert idp.hits() == 1
    clock.now += 60  # the provider rotates a while later
    idp.keys = [rsa_jwk(rsa_key2, "r2"), rsa_jwk(rsa_key, "r1")]
    assert (await verifier.verify(signed(idp, rsa_key2, "RS256", "r2"))).subject == "alice"
    assert idp.hits() == 2
    for kid, key in (("r1", rsa_key), ("r2", rsa_key2)):
        await verifier.verify(signed(idp, key, "RS256", kid))
    assert idp.hits() == 2


@pytest.mark.network
async def test_unknown_kids_refetch_at_most_once_per_interval(
    idp: Idp, rsa_key: rsa.RSAPrivateKey
) -> None:
    clock = Clock()
    idp.keys = [rsa_jwk(rsa_key, "r1")]
    verifier = jwks_verifier(idp, clock, refetch_interval=30)
    await verifier.verify(signed(idp, rsa_key, "RS256", "r1"))
    # right after a fetch, a made-up kid does not reach the provider
    for n in range(20):
        reason = await refused(verifier, signed(idp, rsa_key, "RS256", f"made-up-{n}"))
        assert reason == "unknown signing key"
    assert idp.hits() == 1
    clock.now += 30
    assert await refused(verifier, signed(idp, rsa_key, "RS256", "x")) == "unknown signing key"
    assert idp.hits() == 2
    for n in range(20):
        await refused(verifier, signed(idp, rsa_key, "RS256", f"again-{n}"))
    assert idp.hits() == 2
    assert verifier.jwks is not None and verifier.jwks.fetches == 2


@pytest.mark.network
async def test_concurrent_callers_share_one_fetch(
    idp: Idp, rsa_key: rsa.RSAPrivateKey, rsa_key2: rsa.RSAPrivateKey
) -> None:
    clock = Clock()
    idp.keys = [rsa_jwk(rsa_key, "r1"), rsa_jwk(rsa_key2, "r2")]
    idp.delay = 0.05
    verifier = jwks_verifier(idp, clock)
    tokens = [signed(idp, k, "RS256", kid) for kid, k in [("r1", rsa_key), ("r2", rsa_key2)] * 10]
    identities = await asyncio.gather(*(verifier.verify(t) for t in tokens))
    assert {i.subject for i in identities} == {"alice"}
    assert (idp.hits(DISCOVERY), idp.hits()) == (1, 1)


@pytest.mark.network
async def test_failed_refetch_keeps_serving_cached_keys(
    idp: Idp, rsa_key: rsa.RSAPrivateKey
) -> None:
    clock = Clock()
    idp.keys = [rsa_jwk(rsa_key, "r1")]
    verifier = jwks_verifier(idp, clock, default_ttl=300, refetch_interval=30)
    token = signed(idp, rsa_key, "RS256", "r1")
    await verifier.verify(token)
    idp.status = 503
    clock.now += 301  # the keys are stale and the provider is down
    assert (await verifier.verify(token)).subject == "alice"
    assert idp.hits() == 2
    assert (await verifier.verify(token)).subject == "alice"
    assert idp.hits() == 2  # no retry before refetch_interval
    clock.now += 30
    await verifier.verify(token)
    assert idp.hits() == 3
    idp.status = 200
    clock.now += 30
    await verifier.verify(token)
    assert idp.hits() == 4
    clock.now += 200  # fresh again: no fetch
    await verifier.verify(token)
    assert idp.hits() == 4


@pytest.mark.network
async def test_cache_control_max_age_is_honoured(
    idp: Idp, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    clock = Clock()
    idp.keys = [ec_jwk(ec_key, "e1")]
    idp.cache_control = "public, max-age=120"
    verifier = jwks_verifier(idp, clock)
    token = signed(idp, ec_key, "ES256", "e1")
    await verifier.verify(token)
    clock.now += 119
    await verifier.verify(token)
    assert idp.hits() == 1
    clock.now += 2
    await verifier.verify(token)
    assert idp.hits() == 2


@pytest.mark.network
async def test_max_age_is_bounded(idp: Idp, ec_key: ec.EllipticCurvePrivateKey) -> None:
    clock = Clock()
    idp.keys = [ec_jwk(ec_key, "e1")]
    idp.cache_control = "max-age=1"
    verifier = jwks_verifier(idp, clock, min_ttl=60)
    token = signed(idp, ec_key, "ES256", "e1")
    await verifier.verify(token)
    clock.now += 59
    await verifier.verify(token)
    assert idp.hits() == 1
    clock.now += 2
    await verifier.verify(token)
    assert idp.hits() == 2


@pytest.mark.network
async def test_algorithm_confusion_is_refused(idp: Idp, rsa_key: rsa.RSAPrivateKey) -> None:
    """An HS256 token 'signed' with the provider's public key as the HMAC secret."""
    idp.keys = [rsa_jwk(rsa_key, "r1")]
    verifier = jwks_verifier(idp, Clock())
    public_pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    payload = claims(iss=idp.issuer)
    token = forge({"alg": "HS256", "kid": "r1"}, payload, public_pem)
    assert await refused(verifier, token) == "token algorithm 'HS256' is not allowed"
    # with a shared secret configured as well, the public key is still not the secret
    both = JwtVerifier(
        JwtSettings(audience=AUD, issuer=idp.issuer, hs256_secret=SECRET, jwks_url=idp.jwks_url),
        clock=lambda: NOW,
    )
    assert await refused(both, token) == "token signature is invalid"
    assert (await both.verify(hs256(payload))).subject == "alice"
    # none, and asymmetric algorithms that are not allowed, whatever the key
    assert await refused(verifier, forge({"alg": "none"}, payload)) == (
        "token algorithm 'none' is not allowed"
    )
    assert await refused(verifier, signed(idp, rsa_key, "RS512", "r1")) == (
        "token algorithm 'RS512' is not allowed"
    )


@pytest.mark.network
async def test_key_type_must_match_the_algorithm(
    idp: Idp, rsa_key: rsa.RSAPrivateKey, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    idp.keys = [rsa_jwk(rsa_key, "r1"), ec_jwk(ec_key, "e1")]
    verifier = jwks_verifier(idp, Clock())
    token = signed(idp, ec_key, "ES256", "r1")  # names the RSA key
    assert await refused(verifier, token) == "unknown signing key"


@pytest.mark.network
async def test_token_without_kid(
    idp: Idp, rsa_key: rsa.RSAPrivateKey, rsa_key2: rsa.RSAPrivateKey
) -> None:
    clock = Clock()
    idp.keys = [rsa_jwk(rsa_key, None)]
    verifier = jwks_verifier(idp, clock)
    assert (await verifier.verify(signed(idp, rsa_key, "RS256", None))).subject == "alice"
    idp.keys = [rsa_jwk(rsa_key, "r1"), rsa_jwk(rsa_key2, "r2")]
    clock.now += 1000
    reason = await refused(verifier, signed(idp, rsa_key, "RS256", None))
    assert reason == "token does not name its signing key"


@pytest.mark.network
async def test_discovery_naming_another_issuer_is_not_trusted(
    idp: Idp, rsa_key: rsa.RSAPrivateKey
) -> None:
    idp.keys = [rsa_jwk(rsa_key, "r1")]
    idp.claimed_issuer = "https://evil.example.com"
    verifier = jwks_verifier(idp, Clock())
    token = signed(idp, rsa_key, "RS256", "r1")
    assert await refused(verifier, token) == "signing keys are unavailable"
    assert idp.hits() == 0


@pytest.mark.network
@pytest.mark.parametrize("problem", ["status", "empty", "garbage"])
async def test_no_keys_at_all(idp: Idp, rsa_key: rsa.RSAPrivateKey, problem: str) -> None:
    clock = Clock()
    idp.keys = [rsa_jwk(rsa_key, "r1", use="enc")] if problem == "empty" else []
    if problem == "status":
        idp.status = 404
    if problem == "garbage":
        idp.server.routes["/jwks"] = lambda seen: _garbage()
    verifier = jwks_verifier(idp, clock, refetch_interval=30)
    token = signed(idp, rsa_key, "RS256", "r1")
    assert await refused(verifier, token) == "signing keys are unavailable"
    assert await refused(verifier, token) == "signing keys are unavailable"
    assert verifier.jwks is not None and verifier.jwks.fetches == 1


async def _garbage() -> Reply:
    return Reply(200, b"<html>", {"Content-Type": "text/html"})


@pytest.mark.network
async def test_provider_unreachable() -> None:
    port = free_port()
    settings = JwtSettings(
        audience=AUD, jwks_url=f"http://127.0.0.1:{port}/jwks", timeout_seconds=2
    )
    verifier = JwtVerifier(settings, clock=lambda: NOW)
    token = forge({"alg": "RS256", "kid": "r1"}, claims())
    assert await refused(verifier, token) == "signing keys are unavailable"


@pytest.mark.network
async def test_oversized_key_set_is_refused(idp: Idp, rsa_key: rsa.RSAPrivateKey) -> None:
    from catalyst_mcp.security.jwks import HttpFetcher

    idp.keys = [rsa_jwk(rsa_key, f"r{n}") for n in range(20)]
    fetch = HttpFetcher(max_bytes=1000)
    with pytest.raises(JwksError, match="more than 1000 bytes"):
        await fetch(idp.jwks_url)
    answer = await HttpFetcher()(idp.jwks_url)
    assert answer.status == 200 and len(answer.body) > 1000


async def test_a_failing_fetcher_is_a_failed_fetch(rsa_key: rsa.RSAPrivateKey) -> None:
    calls: list[str] = []

    async def broken(url: str) -> Fetched:
        calls.append(url)
        raise RuntimeError("boom")

    jwks = JwksCache(jwks_url="https://idp.example.com/jwks", fetch=broken, clock=Clock())
    with pytest.raises(Unauthenticated, match="signing keys are unavailable"):
        await jwks.key_for("r1", "RS256")
    with pytest.raises(JwksError, match="RuntimeError"):
        await jwks.refresh()
    assert calls == ["https://idp.example.com/jwks"] * 2


async def test_in_memory_fetcher_and_aclose(rsa_key: rsa.RSAPrivateKey) -> None:
    gate = asyncio.Event()

    async def slow(url: str) -> Fetched:
        await gate.wait()
        return Fetched(200, {}, jwks_body(rsa_jwk(rsa_key, "r1")))

    clock = Clock()
    jwks = JwksCache(jwks_url="https://idp.example.com/jwks", fetch=slow, clock=clock)
    waiter = asyncio.create_task(jwks.key_for("r1", "RS256"))
    await asyncio.sleep(0)
    await jwks.aclose()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    gate.set()
    clock.now += 30  # the cancelled attempt counts against the refetch interval
    assert (await jwks.key_for("r1", "RS256")).key_id == "r1"


# ---- TLS to the provider -------------------------------------------------------------------


@pytest.mark.network
async def test_https_provider_with_a_private_ca(
    tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey
) -> None:
    ca_key, server_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = certificate("Test IdP CA", ca_key)
    localhost = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    server = certificate("127.0.0.1", server_key, (ca, ca_key), san=localhost)
    write_pem(tmp_path, "ca", ca, ca_key)
    write_pem(tmp_path, "server", server, server_key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    provider = Idp(context)
    provider.keys = [ec_jwk(ec_key, "e1")]
    async with provider.server.running():
        assert provider.issuer.startswith("https://127.0.0.1:")
        token = signed(provider, ec_key, "ES256", "e1")
        trusted = JwtSettings(
            audience=AUD, oidc_issuer=provider.issuer, ca_file=str(tmp_path / "ca.pem")
        )
        assert (await JwtVerifier(trusted, clock=lambda: NOW).verify(token)).subject == "alice"
        untrusted = JwtSettings(audience=AUD, oidc_issuer=provider.issuer)
        verifier = JwtVerifier(untrusted, clock=lambda: NOW)
        assert await refused(verifier, token) == "signing keys are unavailable"
    assert provider.hits() == 1
