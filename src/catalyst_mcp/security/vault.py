"""The secrets vault: values sealed with AES-256-GCM under a named key from the environment.

A sealed value is ``(key_id, nonce, ciphertext)``. Every seal draws a fresh random 96-bit
nonce (at most 2**32 values per key before the NIST bound for random nonces; far beyond what
a gateway stores). The associated data binds the value to its ``owner``, ``scope`` and
``name``: a ciphertext copied to another user, scope or name fails to open, even though the
key is the same. It is a version tag followed by the three fields, each prefixed with its
length, so no two different triples give the same bytes.

Keys come from the environment, never from the database they protect::

    CATALYST_SECRET_KEY=<key-id>:<base64url of 32 bytes>        the active key (seals)
    CATALYST_SECRET_KEY_PREVIOUS=<key>,<key>                    older keys (open only)

To rotate: generate a new key, move the old one to ``CATALYST_SECRET_KEY_PREVIOUS``, restart,
reseal every stored value (:meth:`Vault.reseal` says which need it), then drop the old key.
A key given without an id gets one derived from it (:func:`derived_key_id`: 8 hex digits of a
hash, which reveals nothing usable about the key). Neither the key nor a secret value is ever
part of a message, a ``repr`` or a log line.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from catalyst_mcp.errors import CatalystError, ConfigError, ConfigProblem

__all__ = [
    "ENV_ACTIVE",
    "ENV_PREVIOUS",
    "KeyRing",
    "Sealed",
    "SecretKey",
    "SecretUnreadable",
    "Vault",
    "associated_data",
    "derived_key_id",
    "generate_key",
    "parse_key",
]

ENV_ACTIVE = "CATALYST_SECRET_KEY"
ENV_PREVIOUS = "CATALYST_SECRET_KEY_PREVIOUS"
KEY_BYTES = 32
NONCE_BYTES = 12
# Bumped if the associated-data layout ever changes; old values then fail loudly, not quietly.
AAD_VERSION = b"catalyst-vault/1\x00"
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_HINT = "generate one with `catalyst secrets generate-key`"


class SecretUnreadable(CatalystError):
    """A sealed value cannot be opened: its key is not configured, or it was altered or moved
    to another owner, scope or name. The message names the secret, never its value."""


class SecretKey:
    """One named 32-byte key. Its bytes never appear in ``repr`` or ``str``."""

    __slots__ = ("_aead", "_fingerprint", "key_id")

    def __init__(self, key_id: str, material: bytes) -> None:
        if not _KEY_ID.fullmatch(key_id):
            raise ValueError("a key id is 1-64 letters, digits, '.', '_' or '-'")
        if len(material) != KEY_BYTES:
            raise ValueError(f"a vault key is {KEY_BYTES} bytes")
        self.key_id = key_id
        self._aead = AESGCM(material)
        # tells two keys apart (one id naming two keys) without keeping the bytes around
        self._fingerprint = hashlib.sha256(b"catalyst-vault-fingerprint\x00" + material).digest()

    def __repr__(self) -> str:
        return f"SecretKey({self.key_id!r})"


def derived_key_id(material: bytes) -> str:
    """The id of a key given without one: 8 hex digits of its SHA-256 (a 32-bit fingerprint
    of a 256-bit random key, which cannot be turned back into the key)."""
    return hashlib.sha256(b"catalyst-vault-key-id\x00" + material).hexdigest()[:8]


def _decode_key(text: str) -> bytes | None:
    """Base64url (or standard base64), padding optional; None if it is not base64."""
    text = text.strip().replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None


def parse_key(value: str, source: str = ENV_ACTIVE) -> SecretKey:
    """A key from ``<key-id>:<base64url>`` or bare base64url. ``source`` names where it came
    from in the :class:`ConfigError`, whose message never repeats the value."""
    key_id, sep, encoded = value.strip().rpartition(":")
    if sep and not _KEY_ID.fullmatch(key_id):
        raise _error(
            source, "the key id (before ':') must be 1-64 letters, digits, '.', '_' or '-'"
        )
    material = _decode_key(encoded)
    if material is None or not encoded.strip():
        raise _error(source, f"the key is not valid base64url; {_HINT}")
    if len(material) != KEY_BYTES:
        raise _error(
            source,
            f"the key must be {KEY_BYTES} bytes, base64url-encoded (this one decodes to "
            f"{len(material)} bytes); {_HINT}",
        )
    return SecretKey(key_id if sep else derived_key_id(material), material)


def _error(source: str, message: str) -> ConfigError:
    return ConfigError([ConfigProblem("environment", None, f"{source}: {message}")])


def generate_key() -> str:
    """A new random key in the ``<key-id>:<base64url>`` form ``CATALYST_SECRET_KEY`` takes."""
    material = secrets.token_bytes(KEY_BYTES)
    encoded = base64.urlsafe_b64encode(material).rstrip(b"=").decode("ascii")
    return f"{derived_key_id(material)}:{encoded}"


class KeyRing:
    """Named keys: the active one seals, every one opens (older ones during a rotation)."""

    __slots__ = ("_keys", "active")

    def __init__(self, active: SecretKey, previous: Sequence[SecretKey] = ()) -> None:
        self.active = active
        self._keys: dict[str, SecretKey] = {active.key_id: active}
        for key in previous:
            self._keys.setdefault(key.key_id, key)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> KeyRing:
        """The keys in ``CATALYST_SECRET_KEY`` and ``CATALYST_SECRET_KEY_PREVIOUS``.

        Raises :class:`ConfigError` listing every problem (a missing active key, bad
        encodings, one id naming two different keys); no message repeats a key.
        """
        problems: list[ConfigProblem] = []
        active: SecretKey | None = None
        raw = environ.get(ENV_ACTIVE, "").strip()
        if not raw:
            problems.append(ConfigProblem("environment", None, f"{ENV_ACTIVE} is not set; {_HINT}"))
        else:
            try:
                active = parse_key(raw, ENV_ACTIVE)
            except ConfigError as exc:
                problems.extend(exc.problems)
        previous: list[SecretKey] = []
        parts = [p for p in environ.get(ENV_PREVIOUS, "").split(",") if p.strip()]
        for index, part in enumerate(parts, 1):
            try:
                previous.append(parse_key(part, f"{ENV_PREVIOUS} (key {index})"))
            except ConfigError as exc:
                problems.extend(exc.problems)
        seen: dict[str, SecretKey] = {}
        for key in [active, *previous] if active else previous:
            other = seen.setdefault(key.key_id, key)
            if other is not key and not _same(other, key):
                problems.append(
                    ConfigProblem(
                        "environment",
                        None,
                        f"key id {key.key_id!r} names two different keys in {ENV_ACTIVE} "
                        f"and {ENV_PREVIOUS}",
                    )
                )
        if problems or active is None:
            raise ConfigError(problems)
        return cls(active, previous)

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Every configured key id, the active one first."""
        return tuple(self._keys)

    def get(self, key_id: str) -> SecretKey | None:
        return self._keys.get(key_id)

    def __repr__(self) -> str:
        older = [k for k in self._keys if k != self.active.key_id]
        return f"KeyRing(active={self.active.key_id!r}, previous={older!r})"


