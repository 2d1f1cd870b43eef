"""``/servers/{name}/tools/changes`` and ``/approve`` in process: what they refuse, the
reviewed-digest guard, what is audited, and answers that match the OpenAPI document."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from catalyst_mcp.app import Gateway
from catalyst_mcp.settings import ServerConfig
from catalyst_mcp.upstreams import upstream as upstream_module
from tests.live import poll
from tests.trust.conftest import (
    INJECTED,
    ScriptedServer,
    World,
    api,
    audited,
    gateway_settings,
    running,
    tool_names,
)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> World:
    found = World()

    def build(name: str, config: ServerConfig) -> ScriptedServer:
        found.transports.append(ScriptedServer(found))
        return found.transports[-1]

    monkeypatch.setattr(upstream_module, "build_transport", build)
    return found


async def held_read(gateway: Gateway, world: World, description: str) -> None:
    world.describe("read", description)
    await world.announce()
    await poll(lambda: "read" in gateway.pinning.held_on("files"), what="read held back")


def validate(document: dict[str, Any], model: str, data: Any) -> None:
    schema = {**document["components"]["schemas"][model], "components": document["components"]}
    Draft202012Validator(schema).validate(data)


async def test_changes_and_approvals_match_the_openapi_document(
    world: World, tmp_path: Path
) -> None:
    async with running(gateway_settings(f"sqlite:///{tmp_path / 'c.db'}")) as gateway:
        await held_read(gateway, world, "Read a file." + INJECTED)
        document = (await api(gateway, "GET", "/openapi.json")).json()
        changes = (await api(gateway, "GET", "/servers/files/tools/changes")).json()
        validate(document, "ToolChanges", changes)
        operation = document["paths"]["/api/v1/servers/{name}/tools/approve"]["post"]
        assert operation["operationId"] == "tools_approve"
        assert {"404", "409", "422"} <= set(operation["responses"])
        approved = await api(gateway, "POST", "/servers/files/tools/approve", {"all": True})
        assert approved.status == 200, approved.body
        validate(document, "ToolApprovals", approved.json())


@pytest.mark.parametrize(
    ("body", "location"),
    [
        ({}, "body"),
        ({"tools": ["read"], "all": True}, "body"),
        ({"tools": [""]}, "body.tools.0"),
        ({"all": True, "digests": {"read": "abc"}}, "body.digests.read"),
        ({"all": True, "everything": True}, "body.everything"),
    ],
    ids=["nothing", "both", "empty-name", "short-digest", "unknown-field"],
)
async def test_a_bad_approval_is_422(
    world: World, tmp_path: Path, body: dict[str, Any], location: str
) -> None:
    async with running(gateway_settings(f"sqlite:///{tmp_path / 'c.db'}")) as gateway:
        await held_read(gateway, world, "Read a file, quickly.")
        response = await api(gateway, "POST", "/servers/files/tools/approve", body)
        assert response.status == 422, response.body
        assert location in {p["location"] for p in response.json()["error"]["problems"]}
        assert gateway.pinning.held_on("files") == {"read"}


async def test_unknown_servers_and_tools_are_404_and_audited(world: World, tmp_path: Path) -> None:
    async with running(gateway_settings(f"sqlite:///{tmp_path / 'c.db'}")) as gateway:
        await held_read(gateway, world, "Read a file, quickly.")
        missing = await api(gateway, "GET", "/servers/ghost/tools/changes")
        assert missing.status == 404
        assert "no tools of server 'ghost' are pinned" in missing.json()["error"]["message"]
        response = await api(gateway, "POST", "/servers/files/tools/approve", {"tools": ["write"]})
        assert response.status == 404
        assert "no change of tool 'write'" in response.json()["error"]["message"]
        bad_name = await api(gateway, "GET", "/servers/no__good/tools/changes")
        assert bad_name.status == 422
        assert gateway.pinning.held_on("files") == {"read"}
        trail = await audited(gateway, "admin.tools.approve", "pin.approved")
    assert trail == [("admin.tools.approve", "files", "error", "anonymous")]


async def test_an_approval_of_what_was_reviewed_refuses_a_later_change(
    world: World, tmp_path: Path
) -> None:
    async with running(gateway_settings(f"sqlite:///{tmp_path / 'c.db'}")) as gateway:
        await held_read(gateway, world, "Read a file, quickly.")
        [reviewed] = (await api(gateway, "GET", "/servers/files/tools/changes")).json()["changes"]
        # the server changes again, after the review
        pins = gateway.pinning.live("files")[0]
        await held_read(gateway, world, "Read a file." + INJECTED)
        await poll(lambda: pins.held["read"].digest != reviewed["digest"], what="changed again")
        body = {"tools": ["read"], "digests": {"read": reviewed["digest"][:12]}}
        response = await api(gateway, "POST", "/servers/files/tools/approve", body)
        assert response.status == 409, response.body
        assert "changed since it was reviewed" in response.json()["error"]["message"]
        assert "files__read" not in await tool_names(gateway)
        [now] = (await api(gateway, "GET", "/servers/files/tools/changes")).json()["changes"]
        body = {"tools": ["read"], "digests": {"read": now["digest"]}}
        assert (await api(gateway, "POST", "/servers/files/tools/approve", body)).status == 200
        assert "files__read" in await tool_names(gateway)


async def test_the_pinned_servers_say_how_many_tools_wait(world: World, tmp_path: Path) -> None:
    async with running(gateway_settings(f"sqlite:///{tmp_path / 'c.db'}")) as gateway:
        await held_read(gateway, world, "Read a file." + INJECTED)
        pinned = await api(gateway, "GET", "/pins")
        assert pinned.status == 200, pinned.body
        assert pinned.json() == {"servers": [{"server": "files", "waiting": 1, "held": ["read"]}]}
        document = (await api(gateway, "GET", "/openapi.json")).json()
        validate(document, "PinnedServers", pinned.json())
        await api(gateway, "POST", "/servers/files/tools/approve", {"all": True})
        after = (await api(gateway, "GET", "/pins")).json()
        assert after == {"servers": [{"server": "files", "waiting": 0, "held": []}]}
