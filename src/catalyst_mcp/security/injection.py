"""Secrets injected into calls: ``${secret:NAME}`` of a pack's REST connection, per caller.

A pack connection's headers and auth may reference a secret by name; each call resolves it for
the caller through the :class:`~catalyst_mcp.security.secretstore.SecretStore`: their own value
for that pack, else theirs for any server, else the shared value for the pack, else the shared
value for any server. A resolved value is kept for ``ttl`` seconds per (user, pack, name), so a
busy tool does not query and decrypt on every call; a value changed elsewhere applies within
that time. Failures are :class:`PackError` messages a client can act on, naming the secret and
never a value.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from catalyst_mcp.context import CallContext
from catalyst_mcp.errors import ConfigError, PackError
from catalyst_mcp.security.secretstore import SecretStore
from catalyst_mcp.security.vault import SecretUnreadable

__all__ = ["SecretInjector"]

Lookup = Callable[[str, CallContext | None], Awaitable[str | None]]
MAX_CACHED = 10_000
SHARED = "*"


class SecretInjector:
    def __init__(self, ttl: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.store: SecretStore | None = None  # set once the database is open
        self.ttl = ttl
        self.clock = clock
        self._cache: dict[tuple[str, str, str], tuple[float, str | None]] = {}

    def for_scope(self, scope: str) -> Lookup:
        """The lookup of one pack (``scope`` is its name)."""

        async def lookup(name: str, ctx: CallContext | None) -> str | None:
            owner = ctx.identity.subject if ctx is not None else SHARED
            return await self.resolve(owner, scope, name)

        return lookup

    async def resolve(self, owner: str, scope: str, name: str) -> str | None:
        key = (owner, scope, name)
        now = self.clock()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return cached[1]
        store = self.store
        if store is None:
            raise PackError(
                f"${{secret:{name}}} needs the secrets store, which needs the gateway's "
                "database (enable audit or API keys, or set storage.url)"
            )
        try:
            value = await store.resolve(owner, scope, name)
        except ConfigError:
            raise PackError(
                f"secret {name} cannot be read: CATALYST_SECRET_KEY is not set on this gateway"
            ) from None
        except SecretUnreadable:
            raise PackError(
                f"secret {name} cannot be decrypted with this gateway's keys (was it sealed "
                "under a key that is no longer configured?)"
            ) from None
        if len(self._cache) >= MAX_CACHED:
            self._cache.clear()
        self._cache[key] = (now + self.ttl, value)
        return value

    def forget(self) -> None:
        """Drop every cached value (after a change made through this process)."""
        self._cache.clear()
