"""API keys: format, parsing of anything, hashing and constant-time verification."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest

from catalyst_mcp.security import apikeys
from catalyst_mcp.security.apikeys import TOKEN_LENGTH, generate, hash_key, parse, verify


def test_generated_key_shape() -> None:
    key = generate()
    assert re.fullmatch(r"cat_[a-z2-7]{8}_[A-Za-z0-9_-]{43}", key.token)
    assert len(key.token) == TOKEN_LENGTH == 56
    assert key.token.startswith(f"cat_{key.prefix}_")
    secret = key.token[len("cat_") + 8 + 1 :]
    assert len(base64.urlsafe_b64decode(secret + "=")) == 32
    assert key.key_hash == hashlib.sha256(key.token.encode()).hexdigest()


def test_generated_keys_differ() -> None:
    keys = [generate() for _ in range(200)]
    assert len({k.token for k in keys}) == 200
    assert len({k.prefix for k in keys}) == 200


def test_repr_never_shows_the_token() -> None:
    key = generate()
    secret = key.token.rpartition("_")[2]
    for text in (repr(key), str(key)):
        assert key.token not in text
        assert secret[-20:] not in text
        assert key.prefix in text


def test_parse_accepts_a_generated_key() -> None:
    key = generate()
    assert parse(key.token) == (key.prefix, key.token)


@pytest.mark.parametrize(
    "token",
    [
        "",
        "cat_",
        "Bearer cat_abcdefgh_" + "A" * 43,
        "cat_abcdefgh_" + "A" * 42,
        "cat_abcdefgh_" + "A" * 44,
        "cat_ABCDEFGH_" + "A" * 43,  # prefix is lower-case base32
        "cat_abcdefg1_" + "A" * 43,  # 1 is not base32
        "cat_abcdefgh-" + "A" * 43,
        "cak_abcdefgh_" + "A" * 43,
        "cat_abcdefgh_" + "A" * 42 + "=",
        "cat_abcdefgh_" + "A" * 42 + "\n",
        "cat_abcdefgh_" + "A" * 42 + "é",
        "x" * 10_000,
        None,
        42,
        b"cat_abcdefgh_" + b"A" * 43,
    ],
    ids=lambda t: repr(t)[:24],
)
def test_parse_rejects_garbage_without_raising(token: object) -> None:
    assert parse(token) is None


def test_secret_may_contain_underscores() -> None:
    token = "cat_abcdefgh_" + "_" * 43
    assert parse(token) == ("abcdefgh", token)


def test_verify() -> None:
    key = generate()
    assert verify(key.token, key.key_hash)
    assert verify(key.token, key.key_hash.upper())
    assert not verify(generate().token, key.key_hash)
    assert not verify(key.token, "")
    assert not verify(key.token, "zz" * 32)
    assert not verify(key.token, "é")
    assert hash_key(key.token) == key.key_hash


def test_public_api() -> None:
    assert set(apikeys.__all__) >= {"NewKey", "generate", "parse", "hash_key", "verify"}