def _same(a: SecretKey, b: SecretKey) -> bool:
    """Whether two keys hold the same bytes."""
    return hmac.compare_digest(a._fingerprint, b._fingerprint)


@dataclass(frozen=True, slots=True)
class Sealed:
    """One encrypted value as stored: the key it was sealed with, its nonce, and the
    ciphertext (GCM tag included)."""

    key_id: str
    nonce: bytes
    ciphertext: bytes

    def __repr__(self) -> str:
        return f"Sealed(key_id={self.key_id!r}, {len(self.ciphertext)} bytes)"


def associated_data(owner: str, scope: str, name: str) -> bytes:
    """The bytes a value is bound to: a version tag, then each field length-prefixed."""
    parts = [AAD_VERSION]
    for field in (owner, scope, name):
        data = field.encode("utf-8")
        parts.append(struct.pack(">I", len(data)))
        parts.append(data)
    return b"".join(parts)


class Vault:
    """Seals and opens secret values with a :class:`KeyRing`."""

    __slots__ = ("keyring",)

    def __init__(self, keyring: KeyRing) -> None:
        self.keyring = keyring

    def seal(self, plaintext: str, owner: str, scope: str, name: str) -> Sealed:
        """Encrypt ``plaintext`` under the active key, bound to ``owner``/``scope``/``name``."""
        key = self.keyring.active
        nonce = secrets.token_bytes(NONCE_BYTES)
        aad = associated_data(owner, scope, name)
        ciphertext = key._aead.encrypt(nonce, plaintext.encode("utf-8"), aad)
        return Sealed(key.key_id, nonce, ciphertext)

    def open(self, sealed: Sealed, owner: str, scope: str, name: str) -> str:
        """The value sealed for ``owner``/``scope``/``name``; :class:`SecretUnreadable` if its
        key is not configured or it does not authenticate (altered, or moved)."""
        key = self.keyring.get(sealed.key_id)
        if key is None:
            raise SecretUnreadable(
                f"secret {name!r} was sealed with key {sealed.key_id!r}, which is not "
                f"configured (during a rotation, list it in {ENV_PREVIOUS})"
            )
        if len(sealed.nonce) != NONCE_BYTES:
            raise SecretUnreadable(f"secret {name!r} cannot be decrypted: its nonce is invalid")
        try:
            data = key._aead.decrypt(
                sealed.nonce, sealed.ciphertext, associated_data(owner, scope, name)
            )
            return data.decode("utf-8")
        except (InvalidTag, UnicodeDecodeError) as exc:
            raise SecretUnreadable(
                f"secret {name!r} cannot be decrypted: it was altered, or it belongs to "
                "another owner, scope or name"
            ) from exc

    def reseal(self, sealed: Sealed, owner: str, scope: str, name: str) -> Sealed | None:
        """``sealed`` re-encrypted under the active key, or None when it already is."""
        if sealed.key_id == self.keyring.active.key_id:
            return None
        return self.seal(self.open(sealed, owner, scope, name), owner, scope, name)
