"""Cache keys: which tool, which arguments, for whom, as of which configuration.

A key is ``<server>/<tool>/<epoch>/<scope>/<arguments>``:

* ``server``: the provider's name (a server entry's, or ``pack:<name>``); server names have no
  ``/``, so a server's keys are exactly those starting ``<server>/``;
* ``tool``: a digest of the tool's own name (fixed length: any name, no escaping);
* ``epoch``: a digest of the server's configuration and of its tool list, so a changed entry or
  a changed tool list (``list_changed``) makes every older key unreachable, on every instance,
  without a scan;
* ``scope``: ``s`` (shared) or ``u`` and a digest of the caller's kind and subject (user): one
  caller's key never equals another's;
* ``arguments``: a digest of their canonical JSON: keys sorted, numbers normalized (``1.0`` is
  ``1``, ``-0.0`` is ``0``), so equal arguments written differently share a key.

Digests are BLAKE2b, 128 bits where a collision would serve one call's result to another
(arguments, users), 64 bits for names and epochs (which the server part already narrows).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import orjson

from catalyst_mcp.context import Identity

__all__ = [
    "SHARED",
    "argument_digest",
    "canonical",
    "digest",
    "server_prefix",
    "short_digest",
    "tool_prefix",
    "user_scope",
]

SHARED = "s"
MAX_USERS = 10_000  # user scopes remembered (each a digest); the memo is cleared past it
_users: dict[tuple[str, str], str] = {}


def digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def short_digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def _normal(value: Any) -> Any:
    """``value`` with integral floats as ints (JSON has one kind of number)."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    return value


def _has_float(value: Any) -> bool:
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return False
    if kind is dict:
        return any(map(_has_float, value.values()))
    if kind is list or kind is tuple:
        return any(map(_has_float, value))
    return True  # a float, or something else: normalized (or refused) the slow way


def canonical(arguments: Mapping[str, Any] | None) -> bytes:
    """The canonical JSON of a call's arguments (none is ``{}``); TypeError if they are not
    JSON (an in-process caller's own objects: such a call is not cached)."""
    value = arguments if isinstance(arguments, dict) else dict(arguments or {})
    if _has_float(value):  # (rare: most arguments are copied only to be hashed otherwise)
        value = _normal(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def argument_digest(arguments: Mapping[str, Any] | None) -> str:
    return digest(canonical(arguments))


def user_scope(identity: Identity) -> str:
    """The scope part of a caller's keys (``u`` + a digest of kind and subject)."""
    who = (identity.kind, identity.subject)
    found = _users.get(who)
    if found is None:
        if len(_users) >= MAX_USERS:
            _users.clear()
        kind, subject = who
        found = _users[who] = "u" + digest(f"{len(kind)}:{kind}:{subject}".encode())
    return found


def server_prefix(server: str) -> str:
    return f"{server}/"


def tool_prefix(server: str, tool: str) -> str:
    """The start of every key of ``tool`` (its own name) of ``server``."""
    return f"{server}/{short_digest(tool.encode())}/"
