"""Configuration changes made through one instance's API apply on the other within a second
(two gateways in this process, one SQLite file, the real Redis)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.api.server import AdminApi
from catalyst_mcp.cluster.announce import ANNOUNCED, appliers_for
from catalyst_mcp.errors import SharedStateUnavailable
from catalyst_mcp.security import apikeys
from catalyst_mcp.storage.keys import KeyRepo
from catalyst_mcp.storage.users import UserRepo
from tests.asgiclient import AsgiClient
from tests.cluster.conftest import (
    REDIS_URL,
    Instances,
    shared_settings,
    start_instances,
    stop_instances,
)
from tests.conftest import free_port
from tests.fakes import JSON_HEADERS, modern_headers, modern_request
from tests.live import poll

pytestmark = pytest.mark.redis

WITHIN = 1.0  # seconds: the promise


async def call_echo(client: AsgiClient, token: str | None = None) -> dict[str, Any]:
    message = modern_request("tools/call", {"name": "fake__echo", "arguments": {"text": "x"}})
    headers = modern_headers(message)
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return (await client.post("/mcp", message, headers)).message()


async def applied_within(check: Any, started: float) -> float:
    """Poll ``check`` (every 5 ms) and return how long after ``started`` it held."""
    await poll(check, timeout=5, interval=0.005, what="the change applied on the other instance")
    return time.monotonic() - started


async def test_a_role_changed_on_one_instance_applies_on_the_other(pair: Instances) -> None:
    assert "result" in await call_echo(pair.clients[1])
    deny = {"rules": [{"effect": "deny", "match": ["fake__echo"]}]}
    started = time.monotonic()
    response = await pair.clients[0].request(
        "PUT", "/api/v1/roles/admin", headers=JSON_HEADERS, body=_json(deny)
    )
    assert response.status == 200, response.body
    assert (await call_echo(pair.clients[0]))["error"]["code"] == -32003  # at once, here

    async def refused() -> bool:
        return "error" in await call_echo(pair.clients[1])

    assert await applied_within(refused, started) < WITHIN


async def test_a_revoked_key_is_refused_by_the_other_instance_at_once(
    prefix: str, tmp_path: Path
) -> None:
    settings = shared_settings(prefix, tmp_path, auth={"enabled": True})
    instances = await start_instances(settings)
    try:
        db = instances.gateways[0].db
        assert db is not None
        await UserRepo(db).create("alice", roles=("admin",))
        new = apikeys.generate()
        await KeyRepo(db).create("alice", "k", new.prefix, new.key_hash)
        assert "result" in await call_echo(instances.clients[1], new.token)  # cached there now
        started = time.monotonic()
        response = await instances.clients[0].request(
            "DELETE",
            f"/api/v1/keys/{new.prefix}",
            headers={"authorization": f"Bearer {new.token}"},
        )
        assert response.status == 200, response.body
        assert response.json()["revoked_at"] is not None

        async def refused() -> bool:
            message = modern_request("tools/call", {"name": "fake__echo", "arguments": {}})
            headers = {**modern_headers(message), "authorization": f"Bearer {new.token}"}
            return (await instances.clients[1].post("/mcp", message, headers)).status == 401

        assert await applied_within(refused, started) < WITHIN
    finally:
        await stop_instances(instances)


async def test_a_server_stopped_through_one_instance_stops_on_the_other(
    prefix: str, tmp_path: Path
) -> None:
    (tmp_path / "files").mkdir()
    settings = shared_settings(
        prefix,
        tmp_path,
        servers={"files": {"filesystem": {"roots": [str(tmp_path / "files")]}}},
    )
    instances = await start_instances(settings)
    try:
        other = instances.gateways[1].servers
        assert other.status("files")["state"] == "ready"
        started = time.monotonic()
        response = await instances.clients[0].request("POST", "/api/v1/servers/files/stop")
        assert response.status == 200, response.body
        assert (
            await applied_within(lambda: other.status("files")["state"] == "stopped", started)
            < WITHIN
        )
        await instances.clients[0].request("POST", "/api/v1/servers/files/start")
        await poll(lambda: other.status("files")["state"] == "ready")
    finally:
        await stop_instances(instances)


async def test_a_rule_stored_through_one_instance_applies_on_the_other(pair: Instances) -> None:
    rule = {"tools": ["fake__echo"], "action": "deny", "message": "not today"}
    started = time.monotonic()
    response = await pair.clients[0].request(
        "PUT", "/api/v1/rules/no-echo", headers=JSON_HEADERS, body=_json(rule)
    )
    assert response.status == 200, response.body

    async def refused() -> bool:
        return "not today" in str(await call_echo(pair.clients[1]))

    assert await applied_within(refused, started) < WITHIN


async def test_changes_of_an_instance_are_not_applied_twice_there(pair: Instances) -> None:
    deny = {"rules": [{"effect": "deny", "match": ["fake__echo"]}]}
    await pair.clients[0].request(
        "PUT", "/api/v1/roles/admin", headers=JSON_HEADERS, body=_json(deny)
    )
    await poll(lambda: pair.gateways[1].cluster.announcements.applied == 1)  # type: ignore[union-attr]
    assert pair.gateways[0].cluster.announcements.applied == 0  # type: ignore[union-attr]


def test_every_announced_change_is_an_api_change_with_an_applier(
    pair_free_gateway: Any,
) -> None:
    api: AdminApi = pair_free_gateway.api
    changes = {route.action for route in api.router.routes if route.changes}
    assert changes >= ANNOUNCED
    assert set(appliers_for(pair_free_gateway)) == ANNOUNCED


@pytest.fixture
def pair_free_gateway(tmp_path: Path) -> Any:
    """A gateway that is never started (its route table and appliers only)."""
    from catalyst_mcp.app import Gateway
    from catalyst_mcp.settings import Settings

    settings = Settings.model_validate(
        {"storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/x.db"}, "packs": {"path": None}}
    )
    return Gateway(settings)


def _json(data: Any) -> bytes:
    import orjson

    return orjson.dumps(data)


async def test_a_role_stored_by_the_cli_applies_on_running_instances(
    prefix: str, pair: Instances, tmp_path: Path
) -> None:
    from tests.cli.helpers import run

    rules = tmp_path / "deny.yaml"
    rules.write_text('[{effect: deny, match: ["fake__echo"]}]', encoding="utf-8")
    env = {
        "CATALYST_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/shared.db",
        "CATALYST_REDIS__URL": REDIS_URL,
        "CATALYST_REDIS__PREFIX": prefix,
    }
    assert "result" in await call_echo(pair.clients[1])
    done = await asyncio.to_thread(
        run, "roles", "add", "admin", "--rules", str(rules), "--replace", env=env
    )
    assert done.exit_code == 0, done.stderr
    started = time.monotonic()

    async def refused() -> bool:
        return all(["error" in await call_echo(client) for client in pair.clients])

    assert await applied_within(refused, started) < WITHIN


async def test_without_redis_the_cli_tells_nobody(tmp_path: Path) -> None:
    from catalyst_mcp.cluster.announce import announce_from_cli
    from catalyst_mcp.cluster.config import RedisSettings

    assert not await announce_from_cli(RedisSettings(), "admin.roles.create", "x")
    dead = RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0", timeout_seconds=0.5)
    assert not await announce_from_cli(dead, "admin.keys.create", "x")  # nothing to apply
    with pytest.raises(SharedStateUnavailable, match="cannot be reached"):
        await announce_from_cli(dead, "admin.roles.create", "x")


def test_the_cli_warns_when_it_cannot_tell_the_gateways(tmp_path: Path) -> None:
    from tests.cli.helpers import run

    rules = tmp_path / "deny.yaml"
    rules.write_text('[{effect: deny, match: ["x"]}]', encoding="utf-8")
    env = {
        "CATALYST_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db",
        "CATALYST_REDIS__URL": f"redis://127.0.0.1:{free_port()}/0",
        "CATALYST_REDIS__TIMEOUT_SECONDS": "0.5",
    }
    done = run("roles", "add", "ops", "--rules", str(rules), env=env)
    assert done.exit_code == 0
    assert "stored role 'ops'" in done.stdout
    assert "warning: the change is made, but the running gateways were not told" in done.stderr
