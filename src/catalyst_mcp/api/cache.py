"""``/cache``: the result cache's statistics, and clearing it (docs/cache.md).

``GET /cache`` reports this instance: its memory layer, its Redis layer and what it counted
since it started. ``DELETE /cache`` drops cached results: all of them, a server's (``server``:
a server entry's name, or a knowledge pack's), or one tool's (``tool``: its public name, as
clients call it); from this instance's memory and from Redis, whose other instances are told
to drop theirs. Neither needs the database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from catalyst_mcp.api.router import ApiError, ApiRequest, Route

if TYPE_CHECKING:
    from catalyst_mcp.orchestration.cache.service import ResultCache
    from catalyst_mcp.registry import Registry

__all__ = ["CacheHandlers"]


class CacheQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    server: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="Only this server's results (a server entry's name, or a knowledge pack's).",
    )
    tool: str | None = Field(
        None,
        min_length=1,
        max_length=2048,
        description="Only this tool's results: its public name, as clients call it "
        "(github__search).",
    )


class CacheCleared(BaseModel):
    server: str | None = Field(description="The server cleared (null: every one).")
    tool: str | None = Field(description="The tool cleared (its public name; null: every one).")
    memory: int = Field(description="Results dropped from this instance's memory.")
    redis: int = Field(description="Results deleted from Redis (0 without Redis).")


class MemoryStats(BaseModel):
    entries: int
    bytes: int
    max_entries: int
    max_bytes: int
    evictions: int = Field(description="Results dropped to stay within the bounds.")


class RedisStats(BaseModel):
    enabled: bool
    location: str | None = Field(None, description="The Redis URL, without credentials.")
    prefix: str | None = None
    reachable: bool | None = Field(None, description="Whether it answered a PING just now.")
    listening: bool | None = Field(
        None, description="Whether this instance hears the other instances' clears."
    )
    errors: int | None = Field(None, description="Failed lookups and writes since start.")


class CacheCounts(BaseModel):
    hits_memory: int
    hits_redis: int
    coalesced: int = Field(
        description="Calls served the result of an identical call in flight in this process "
        "(they waited for it instead of calling the server)."
    )
    misses: int
    stored: int
    not_stored: int = Field(
        description="Results of cached tools not stored: errors, tasks, input requests, "
        "results too large, ttlMs 0."
    )


class ServerCacheStats(BaseModel):
    server: str
    entries: int
    bytes: int


class CacheStats(BaseModel):
    enabled: bool = Field(description="cache.enabled: false means nothing is cached.")
    memory: MemoryStats
    redis: RedisStats
    counts: CacheCounts = Field(description="Lookups and stores of this instance since start.")
    servers: list[ServerCacheStats] = Field(description="Results in memory, per server.")


class CacheHandlers:
    def __init__(self, cache: ResultCache, registry: Registry | None) -> None:
        self.cache = cache
        self.registry = registry

    async def stats(self, request: ApiRequest) -> CacheStats:
        return CacheStats.model_validate(await self.cache.stats())

    async def clear(self, request: ApiRequest) -> CacheCleared:
        query = request.query_as(CacheQuery)
        server, own = self._server(query.server), None
        if query.tool is not None:
            if self.registry is None:
                raise ApiError(503, "this gateway serves no tools")
            provider, own = self.registry.resolve("tools", query.tool)  # NotFound: 404
            if server is not None and provider.name != server:
                raise ApiError(
                    422, f"tool {query.tool!r} is served by {provider.name!r}, not {server!r}"
                )
            server = provider.name
        request.target = query.tool or server or "*"
        cleared = await self.cache.clear(server, own)
        return CacheCleared(server=server, tool=query.tool, **cleared)

    def _server(self, name: str | None) -> str | None:
        """The provider name of server (or pack) ``name``: a pack's is ``pack:<name>``."""
        if name is None or self.registry is None or self.registry.provider(name) is not None:
            return name
        pack = f"pack:{name}"
        return pack if self.registry.provider(pack) is not None else name

    def routes(self) -> list[Route]:
        common: dict[str, Any] = {"tag": "cache", "needs_storage": False}
        return [
            Route(
                "GET",
                "/cache",
                self.stats,
                action="admin.cache.stats",
                summary="The result cache of this instance: memory, Redis, hits and misses",
                response=CacheStats,
                **common,
            ),
            Route(
                "DELETE",
                "/cache",
                self.clear,
                action="admin.cache.clear",
                summary="Drop cached results: all, a server's or a tool's (every instance)",
                query=CacheQuery,
                response=CacheCleared,
                changes=True,
                **common,
            ),
        ]
