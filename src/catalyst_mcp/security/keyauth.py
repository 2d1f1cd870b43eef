"""API keys on the request path: a presented key in, an :class:`Identity` out.

The database is asked once per key prefix per ``cache_seconds`` (one query: the key's hash,
expiry, revocation, scopes and its owner); in between, checking a key costs a format check, a
SHA-256 and a constant-time compare. A key revoked on *this* instance is forgotten at once
(:meth:`KeyAuthenticator.forget`); on another instance it stops working within
``cache_seconds``. Unknown prefixes are remembered briefly too, so garbage keys cannot make
every request a database query. ``last_used_at`` is written in batches
(:meth:`KeyAuthenticator.flush`), never on the request path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

from catalyst_mcp.context import Identity
from catalyst_mcp.errors import Unauthenticated
from catalyst_mcp.security import apikeys
from catalyst_mcp.storage.keys import KeyCredential, KeyRepo

__all__ = ["KeyAuthenticator"]

MAX_CACHED = 50_000
UNKNOWN_SECONDS = 5.0


class KeyAuthenticator:
    def __init__(
        self,
        repo: KeyRepo,
        cache_seconds: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.repo = repo
        self.cache_seconds = cache_seconds
        self.clock = clock
        # prefix -> (valid until, credential or None for unknown, identity)
        self._cache: dict[str, tuple[float, KeyCredential | None, Identity | None]] = {}
        self._used: dict[str, datetime] = {}

    async def authenticate(self, token: str) -> Identity:
        parsed = apikeys.parse(token)
        if parsed is None:
            raise Unauthenticated("malformed API key")
        prefix = parsed[0]
        now = self.clock()
        entry = self._cache.get(prefix)
        if entry is None or entry[0] <= now:
            entry = await self._load(prefix, now)
        _, credential, identity = entry
        if credential is None or identity is None or not apikeys.verify(token, credential.key_hash):
            raise Unauthenticated("unknown API key")
        if credential.revoked_at is not None:
            raise Unauthenticated(f"API key {prefix} was revoked")
        wall = datetime.now(UTC)
        if credential.expires_at is not None and credential.expires_at <= wall:
            raise Unauthenticated(f"API key {prefix} expired")
        if credential.disabled:
            raise Unauthenticated(f"user {credential.user!r} is disabled")
        self._used[prefix] = wall
        return identity

    async def _load(
        self, prefix: str, now: float
    ) -> tuple[float, KeyCredential | None, Identity | None]:
        credential = await self.repo.find(prefix)
        if len(self._cache) >= MAX_CACHED:
            # forget the oldest tenth (dicts keep insertion order), not every key at once: a
            # flood of made-up prefixes must not make every valid key a database query again
            for stale in list(self._cache)[: MAX_CACHED // 10]:
                del self._cache[stale]
        if credential is None:
            entry: tuple[float, KeyCredential | None, Identity | None] = (
                now + min(UNKNOWN_SECONDS, self.cache_seconds),
                None,
                None,
            )
        else:
            kind = credential.kind if credential.kind in ("user", "service") else "user"
            identity = Identity(
                subject=credential.user,
                kind=kind,
                roles=credential.roles,
                scopes=credential.scopes,
                via="api_key",
            )
            entry = (now + self.cache_seconds, credential, identity)
        self._cache[prefix] = entry
        return entry

    def forget(self, prefix: str | None = None) -> None:
        """Drop a cached key (revoked, its owner changed), or every cached key."""
        if prefix is None:
            self._cache.clear()
        else:
            self._cache.pop(prefix, None)

    async def flush(self) -> None:
        """Write the last-used times gathered since the previous flush."""
        if not self._used:
            return
        used, self._used = self._used, {}
        await self.repo.touch(used)
