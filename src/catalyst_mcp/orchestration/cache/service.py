"""The result cache on the request path: what :class:`~catalyst_mcp.protocol.server.McpServer`
calls instead of the provider for every ``tools/call`` (MCP and REST alike).

::

    McpServer._call_tool: admit (RBAC, key scopes, rate limits, audit room), REST arguments
    └─ RulesHook.call: rules before the call (deny, approval, rate, transform, route)
       └─ ResultCache.call(provider, tool, params)  ◄── here: the call as it will be sent
          ├─ a tool nobody cached, a task, a multi-round-trip retry ─► the provider
          ├─ memory (L1) ─ hit ─► the stored result (audit note: cache hit)
          ├─ the same key's miss in flight ─► wait for it (.flight; audit note: coalesced)
          ├─ Redis (L2) ─ hit ─► the stored result (audit note: cache hit)
          └─ miss ─► the provider ─► a complete, successful result is stored
       └─ rules after the call (result redactions and denials apply to hits too)

So a cached result is served only to a caller who was just authorized, charged by the rate
limits and let through by the rules, and every hit is audited like any call (``detail.note
.cache: "hit"``, or ``"coalesced"`` for a caller served the result of an identical call that
was in flight when it came: :mod:`.flight`) and counted (``catalyst_cache_lookups_total``).
The key is built from the call *after* the rules: arguments a rule set or redacted, and a
route's target, are part of it.

What is stored: results with ``content``, not ``isError``, ``resultType`` complete (never a
task, an input-required result, a failure, nor a result the server asked the client something
for: its answers are not part of the key), at most ``cache.max_entry_bytes`` of JSON, for the
tool's ``ttl`` and ``scope`` (:mod:`.policy`) as an upstream's hints narrow them: ``ttlMs`` on
its result shortens the time (0: not stored), ``cacheScope: "private"`` keeps it for its caller
alone. Results the cache serves or stores carry ``ttlMs`` (freshness left) and ``cacheScope``
(``private`` for a user's, ``public`` for a shared one) towards modern-era clients; the legacy
era and the REST API never see those fields.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import orjson

from catalyst_mcp.context import CallContext
from catalyst_mcp.observability import tracing
from catalyst_mcp.orchestration.cache.config import CacheSettings, CacheSpec
from catalyst_mcp.orchestration.cache.flight import CANCELLED, Flights, Landed
from catalyst_mcp.orchestration.cache.keys import (
    SHARED,
    argument_digest,
    server_prefix,
    tool_prefix,
    user_scope,
)
from catalyst_mcp.orchestration.cache.memory import Entry, MemoryLayer, Scope
from catalyst_mcp.orchestration.cache.policy import CacheRules, Resolved, ToolCache
from catalyst_mcp.providers import Provider

if TYPE_CHECKING:
    from catalyst_mcp.observability.metrics import Metrics
    from catalyst_mcp.orchestration.cache.redislayer import RedisLayer

__all__ = ["HINTS", "Relay", "ResultCache", "hinted"]

log = logging.getLogger("catalyst.cache")

Relay = Callable[[Provider, str, dict[str, Any], CallContext], Awaitable[dict[str, Any]]]
HINTS = ("ttlMs", "cacheScope")
NOT_CACHED = ("task", "requestState", "inputResponses")  # params of calls never cached
EMITTED_SCOPE: dict[str, str] = {"user": "private", "shared": "public"}


def hinted(spec: CacheSpec, result: Mapping[str, Any]) -> tuple[float, Scope]:
    """Seconds and scope to keep ``result`` for: ``spec`` as the result's ``ttlMs`` (shorter
    only; negative is 0) and ``cacheScope`` (``private``: the caller's only) narrow it."""
    ttl, scope = spec.ttl, spec.scope
    hint = result.get("ttlMs")
    if isinstance(hint, int | float) and not isinstance(hint, bool):
        ttl = min(ttl, max(float(hint), 0.0) / 1000)
    if result.get("cacheScope") == "private":
        scope = "user"
    return ttl, scope


def _storable(result: Any) -> bool:
    return (
        isinstance(result, dict)
        and "content" in result
        and result.get("isError") is not True
        and result.get("resultType", "complete") == "complete"
    )


def _answer(result: dict[str, Any], seconds: float, scope: Scope) -> dict[str, Any]:
    """``result`` as a client gets it from the cache: a copy with the freshness left."""
    ms = max(round(seconds * 1000), 0)
    return {**result, "ttlMs": ms, "cacheScope": EMITTED_SCOPE[scope]}


class ResultCache:
    """The result cache of one gateway. ``rules_of`` finds what a provider's configuration
    says (:class:`CacheRules`, or None: nothing of it is cached); ``clock``: seconds (the wall
    clock: Redis entries expire by it on every instance)."""

    def __init__(
        self,
        settings: CacheSettings,
        rules_of: Callable[[Provider], CacheRules | None] = lambda provider: None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.enabled = settings.enabled
        self.rules_of = rules_of
        self.memory = MemoryLayer(settings.max_entries, settings.max_bytes, clock)
        self._clock = clock
        self.redis: RedisLayer | None = None
        if settings.enabled and settings.redis_url is not None:
            from catalyst_mcp.orchestration.cache.redislayer import RedisLayer

            self.redis = RedisLayer(
                settings.redis_url,
                settings.redis_prefix,
                settings.redis_timeout_seconds,
                on_clear=self._cleared_elsewhere,
            )
        self.max_entry_bytes = settings.max_entry_bytes
        self.metrics: Metrics | None = None
        self.explicit: dict[str, CacheRules] = {}  # providers built in code (configure)
        self._resolved: weakref.WeakKeyDictionary[Provider, Resolved | None] = (
            weakref.WeakKeyDictionary()
        )
        self._epochs: dict[str, str] = {}  # server -> the epoch its memory entries are of
        self.flights = Flights(settings.coalesce)  # misses being fetched (.flight)
        self.counts = dict.fromkeys(
            ("hits_memory", "hits_redis", "coalesced", "misses", "stored", "not_stored"), 0
        )

    @property
    def clock(self) -> Callable[[], float]:
        """What freshness is judged by (seconds); tests set their own."""
        return self._clock

    @clock.setter
    def clock(self, clock: Callable[[], float]) -> None:
        self._clock = self.memory.clock = clock

    # ---- configuration -----------------------------------------------------------------------

    def configure(
        self,
        server: str,
        cache: CacheSpec | None = None,
        tools: Mapping[str, CacheSpec | None] | None = None,
    ) -> None:
        """Cache the tools of provider ``server`` built in code (not from the configuration),
        as a server entry's ``cache`` and ``tools`` would."""
        self.explicit[server] = CacheRules(cache, dict(tools or {}), repr((cache, tools)).encode())
        for provider in [p for p in self._resolved if p.name == server]:
            del self._resolved[provider]

    def _tool(self, provider: Provider, tool: str) -> ToolCache | None:
        try:
            resolved = self._resolved[provider]
        except KeyError:
            rules = self.explicit.get(provider.name) or self.rules_of(provider)
            resolved = Resolved(provider, rules) if rules is not None else None
            self._resolved[provider] = resolved
        if resolved is None:
            return None
        if not resolved.current():  # a new provider, or its tool list changed
            seen = self._epochs.get(provider.name)
            if seen is not None and seen != resolved.epoch:
                dropped = self.memory.clear(server_prefix(provider.name))
                if dropped:
                    log.info(
                        "result cache: %d entries of %s dropped: its configuration or tools "
                        "changed",
                        dropped,
                        provider.name,
                    )
            self._epochs[provider.name] = resolved.epoch
        return resolved.tool(tool)

    def is_cached(self, provider: Provider, tool: str) -> bool:
        """Whether calls of ``tool`` (its own name) of ``provider`` are cached now."""
        return self.enabled and self._tool(provider, tool) is not None

    # ---- the request path --------------------------------------------------------------------

    async def call(
        self,
        provider: Provider,
        tool: str,
        params: dict[str, Any],
        ctx: CallContext,
        relay: Relay,
    ) -> dict[str, Any]:
        """Serve one ``tools/call`` of ``tool`` (the provider's own name) from the cache, or
        through ``relay`` (storing what may be stored)."""
        cached = self._tool(provider, tool) if self.enabled else None
        if cached is None or any(key in params for key in NOT_CACHED):
            return await relay(provider, tool, params, ctx)
        try:
            arguments = argument_digest(params.get("arguments"))
        except TypeError:  # not JSON: an in-process caller's own objects
            return await relay(provider, tool, params, ctx)
        mine = f"{cached.prefix}{user_scope(ctx.identity)}/{arguments}"
        keys = (
            (f"{cached.prefix}{SHARED}/{arguments}", mine)
            if cached.spec.scope == "shared"
            else (mine,)
        )
        while True:
            found = self._in_memory(keys)
            if found is not None:
                return self._hit(provider.name, "memory", found.entry, ctx)
            flight = self.flights.joined(keys[0])
            if flight is None:
                return await self._lead(provider, tool, params, ctx, relay, cached, keys, mine)
            outcome = await flight.wait()  # another caller's identical miss (.flight)
            if outcome == CANCELLED:
                continue  # its caller went away, and its call: look again, maybe lead
            if (
                isinstance(outcome, Landed)
                and outcome.key in keys
                and outcome.entry.expires > self.clock()
            ):
                return self._hit(provider.name, "flight", outcome.entry, ctx)
            break
        # The leader's call stored nothing this caller may be served: a call of its own.
        self._counted(provider.name, None, ctx)
        return (await self._fetch(provider, tool, params, ctx, relay, cached, keys, mine))[0]

    async def _lead(
        self,
        provider: Provider,
        tool: str,
        params: dict[str, Any],
        ctx: CallContext,
        relay: Relay,
        cached: ToolCache,
        keys: Sequence[str],
        mine: str,
    ) -> dict[str, Any]:
        """A miss in memory that no other call of its key is fetching: Redis, then the
        provider, while callers of the same key wait for what it comes to."""
        with self.flights.leading(keys[0]) as flight:
            if self.redis is not None:
                found = await self._in_redis(keys)
                if found is not None:
                    flight.land(*found)
                    return self._hit(provider.name, "redis", found.entry, ctx)
            self._counted(provider.name, None, ctx)
            result, landed = await self._fetch(
                provider, tool, params, ctx, relay, cached, keys, mine
            )
            if landed is not None:
                flight.land(*landed)
            return result

    async def _fetch(
        self,
        provider: Provider,
        tool: str,
        params: dict[str, Any],
        ctx: CallContext,
        relay: Relay,
        cached: ToolCache,
        keys: Sequence[str],
        mine: str,
    ) -> tuple[dict[str, Any], Landed | None]:
        """The provider's result (stored when it may be), and where it was stored."""
        asked, result = await self._relay_watched(provider, tool, params, ctx, relay)
        if asked:  # the result depends on what the client answered: not the key's alone
            self.counts["not_stored"] += 1
            return result, None
        return await self._store(cached, keys, mine, result)

    def _hit(self, server: str, layer: str, entry: Entry, ctx: CallContext) -> dict[str, Any]:
        self._counted(server, layer, ctx)
        return _answer(entry.result, entry.expires - self.clock(), entry.scope)

    async def _relay_watched(
        self,
        provider: Provider,
        tool: str,
        params: dict[str, Any],
        ctx: CallContext,
        relay: Relay,
    ) -> tuple[bool, dict[str, Any]]:
        """Relay the call; whether the server asked the client something meanwhile
        (elicitation, sampling, roots: a legacy client answers within the call)."""
        client = ctx.ask
        if client is None:
            return False, await relay(provider, tool, params, ctx)
        asked = False

        async def ask(method: str, request: dict[str, Any]) -> dict[str, Any]:
            nonlocal asked
            asked = True
            return await client(method, request)

        ctx.ask = ask
        try:
            result = await relay(provider, tool, params, ctx)
        finally:
            ctx.ask = client
        return asked, result

    def _in_memory(self, keys: Sequence[str]) -> Landed | None:
        for key in keys:
            entry = self.memory.get(key)
            if entry is not None:
                return Landed(key, entry)
        return None

    async def _in_redis(self, keys: Sequence[str]) -> Landed | None:
        assert self.redis is not None
        values = await self.redis.get(keys)
        now = self.clock()
        for key, value in zip(keys, values, strict=True):
            if value is None:
                continue
            try:
                expires_ms, scope, result = orjson.loads(value)
            except (orjson.JSONDecodeError, TypeError, ValueError):
                continue  # not ours, or from another version: a miss
            expires = expires_ms / 1000
            if expires <= now or scope not in EMITTED_SCOPE or not isinstance(result, dict):
                continue
            entry = Entry(result, expires, len(value), scope)
            self.memory.put(key, entry)  # L1 in front: the next lookup stays in process
            return Landed(key, entry)
        return None

    def _counted(self, server: str, layer: str | None, ctx: CallContext) -> None:
        """A lookup: a miss (None), a hit in ``layer`` (``memory``, ``redis``), or ``flight``:
        served what another caller's identical call in flight stored (audited ``coalesced``)."""
        if layer is None:
            self.counts["misses"] += 1
        else:
            flight = layer == "flight"
            self.counts["coalesced" if flight else f"hits_{layer}"] += 1
            note = "coalesced" if flight else "hit"
            ctx.audit_note = {**(ctx.audit_note or {}), "cache": note}
        if self.metrics is not None:
            self.metrics.cache_lookup(server, layer)
        span = tracing.recording_span()  # the request's own, if recorded (not an enclosing one)
        if span is not None:
            span.set_attribute("catalyst.cache", "miss" if layer is None else f"hit:{layer}")

    async def _store(
        self,
        cached: ToolCache,
        keys: Sequence[str],
        mine: str,
        result: dict[str, Any],
    ) -> tuple[dict[str, Any], Landed | None]:
        """The answer to the caller, and where ``result`` was stored (None: it was not)."""
        if not _storable(result):
            self.counts["not_stored"] += 1
            return result, None
        ttl, scope = hinted(cached.spec, result)
        if ttl <= 0:  # the upstream says it is stale at once
            self.counts["not_stored"] += 1
            return result, None
        kept = {k: v for k, v in result.items() if k not in HINTS}
        try:
            data = orjson.dumps(kept)
        except TypeError:  # not JSON (a provider's own objects)
            self.counts["not_stored"] += 1
            return result, None
        if len(data) > self.max_entry_bytes:
            self.counts["not_stored"] += 1
            return result, None
        key = keys[0] if scope == "shared" else mine
        expires = self.clock() + ttl
        entry = Entry(kept, expires, len(data), scope)
        self.memory.put(key, entry)
        if self.redis is not None:
            head = orjson.dumps([round(expires * 1000), scope])[:-1]
            await self.redis.put(key, head + b"," + data + b"]", round(ttl * 1000))
        self.counts["stored"] += 1
        return _answer(kept, ttl, scope), Landed(key, entry)

    # ---- administration ----------------------------------------------------------------------

    async def clear(self, server: str | None = None, tool: str | None = None) -> dict[str, int]:
        """Drop the cached results of ``tool`` (its own name) of ``server``, of every tool of
        ``server``, or all; how many from memory and from Redis (every instance's memory is
        told, through Redis)."""
        if tool is not None and server is None:
            raise ValueError("a tool is cleared with its server")
        if server is None:
            prefix = ""
        elif tool is None:
            prefix = server_prefix(server)
        else:
            prefix = tool_prefix(server, tool)
        memory = self.memory.clear(prefix)
        redis = await self.redis.clear(prefix) if self.redis is not None else 0
        log.info(
            "result cache cleared (%s): %d in memory, %d in Redis",
            prefix.rstrip("/") or "everything",
            memory,
            redis,
        )
        return {"memory": memory, "redis": redis}

    def _cleared_elsewhere(self, prefix: str) -> None:
        self.memory.clear(prefix)

    async def stats(self) -> dict[str, Any]:
        """What ``GET /api/v1/cache`` answers: this instance's layers and counts."""
        servers: dict[str, dict[str, int]] = {}
        for key, size in self.memory.sizes():
            entry = servers.setdefault(key.partition("/")[0], {"entries": 0, "bytes": 0})
            entry["entries"] += 1
            entry["bytes"] += size
        redis: dict[str, Any] = {"enabled": self.redis is not None}
        if self.redis is not None:
            redis.update(
                location=self.redis.where,
                prefix=self.redis.prefix,
                reachable=await self.redis.ping(),
                listening=self.redis.listening,
                errors=self.redis.errors,
            )
        return {
            "enabled": self.enabled,
            "memory": {
                "entries": len(self.memory),
                "bytes": self.memory.bytes,
                "max_entries": self.memory.max_entries,
                "max_bytes": self.memory.max_bytes,
                "evictions": self.memory.evictions,
            },
            "redis": redis,
            "counts": dict(self.counts),
            "servers": [{"server": name, **sizes} for name, sizes in sorted(servers.items())],
        }

    # ---- life cycle --------------------------------------------------------------------------

    def start(self) -> None:
        if self.redis is not None:
            self.redis.start()

    async def stop(self) -> None:
        if self.redis is not None:
            await self.redis.aclose()
