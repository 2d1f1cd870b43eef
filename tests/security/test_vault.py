"""The secrets vault: AES-256-GCM sealing bound to owner, scope and name; key rotation."""

from __future__ import annotations

import base64
import dataclasses
import secrets

import pytest

from catalyst_mcp.errors import ConfigError
from catalyst_mcp.security.vault import (
    ENV_ACTIVE,
    ENV_PREVIOUS,
    KeyRing,
    Sealed,
    SecretKey,
    SecretUnreadable,
    Vault,
    associated_data,
    derived_key_id,
    generate_key,
    parse_key,
)

SECRET = "s3cr3t-value-ü"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def ring(active: str, *previous: str) -> KeyRing:
    env = {ENV_ACTIVE: active}
    if previous:
        env[ENV_PREVIOUS] = ",".join(previous)
    return KeyRing.from_environ(env)


@pytest.fixture
def vault() -> Vault:
    return Vault(ring(generate_key()))


def test_round_trip(vault: Vault) -> None:
    sealed = vault.seal(SECRET, "alice", "github", "token")
    assert sealed.key_id == vault.keyring.active.key_id
    assert len(sealed.nonce) == 12
    assert SECRET.encode() not in sealed.ciphertext
    assert vault.open(sealed, "alice", "github", "token") == SECRET


def test_empty_value_round_trips(vault: Vault) -> None:
    assert vault.open(vault.seal("", "a", "b", "c"), "a", "b", "c") == ""


@pytest.mark.parametrize(
    ("owner", "scope", "name"),
    [
        ("bob", "github", "token"),
        ("alice", "gitlab", "token"),
        ("alice", "github", "password"),
        # the same bytes joined differently must not collide
        ("alicegithub", "", "token"),
        ("alice", "githubtoken", ""),
        ("", "alice", "githubtoken"),
    ],
    ids=["owner", "scope", "name", "shift-owner", "shift-name", "shift-all"],
)
def test_moved_ciphertext_fails(vault: Vault, owner: str, scope: str, name: str) -> None:
    sealed = vault.seal(SECRET, "alice", "github", "token")
    with pytest.raises(SecretUnreadable, match="altered, or it belongs to another") as info:
        vault.open(sealed, owner, scope, name)
    assert SECRET not in str(info.value)


def test_associated_data_is_unambiguous_and_versioned() -> None:
    assert associated_data("a", "bc", "") != associated_data("ab", "c", "")
    assert associated_data("a", "b", "c").startswith(b"catalyst-vault/1\x00")


@pytest.mark.parametrize("part", ["ciphertext", "tag", "nonce"])
def test_tampering_fails(vault: Vault, part: str) -> None:
    sealed = vault.seal(SECRET, "alice", "github", "token")
    if part == "nonce":
        changed = dataclasses.replace(sealed, nonce=bytes([sealed.nonce[0] ^ 1]) + sealed.nonce[1:])
    else:
        data = bytearray(sealed.ciphertext)
        data[0 if part == "ciphertext" else -1] ^= 1
        changed = dataclasses.replace(sealed, ciphertext=bytes(data))
    with pytest.raises(SecretUnreadable):
        vault.open(changed, "alice", "github", "token")


def test_truncated_nonce_fails(vault: Vault) -> None:
    sealed = vault.seal(SECRET, "a", "b", "c")
    with pytest.raises(SecretUnreadable, match="nonce"):
        vault.open(dataclasses.replace(sealed, nonce=sealed.nonce[:8]), "a", "b", "c")


def test_nonces_are_unique(vault: Vault) -> None:
    sealed = [vault.seal(SECRET, "a", "b", "c") for _ in range(1000)]
    assert len({s.nonce for s in sealed}) == 1000
    assert len({s.ciphertext for s in sealed}) == 1000


def test_unknown_key_id_is_named(vault: Vault) -> None:
    sealed = Vault(ring(generate_key())).seal(SECRET, "a", "b", "c")
    with pytest.raises(SecretUnreadable, match=rf"key '{sealed.key_id}', which is not configured"):
        vault.open(sealed, "a", "b", "c")


