"""The MCP Registry's read API (``GET /v0.1/servers``), over the shared HTTP client.

``search`` follows ``metadata.nextCursor`` page by page; ``latest`` fetches one server's newest
version. A registry that cannot be reached (no route, DNS, refused, timed out, not JSON, a 5xx)
is :class:`RegistryUnreachable`, so the catalog can fall back to its bundled snapshot.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

import orjson

from catalyst_mcp import __version__
from catalyst_mcp.errors import PackageNotFound, RegistryUnreachable
from catalyst_mcp.net.httpclient import HttpClient, HttpError
from catalyst_mcp.packages.serverjson import ServerDetail, parse_server

__all__ = ["RegistryClient"]

PAGE_SIZE = 100
MAX_PAGES = 10  # a search that matches more than 1,000 servers stops there


class RegistryClient:
    """Read-only client of one registry (``base_url`` as in the ``registry_url`` setting)."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.base_path = urlsplit(self.base_url).path
        self.timeout = timeout
        self.client = HttpClient(self.base_url, max_connections=2, connect_timeout=timeout)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def _get(self, path: str, query: dict[str, str] | None = None) -> Any:
        target = self.base_path + path + (f"?{urlencode(query)}" if query else "")
        headers = {"Accept": "application/json", "User-Agent": f"catalyst/{__version__}"}
        try:
            async with asyncio.timeout(self.timeout):
                response = await self.client.request("GET", headers, path=target)
                body = await response.read()
        except TimeoutError as exc:
            raise RegistryUnreachable(
                f"the MCP Registry at {self.base_url} did not answer within {self.timeout:g}s"
            ) from exc
        except HttpError as exc:
            raise RegistryUnreachable(f"the MCP Registry at {self.base_url}: {exc}") from exc
        if response.status == 404:
            raise PackageNotFound(f"not in the MCP Registry at {self.base_url}: {path}")
        if response.status != 200:
            raise RegistryUnreachable(
                f"the MCP Registry at {self.base_url} answered HTTP {response.status}"
            )
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise RegistryUnreachable(
                f"the MCP Registry at {self.base_url} answered something that is not JSON"
            ) from exc

    async def search(self, text: str = "") -> list[ServerDetail]:
        """The latest version of every server whose name or description contains ``text``."""
        found: list[ServerDetail] = []
        cursor: str | None = None
        for _ in range(MAX_PAGES):
            query = {"limit": str(PAGE_SIZE), "version": "latest"}
            if text:
                query["search"] = text
            if cursor:
                query["cursor"] = cursor
            page = await self._get("/v0.1/servers", query)
            if not isinstance(page, dict) or not isinstance(page.get("servers"), list):
                raise RegistryUnreachable(
                    f"the MCP Registry at {self.base_url} answered an unexpected document"
                )
            found += [parse_server(item, self.base_url) for item in page["servers"]]
            metadata = page.get("metadata")
            cursor = metadata.get("nextCursor") if isinstance(metadata, dict) else None
            if not cursor:
                break
        return found

    async def get(self, name: str, version: str = "latest") -> ServerDetail:
        """One server at ``version`` (``latest`` by default)."""
        path = f"/v0.1/servers/{quote(name, safe='')}/versions/{quote(version, safe='')}"
        try:
            return parse_server(await self._get(path), self.base_url)
        except PackageNotFound:
            what = name if version == "latest" else f"{name} version {version}"
            raise PackageNotFound(f"{what} is not in the MCP Registry at {self.base_url}") from None
