"""API keys: shown once at creation, stored only as a hash, looked up by a visible prefix.

A key reads ``cat_<prefix>_<secret>``: ``cat_`` marks it as Catalyst's (secret scanners can
match it), ``prefix`` is 8 random lower-case base32 characters (40 bits; stored in clear,
unique, shown in listings and audit records so an operator can tell keys apart), and
``secret`` is 32 random bytes in unpadded base64url (43 characters). Only the SHA-256 of the
whole token is stored.

Why a fast hash is right here, unlike for passwords: a slow, salted hash (bcrypt, scrypt,
argon2) exists to make guessing a *low-entropy* secret expensive, one candidate at a time. A
key with 256 random bits cannot be guessed however fast each attempt is (2**256 candidates),
so stretching buys nothing, while it would cost tens of milliseconds of CPU on every
authenticated request. Salting buys nothing either: random keys never repeat, so there are
no precomputed tables to defeat. Comparison is constant-time all the same.

The storage layer enforces that prefixes are unique (40 random bits make a collision rare but
not impossible: generate another key on :class:`~catalyst_mcp.errors.Conflict`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

__all__ = [
    "PREFIX_LENGTH",
    "TOKEN_LENGTH",
    "NewKey",
    "generate",
    "hash_key",
    "parse",
    "verify",
]

SCHEME = "cat_"
PREFIX_LENGTH = 8
SECRET_BYTES = 32
_PREFIX_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"  # RFC 4648 base32, lower case
_SECRET_LENGTH = 43  # unpadded base64url of 32 bytes
TOKEN_LENGTH = len(SCHEME) + PREFIX_LENGTH + 1 + _SECRET_LENGTH
_TOKEN = re.compile(rf"cat_([a-z2-7]{{{PREFIX_LENGTH}}})_[A-Za-z0-9_-]{{{_SECRET_LENGTH}}}")


@dataclass(frozen=True, slots=True)
class NewKey:
    """A key just generated: ``token`` is shown to its owner once and then forgotten;
    ``prefix`` and ``key_hash`` are what gets stored. ``repr`` never shows the token."""

    token: str
    prefix: str
    key_hash: str

    def __repr__(self) -> str:
        return f"NewKey(prefix={self.prefix!r}, token='cat_{self.prefix}_…')"


def generate() -> NewKey:
    """A new random API key, its prefix and its hash."""
    prefix = "".join(secrets.choice(_PREFIX_ALPHABET) for _ in range(PREFIX_LENGTH))
    secret = base64.urlsafe_b64encode(secrets.token_bytes(SECRET_BYTES)).rstrip(b"=")
    token = f"{SCHEME}{prefix}_{secret.decode('ascii')}"
    return NewKey(token, prefix, hash_key(token))


def parse(token: object) -> tuple[str, str] | None:
    """``(prefix, token)`` if ``token`` has the exact shape of a Catalyst key, else None.

    Cheap and total: a length check and one anchored regex, no exception on any input.
    """
    if not isinstance(token, str) or len(token) != TOKEN_LENGTH:
        return None
    match = _TOKEN.fullmatch(token)
    if match is None:
        return None
    return match.group(1), token


def hash_key(token: str) -> str:
    """The hex SHA-256 of ``token`` (what is stored; see the module notes for why SHA-256)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def verify(token: str, key_hash: str) -> bool:
    """Whether ``token`` hashes to ``key_hash``, compared in constant time."""
    return hmac.compare_digest(
        hash_key(token).encode("ascii"), key_hash.lower().encode("utf-8", "replace")
    )
