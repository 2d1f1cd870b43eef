"""Which resource a kind names: API discovery, cached.

``kind`` may be written as kubectl takes it — ``Deployment``, ``deployments``, ``deploy``,
``deployments.apps`` — with an optional ``api_version`` (``apps/v1``) to choose between
groups. The core group (``/api/v1``) and the preferred version of every group (``/apis``,
then ``/apis/GROUP/VERSION``, fetched together) are read once and kept for five minutes; a
kind not found in a list older than ten seconds reads them again (a custom resource
installed since). A group whose discovery fails (an aggregated API that is down) is skipped.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from catalyst_mcp.errors import BuiltinError

if TYPE_CHECKING:
    from catalyst_mcp.context import CallContext
    from catalyst_mcp.servers.kubernetes.client import Cluster

__all__ = ["Discovery", "ResourceType"]

TTL_SECONDS = 300.0
RETRY_AFTER_SECONDS = 10.0


@dataclass(frozen=True, slots=True)
class ResourceType:
    group: str  # "" for the core group
    version: str
    name: str  # the plural, as in URLs: "deployments"
    kind: str  # "Deployment"
    namespaced: bool
    verbs: tuple[str, ...] = ()
    short_names: tuple[str, ...] = ()
    singular: str = ""
    subresources: frozenset[str] = field(default_factory=frozenset)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, sub: str = "") -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{quote(namespace, safe='')}"
        base += f"/{self.name}"
        if name is not None:
            base += f"/{quote(name, safe='')}"
        return base + (f"/{sub}" if sub else "")

    def listing(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "api_version": self.api_version,
            "namespaced": self.namespaced,
            "short_names": list(self.short_names),
            "verbs": list(self.verbs),
        }


class Discovery:
    """The resource types of one cluster, read through ``cluster`` (any caller's client)."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._types: list[ResourceType] = []
        self._read_at = -1e9
        self._lock = asyncio.Lock()

    async def types(self, ctx: CallContext | None, *, refresh: bool = False) -> list[ResourceType]:
        async with self._lock:
            age = time.monotonic() - self._read_at
            if age > TTL_SECONDS or (refresh and age > RETRY_AFTER_SECONDS):
                self._types = await self._read(ctx)
                self._read_at = time.monotonic()
        return self._types

    async def _read(self, ctx: CallContext | None) -> list[ResourceType]:
        _, core = await self.cluster.request(ctx, "GET", "/api/v1")
        found = _types_of("", "v1", core)
        _, groups = await self.cluster.request(ctx, "GET", "/apis")
        versions = [
            (g.get("name", ""), (g.get("preferredVersion") or {}).get("version", ""))
            for g in groups.get("groups", [])
            if isinstance(g, dict)
        ]
        versions = [(g, v) for g, v in versions if g and v]

        async def one(group: str, version: str) -> list[ResourceType]:
            try:
                _, listed = await self.cluster.request(ctx, "GET", f"/apis/{group}/{version}")
            except BuiltinError:
                return []
            return _types_of(group, version, listed)

        for listed in await asyncio.gather(*(one(g, v) for g, v in versions)):
            found += listed
        return found

    async def resolve(
        self, ctx: CallContext | None, kind: str, api_version: str | None = None
    ) -> ResourceType:
        """The resource type ``kind`` names (core group first, then groups in the order
        the API server lists them)."""
        for refresh in (False, True):
            match = _match(await self.types(ctx, refresh=refresh), kind, api_version)
            if match is not None:
                return match
        if api_version:  # a version other than the group's preferred one
            group, _, version = api_version.rpartition("/")
            path = f"/apis/{group}/{version}" if group else f"/api/{version}"
            try:
                _, listed = await self.cluster.request(ctx, "GET", path)
            except BuiltinError:
                listed = {}
            match = _match(_types_of(group, version, listed), kind, api_version)
            if match is not None:
                return match
        where = f" in {api_version}" if api_version else ""
        raise BuiltinError(
            f"{self.cluster.server}: the cluster has no kind {kind[:100]!r}{where} (list_kinds "
            "lists them)"
        )


def _types_of(group: str, version: str, listed: dict[str, Any]) -> list[ResourceType]:
    resources = [r for r in listed.get("resources", []) if isinstance(r, dict)]
    subs: dict[str, set[str]] = {}
    for r in resources:
        name = str(r.get("name", ""))
        if "/" in name:
            parent, _, sub = name.partition("/")
            subs.setdefault(parent, set()).add(sub)
    return [
        ResourceType(
            group=group,
            version=version,
            name=str(r["name"]),
            kind=str(r.get("kind", "")),
            namespaced=bool(r.get("namespaced")),
            verbs=tuple(r.get("verbs") or ()),
            short_names=tuple(r.get("shortNames") or ()),
            singular=str(r.get("singularName") or ""),
            subresources=frozenset(subs.get(str(r["name"]), ())),
        )
        for r in resources
        if "/" not in str(r.get("name", "/"))
    ]


def _match(types: list[ResourceType], kind: str, api_version: str | None) -> ResourceType | None:
    wanted = kind.strip().lower()
    group: str | None = None
    version: str | None = None
    if api_version:
        group, _, version = api_version.rpartition("/")
    elif "." in wanted:
        wanted, _, group = wanted.partition(".")
    for t in types:
        if group is not None and t.group != group:
            continue
        if version is not None and t.version != version:
            continue
        names = {t.kind.lower(), t.name, t.singular, *(s.lower() for s in t.short_names)}
        if wanted in names:
            return t
    return None
