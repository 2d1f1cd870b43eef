"""The catalog: the bundled snapshot, and the MCP Registry API (a fake one on loopback) with
cursor pagination, and the fallback to the snapshot when the registry cannot be reached."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from catalyst_mcp.errors import PackageNotFound, RegistryUnreachable
from catalyst_mcp.packages.catalog import Catalog, bundled
from catalyst_mcp.packages.config import PackagesSettings
from catalyst_mcp.packages.registryapi import RegistryClient
from tests.conftest import free_port
from tests.packages.fakes import FakeServer


def test_the_snapshot_holds_a_few_dozen_installable_servers() -> None:
    snapshot = bundled()
    names = [s.name for s in snapshot.servers]
    assert len(names) >= 30
    assert len(set(names)) == len(names)
    kinds = {s.package_for().registry_type for s in snapshot.servers if s.package_for()}
    assert kinds == {"npm", "pypi"}
    for server in snapshot.servers:
        package = server.package_for()
        assert package is not None, server.name
        assert package.version == server.version, server.name
        assert len(server.description) <= 100
        assert "/" in server.name


def test_snapshot_search_and_show() -> None:
    snapshot = bundled()
    found = [s.name for s in snapshot.search("MEMORY")]
    assert "io.github.modelcontextprotocol/server-memory" in found
    assert [s.name for s in snapshot.search("no-such-thing-at-all")] == []
    brave = snapshot.get("brave-search-mcp-server")  # the last part of its name
    variable = brave.packages[0].environment_variables[0]
    assert (variable.name, variable.is_secret, variable.is_required) == (
        "BRAVE_API_KEY",
        True,
        True,
    )
    assert snapshot.get("time").packages[0].identifier == "mcp-server-time"  # short name
    assert snapshot.get("mcp-server-time").name.endswith("/server-time")  # package identifier
    with pytest.raises(PackageNotFound, match="no server 'nope'"):
        snapshot.get("nope")
    with pytest.raises(PackageNotFound, match=r"version 0.0.1 is not in"):
        snapshot.get("time", "0.0.1")


def _entry(name: str, description: str, version: str = "1.0.0") -> dict[str, object]:
    return {
        "server": {
            "name": name,
            "description": description,
            "version": version,
            "packages": [
                {
                    "registryType": "npm",
                    "identifier": f"@acme/{name.rsplit('/', 1)[-1]}",
                    "version": version,
                    "transport": {"type": "stdio"},
                    "environmentVariables": [
                        {"name": "ACME_TOKEN", "isSecret": True, "isRequired": True}
                    ],
                }
            ],
        },
        "_meta": {"io.modelcontextprotocol.registry/official": {"status": "active"}},
    }


@pytest.fixture
def registry() -> Iterator[FakeServer]:
    with FakeServer() as server:
        server.routes.clear()
        yield server


@pytest.mark.network
async def test_search_follows_the_cursor(registry: FakeServer) -> None:
    page1 = {
        "servers": [_entry("com.acme/alpha", "first")],
        "metadata": {"nextCursor": "c2", "count": 1},
    }
    page2 = {"servers": [_entry("com.acme/beta", "second")], "metadata": {"count": 1}}
    registry.json("/v0.1/servers?limit=100&version=latest&search=acme", page1)
    registry.json("/v0.1/servers?limit=100&version=latest&search=acme&cursor=c2", page2)
    answer = await Catalog(PackagesSettings(registry_url=registry.url)).search("acme")
    assert answer.source == "registry"
    assert [s.name for s in answer.servers] == ["com.acme/alpha", "com.acme/beta"]
    assert answer.servers[1].packages[0].environment_variables[0].is_secret
    assert len(registry.requests) == 2 and "cursor=c2" in registry.requests[1]


@pytest.mark.network
async def test_show_one_server_and_a_missing_one(registry: FakeServer) -> None:
    registry.json(
        "/v0.1/servers/com.acme%2Fbeta/versions/latest", _entry("com.acme/beta", "b", "2.0.0")
    )
    answer = await Catalog(PackagesSettings(registry_url=registry.url)).get("com.acme/beta")
    assert (answer.source, answer.servers[0].version) == ("registry", "2.0.0")
    client = RegistryClient(registry.url)
    try:
        with pytest.raises(PackageNotFound, match=r"com.acme/none is not in the MCP Registry"):
            await client.get("com.acme/none")
    finally:
        await client.aclose()
    # a name the registry does not know but the snapshot does: the snapshot's entry
    answer = await Catalog(PackagesSettings(registry_url=registry.url)).get("time")
    assert answer.source == "bundled"


@pytest.mark.network
async def test_an_unreachable_registry_falls_back_to_the_snapshot() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    catalog = Catalog(PackagesSettings(registry_url=dead, registry_timeout_seconds=2))
    answer = await catalog.search("memory")
    assert answer.source == "bundled"
    assert "cannot connect" in (answer.fallback_reason or "")
    assert any(s.name.endswith("/server-memory") for s in answer.servers)
    client = RegistryClient(dead, timeout=2)
    try:
        with pytest.raises(RegistryUnreachable):
            await client.search("x")
    finally:
        await client.aclose()


@pytest.mark.network
async def test_a_registry_answering_nonsense_is_unreachable(registry: FakeServer) -> None:
    registry.routes["/v0.1/servers?limit=100&version=latest"] = ("text/html", b"<html>")
    client = RegistryClient(registry.url)
    try:
        with pytest.raises(RegistryUnreachable, match="not JSON"):
            await client.search("")
    finally:
        await client.aclose()


async def test_offline_uses_the_snapshot_without_asking() -> None:
    answer = await Catalog(PackagesSettings(), offline=True).search("time")
    assert answer.source == "bundled" and answer.fallback_reason == "--offline"
