"""Which calls are cached: the ``cache:`` of a server entry or a knowledge pack, and of each of
their tools, resolved once per provider (and again when its tool list changes).

* A tool's own ``cache:`` (a server's ``tools.<name>.cache``, a pack tool's ``cache``) wins;
  ``ttl: 0`` (or ``cache: false``) keeps that tool out.
* Else the server's or pack's ``cache:`` applies to its tools, except those whose annotations
  say they change something (``readOnlyHint: false`` or ``destructiveHint: true``, given
  explicitly): a server-wide cache never replays a write. (Annotations only ever keep a tool
  out; a tool's own ``cache:`` is taken as written.)
* Providers built in code (not from the configuration) are cached as
  :meth:`~catalyst_mcp.orchestration.cache.service.ResultCache.configure` says.

The *epoch* of a provider digests its configuration and its tool list: every key carries it, so
an edited server entry or pack (a reload), or a changed tool list, leaves the older results
unreachable at once on every instance (docs/cache.md, "Invalidation").
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import orjson

from catalyst_mcp.orchestration.cache.config import CacheSpec
from catalyst_mcp.orchestration.cache.keys import short_digest, tool_prefix

if TYPE_CHECKING:
    from catalyst_mcp.packs.schema import Pack
    from catalyst_mcp.providers import Provider
    from catalyst_mcp.settings import ServerConfig
    from catalyst_mcp.upstreams.serverset import ServerSet

__all__ = ["CacheRules", "Resolved", "ToolCache", "rules_of"]


@dataclass(frozen=True, slots=True)
class CacheRules:
    """What one provider's configuration says about caching: its own ``cache`` and its tools'
    (by their own names; None or absent: the provider's applies). ``source`` is the
    configuration as JSON: part of the epoch."""

    cache: CacheSpec | None
    tools: Mapping[str, CacheSpec | None] = field(default_factory=dict)
    source: bytes = b""

    @classmethod
    def of_server(cls, config: ServerConfig) -> CacheRules | None:
        tools = {name: entry.cache for name, entry in config.tools.items()}
        rules = cls(config.cache, tools, config.model_dump_json().encode())
        return rules if rules.any else None

    @classmethod
    def of_pack(cls, pack: Pack) -> CacheRules | None:
        tools = {tool.name: tool.cache for tool in pack.tools}
        rules = cls(pack.cache, tools, pack.model_dump_json().encode())
        return rules if rules.any else None

    @property
    def any(self) -> bool:
        """Whether any tool may be cached at all."""
        specs = [self.cache, *self.tools.values()]
        return any(spec is not None and spec.enabled for spec in specs)

    def spec_for(self, tool: str, listing: Mapping[str, Any] | None) -> CacheSpec | None:
        """The cache of ``tool`` (its own name; ``listing``: its entry of the tool list)."""
        own = self.tools.get(tool)
        if own is not None:
            return own if own.enabled else None
        spec = self.cache
        if spec is None or not spec.enabled:
            return None
        annotations = listing.get("annotations") if listing is not None else None
        if isinstance(annotations, Mapping) and (
            annotations.get("readOnlyHint") is False or annotations.get("destructiveHint") is True
        ):
            return None
        return spec


@dataclass(frozen=True, slots=True)
class ToolCache:
    """How one tool of one provider is cached now: its cache and the start of its keys
    (``<server>/<tool>/<epoch>/``)."""

    spec: CacheSpec
    prefix: str


class Resolved:
    """The caching of one provider object, as of its current tool list."""

    __slots__ = ("_listings", "_tools", "config_digest", "epoch", "listed", "provider", "rules")

    def __init__(self, provider: Provider, rules: CacheRules) -> None:
        self.provider = provider
        self.rules = rules
        self.config_digest = short_digest(rules.source)
        self.listed: list[dict[str, Any]] | None = None  # the tool list the epoch is of
        self.epoch = ""
        self._tools: dict[str, ToolCache | None] = {}
        self._listings: dict[str, dict[str, Any]] | None = None  # the list by name, when asked

    def current(self) -> bool:
        """Bring the epoch up to the provider's tool list; whether it was (True) or changed."""
        listed = self.provider.items("tools")
        if listed is self.listed:
            return True
        self.listed = listed
        try:
            tools = orjson.dumps(listed, option=orjson.OPT_SORT_KEYS)
        except TypeError:  # not JSON (a provider's own objects): any change is a new epoch
            tools = str(id(listed)).encode()
        epoch = short_digest(self.config_digest.encode() + b"/" + tools)
        unchanged = epoch == self.epoch
        self.epoch = epoch
        self._tools = {}
        self._listings = None
        return unchanged

    def tool(self, name: str) -> ToolCache | None:
        """How tool ``name`` (its own name) is cached now, or None when it is not."""
        try:
            return self._tools[name]
        except KeyError:
            pass
        if self._listings is None:
            self._listings = {
                str(item.get("name")): item for item in self.listed or () if isinstance(item, dict)
            }
        spec = self.rules.spec_for(name, self._listings.get(name))
        found = None
        if spec is not None:
            found = ToolCache(spec, f"{tool_prefix(self.provider.name, name)}{self.epoch}/")
        if len(self._tools) < 10_000:  # names callers make up are bounded
            self._tools[name] = found
        return found


def rules_of(provider: Provider, servers: ServerSet | None) -> CacheRules | None:
    """What the configuration says about caching ``provider``: its server entry's, or its
    knowledge pack's; None for anything else (workflows, providers built in code)."""
    config = servers.config_of(provider.name) if servers is not None else None
    if config is not None:
        return CacheRules.of_server(config)
    from catalyst_mcp.packs.schema import Pack

    pack = getattr(provider, "pack", None)
    if isinstance(pack, Pack):
        return CacheRules.of_pack(pack)
    return None
