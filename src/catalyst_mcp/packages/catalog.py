"""The catalog of MCP servers: the MCP Registry when it can be reached, else the snapshot of a
few dozen well-known servers bundled with Catalyst (``catalog.json``), and which one answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import orjson

from catalyst_mcp.errors import PackageNotFound, RegistryUnreachable
from catalyst_mcp.packages.config import PackagesSettings
from catalyst_mcp.packages.registryapi import RegistryClient
from catalyst_mcp.packages.serverjson import ServerDetail, parse_servers
from catalyst_mcp.packages.spec import short_name

__all__ = ["BundledCatalog", "Catalog", "CatalogAnswer", "bundled", "pick"]


@dataclass(slots=True)
class CatalogAnswer:
    """Servers found, and where: ``registry`` (live) or ``bundled`` (the snapshot)."""

    servers: list[ServerDetail]
    source: str
    where: str
    fallback_reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _matches(server: ServerDetail, text: str) -> bool:
    needle = text.lower()
    haystack = [server.name, server.title or "", server.description]
    haystack += [p.identifier for p in server.packages]
    return any(needle in item.lower() for item in haystack)


def pick(servers: list[ServerDetail], name: str) -> ServerDetail | None:
    """The server called ``name``: its full name, else the one whose last part, short name
    (``time`` for ``.../server-time``) or package identifier is ``name``, when exactly one is."""
    for server in servers:
        if server.name == name:
            return server
    if "/" in name:
        return None
    lowered = name.lower()
    found = [
        s
        for s in servers
        if lowered in (s.name.rsplit("/", 1)[-1].lower(), short_name(s.name))
        or any(p.identifier.lower() == lowered for p in s.packages)
    ]
    if len(found) > 1:
        names = ", ".join(sorted(s.name for s in found))
        raise PackageNotFound(f"{name!r} is ambiguous: give the full name ({names})")
    return found[0] if found else None


class BundledCatalog:
    """The snapshot shipped with Catalyst (``catalyst_mcp/packages/catalog.json``)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.taken = str(document.get("taken", "unknown"))
        self.servers = parse_servers(document.get("servers"), "bundled catalog")

    @property
    def where(self) -> str:
        return f"the bundled catalog snapshot ({len(self.servers)} servers, {self.taken})"

    def search(self, text: str = "") -> list[ServerDetail]:
        return [s for s in self.servers if not text or _matches(s, text)]

    def get(self, name: str, version: str | None = None) -> ServerDetail:
        server = pick(self.servers, name)
        if server is None:
            raise PackageNotFound(f"no server {name!r} in {self.where}")
        if version is not None and server.version != version:
            raise PackageNotFound(
                f"{server.name} version {version} is not in {self.where} (it has "
                f"{server.version}); install the package directly: "
                f"npm:PACKAGE@{version} or pypi:PACKAGE@{version}"
            )
        return server

    def by_identifier(self, registry_type: str, identifier: str) -> ServerDetail | None:
        """The snapshot's server whose ``registry_type`` package is ``identifier``."""
        for server in self.servers:
            for package in server.packages:
                same = package.identifier.lower() == identifier.lower()
                if package.registry_type == registry_type and same:
                    return server
        return None


@cache
def bundled() -> BundledCatalog:
    """The bundled snapshot, read once."""
    text = resources.files("catalyst_mcp.packages").joinpath("catalog.json").read_bytes()
    return BundledCatalog(orjson.loads(text))


class Catalog:
    """Search and show over the registry, falling back to the bundled snapshot."""

    def __init__(self, settings: PackagesSettings, *, offline: bool = False) -> None:
        self.settings = settings
        self.offline = offline
        self.snapshot = bundled()

    def _client(self) -> RegistryClient:
        return RegistryClient(self.settings.registry_url, self.settings.registry_timeout_seconds)

    async def search(self, text: str = "") -> CatalogAnswer:
        reason = "--offline" if self.offline else None
        if not self.offline:
            client = self._client()
            try:
                servers = await client.search(text)
                return CatalogAnswer(servers, "registry", f"the MCP Registry at {client.base_url}")
            except RegistryUnreachable as exc:
                reason = exc.message
            finally:
                await client.aclose()
        return CatalogAnswer(self.snapshot.search(text), "bundled", self.snapshot.where, reason)

    async def get(self, name: str, version: str | None = None) -> CatalogAnswer:
        """One server; the registry's answer first, the snapshot's when the registry cannot be
        reached or does not know it (the answer's ``source`` says which)."""
        reason = "--offline" if self.offline else None
        if not self.offline:
            client = self._client()
            try:
                server = await self._registry_get(client, name, version)
                return CatalogAnswer([server], "registry", f"the MCP Registry at {client.base_url}")
            except RegistryUnreachable as exc:
                reason = exc.message
            except PackageNotFound as exc:
                try:
                    server = self.snapshot.get(name, version)
                except PackageNotFound:
                    raise exc from None
                return CatalogAnswer([server], "bundled", self.snapshot.where, exc.message)
            finally:
                await client.aclose()
        server = self.snapshot.get(name, version)
        return CatalogAnswer([server], "bundled", self.snapshot.where, reason)

    @staticmethod
    async def _registry_get(client: RegistryClient, name: str, version: str | None) -> ServerDetail:
        if "/" not in name:  # a short name: find its full one first
            server = pick(await client.search(name), name)
            if server is None:
                raise PackageNotFound(
                    f"no server {name!r} in the MCP Registry at {client.base_url}"
                )
            name = server.name
        return await client.get(name, version or "latest")