def test_previous_keys_open_and_reseal_moves_to_the_active_key() -> None:
    old, new = generate_key(), generate_key()
    sealed_old = Vault(ring(old)).seal(SECRET, "a", "b", "c")
    rotated = Vault(ring(new, old))
    assert rotated.keyring.key_ids == (new.split(":")[0], old.split(":")[0])
    assert rotated.open(sealed_old, "a", "b", "c") == SECRET
    resealed = rotated.reseal(sealed_old, "a", "b", "c")
    assert resealed is not None
    assert resealed.key_id == rotated.keyring.active.key_id
    assert rotated.reseal(resealed, "a", "b", "c") is None
    # once the old key is dropped, only the resealed value opens
    after = Vault(ring(new))
    assert after.open(resealed, "a", "b", "c") == SECRET
    with pytest.raises(SecretUnreadable):
        after.open(sealed_old, "a", "b", "c")


def test_reseal_refuses_a_moved_value() -> None:
    old, new = generate_key(), generate_key()
    sealed = Vault(ring(old)).seal(SECRET, "a", "b", "c")
    with pytest.raises(SecretUnreadable):
        Vault(ring(new, old)).reseal(sealed, "x", "b", "c")


def test_generated_key_format() -> None:
    key = generate_key()
    key_id, _, encoded = key.partition(":")
    material = base64.urlsafe_b64decode(encoded + "=")
    assert len(material) == 32
    assert key_id == derived_key_id(material)
    assert generate_key() != key


def test_bare_key_gets_a_derived_id_that_is_not_the_key() -> None:
    material = secrets.token_bytes(32)
    bare = parse_key(b64(material))
    assert bare.key_id == derived_key_id(material)
    assert len(bare.key_id) == 8
    assert bare.key_id not in material.hex()[:8]  # a hash, not a prefix of the key
    # standard base64 with padding is accepted too, and gives the same id
    assert parse_key(base64.b64encode(material).decode()).key_id == bare.key_id


def test_named_key_keeps_its_id() -> None:
    assert parse_key(f"2025-q1:{b64(secrets.token_bytes(32))}").key_id == "2025-q1"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            b64(secrets.token_bytes(16)),
            "must be 32 bytes, base64url-encoded (this one decodes to 16",
        ),
        (b64(secrets.token_bytes(48)), "decodes to 48 bytes"),
        ("not base64 at all!!" * 3, "not valid base64url"),
        ("k1:", "not valid base64url"),
        (f"bad id!:{b64(secrets.token_bytes(32))}", "key id"),
    ],
    ids=["short", "long", "garbage", "empty", "bad-id"],
)
def test_bad_keys_are_explained_without_echoing_them(value: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        KeyRing.from_environ({ENV_ACTIVE: value})
    text = str(info.value)
    assert message in text
    assert ENV_ACTIVE in text
    encoded = value.rpartition(":")[2]
    assert not encoded or encoded not in text


def test_every_problem_is_reported() -> None:
    short = b64(secrets.token_bytes(8))
    with pytest.raises(ConfigError) as info:
        KeyRing.from_environ({ENV_PREVIOUS: f"{generate_key()},{short}"})
    messages = [p.message for p in info.value.problems]
    assert any(f"{ENV_ACTIVE} is not set" in m for m in messages)
    assert any(m.startswith(f"{ENV_PREVIOUS} (key 2)") for m in messages)
    assert short not in str(info.value)


def test_one_id_for_two_keys_is_refused() -> None:
    a, b = b64(secrets.token_bytes(32)), b64(secrets.token_bytes(32))
    with pytest.raises(ConfigError, match="'k1' names two different keys"):
        ring(f"k1:{a}", f"k1:{b}")
    # the same key listed twice is harmless
    assert ring(f"k1:{a}", f"k1:{a}").key_ids == ("k1",)


def test_nothing_prints_a_key_or_a_secret(vault: Vault) -> None:
    key = generate_key()
    encoded = key.partition(":")[2]
    keyring = ring(key)
    sealed = Vault(keyring).seal(SECRET, "a", "b", "c")
    for obj in (keyring, keyring.active, sealed, Vault(keyring)):
        for text in (repr(obj), str(obj)):
            assert encoded not in text
            assert SECRET not in text
    assert repr(keyring) == f"KeyRing(active={keyring.active.key_id!r}, previous=[])"
    assert repr(sealed).startswith("Sealed(key_id=")


def test_secret_key_checks_its_inputs() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        SecretKey("k", b"short")
    with pytest.raises(ValueError, match="key id"):
        SecretKey("a b", bytes(32))


def test_sealed_is_plain_data() -> None:
    sealed = Sealed("k", b"n" * 12, b"c")
    assert sealed == Sealed("k", b"n" * 12, b"c")
