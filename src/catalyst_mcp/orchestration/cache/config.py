"""What the configuration says about caching (docs/cache.md):

* ``cache:`` (:class:`CacheSettings`): the gateway's cache itself: on or off, the bounds of the
  in-process layer, the Redis layer;
* ``cache: {ttl, scope}`` (:class:`CacheSpec`) on a server entry, on a knowledge pack, and on
  one tool (a server's ``tools:`` map, :class:`ToolSettings`, or a pack tool): which results may
  be served again, for how long, to whom.

This module imports nothing of the gateway: ``settings.py`` and the pack schema build on it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

__all__ = [
    "MAX_TTL_SECONDS",
    "CacheField",
    "CacheSettings",
    "CacheSpec",
    "ToolSettings",
    "parse_duration",
    "refuse_shared",
    "shared_places",
]

MAX_TTL_SECONDS = 30 * 86400.0
UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
DURATION = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h|d)?\s*$")
MIB = 1024 * 1024


def parse_duration(value: Any) -> Any:
    """Seconds from a number or a text such as ``500ms``, ``60s``, ``5m``, ``1h``, ``1d``
    (a bare number is seconds); anything else is left for the model to refuse."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a text like '60s', '5m', '1h'")
    if isinstance(value, str):
        match = DURATION.match(value)
        if match is None:
            raise ValueError(
                f"{value!r} is not a duration: give seconds, or a number with ms, s, m, h or d "
                "(e.g. '500ms', '60s', '5m', '1h')"
            )
        return float(match.group(1)) * UNITS[match.group(2) or "s"]
    return value


Duration = Annotated[float, BeforeValidator(parse_duration)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CacheSpec(_Model):
    """Which results of a server's, a pack's or one tool's calls are served again."""

    ttl: Duration = Field(
        ge=0,
        le=MAX_TTL_SECONDS,
        description="How long a successful result is served from the cache: seconds, or a "
        "text such as '500ms', '60s', '5m', '1h', '1d'. 0 turns caching off (for one tool of a "
        "cached server). An upstream result's ttlMs shortens it (ttlMs 0: not cached).",
    )
    scope: Literal["user", "shared"] = Field(
        "user",
        description="Who a cached result is served to: 'user' (only the caller it was made "
        "for: the key includes their identity) or 'shared' (any caller allowed to call the "
        "tool). 'shared' is refused where the server or pack uses per-caller credentials "
        "(${secret:...}, sharing per-user or per-session); an upstream result with cacheScope "
        "'private' is kept for its caller only.",
    )

    @property
    def enabled(self) -> bool:
        return self.ttl > 0


def _off(value: Any) -> Any:
    """``cache: false`` is ``cache: {ttl: 0}`` (off); ``cache: true`` needs a ttl."""
    if value is False:
        return {"ttl": 0}
    if value is True:
        raise ValueError("give the cache's ttl: cache: {ttl: 60s} (false turns it off)")
    return value


CacheField = Annotated[CacheSpec | None, BeforeValidator(_off)]


class ToolSettings(_Model):
    """What a server entry's ``tools:`` map says of one of its tools (by its own name)."""

    cache: CacheField = Field(
        None,
        description="This tool's cache ({ttl, scope}; false: never cached), instead of the "
        "server's cache.",
    )


class CacheSettings(_Model):
    """The result cache of the gateway (docs/cache.md): nothing is cached unless a server, a
    pack or a tool says ``cache: {ttl: ...}``."""

    enabled: bool = Field(
        True,
        description="false: no result is cached, whatever servers, packs and tools say.",
    )
    coalesce: bool = Field(
        True,
        description="Concurrent misses of one result in this process make one call: while a "
        "result is being fetched, other calls of the same tool, arguments and scope wait for "
        "it instead of calling the server too (a failed call is not shared: each waiter then "
        "makes its own). false: every miss calls the server.",
    )
    max_entries: int = Field(
        10_000,
        ge=0,
        description="Most results kept in the gateway process's memory (the least recently "
        "used go first). 0: none (with redis_url, every lookup asks Redis).",
    )
    max_bytes: int = Field(
        64 * MIB,
        ge=0,
        description="Most bytes of results (their JSON) kept in memory.",
    )
    max_entry_bytes: int = Field(
        MIB,
        gt=0,
        description="Largest result (its JSON) that is cached at all; larger ones are not.",
    )
    redis_url: str | None = Field(
        None,
        repr=False,
        description="A Redis (redis:// or rediss:// URL) shared by every instance: results "
        "one instance cached are served by the others, and `catalyst cache clear` clears "
        "every instance. Unset: `redis.url` when that is set, else memory only.",
    )
    redis_prefix: str = Field(
        "catalyst:cache:",
        min_length=1,
        description="Prefix of the cache's Redis keys and of its invalidation channel.",
    )
    redis_timeout_seconds: float = Field(
        0.25,
        gt=0,
        description="How long a Redis lookup or write may take. A Redis that fails or is "
        "slower is skipped for 5 s (calls go to the server meanwhile; nothing fails).",
    )

    @model_validator(mode="after")
    def _check(self) -> CacheSettings:
        if self.redis_url is not None and not re.match(r"^(rediss?|unix)://", self.redis_url):
            raise ValueError("redis_url must start with redis://, rediss:// or unix://")
        return self


def shared_places(cache: CacheSpec | None, tools: Mapping[str, CacheSpec | None]) -> list[str]:
    """Where ``cache`` (a server's or pack's) and ``tools`` (each tool's own cache, by name) say
    ``scope: shared``: ``cache`` and ``tools.<name>.cache``, for problems that name them."""
    found = ["cache"] if cache is not None and cache.enabled and cache.scope == "shared" else []
    for name, spec in tools.items():
        if spec is not None and spec.enabled and spec.scope == "shared":
            found.append(f"tools.{name}.cache")
    return found


def refuse_shared(why: str) -> str:
    """Why ``scope: shared`` is refused where results depend on per-caller credentials
    (``why`` says which)."""
    return (
        f"scope 'shared' is refused because {why}: each caller's results come from their own "
        "credentials, so one caller's cached result must never reach another; use scope: user"
    )
