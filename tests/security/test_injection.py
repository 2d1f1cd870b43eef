"""Per-user secrets injected into a pack's REST connection, end to end: the gateway resolves
``${secret:NAME}`` for each caller (their own value, else the shared one), the API receives
it, and the value shows up nowhere else: not in results, errors, logs or the audit trail."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml

from catalyst_mcp.app import Gateway
from catalyst_mcp.context import CallContext, Identity
from catalyst_mcp.errors import PackError
from catalyst_mcp.observability.auditsearch import export
from catalyst_mcp.security import apikeys
from catalyst_mcp.security.injection import SecretInjector
from catalyst_mcp.security.secretstore import SecretStore
from catalyst_mcp.security.vault import generate_key
from catalyst_mcp.settings import Settings
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.keys import KeyRepo
from catalyst_mcp.storage.migrate import upgrade
from catalyst_mcp.storage.users import UserRepo
from tests.asgiclient import AsgiClient
from tests.fakes import modern_headers, modern_request
from tests.packs.connectors.apiserver import ApiServer
from tests.security.test_access import bearer

pytestmark = pytest.mark.network

ALICE_CANARY = "canary-alice-7c1d9e2f"
SHARED_CANARY = "canary-shared-44b0aa13"


def pack(base_url: str) -> dict[str, Any]:
    return {
        "pack": "api",
        "connections": {
            "web": {
                "type": "rest",
                "base_url": base_url,
                "allow_private_network": True,
                "headers": {"X-Api-Key": "${secret:API_KEY}"},
            }
        },
        "tools": [
            {
                "name": "whoami",
                "description": "Echo the request",
                "rest": {"connection": "web", "path": "/echo"},
            }
        ],
    }


@pytest_asyncio.fixture
async def api() -> AsyncIterator[ApiServer]:
    async with ApiServer({}).running() as server:
        yield server


@pytest_asyncio.fixture
async def gateway(
    api: ApiServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Gateway]:
    monkeypatch.setenv("CATALYST_SECRET_KEY", generate_key())
    packs = tmp_path / "packs"
    packs.mkdir()
    (packs / "api.yaml").write_text(yaml.safe_dump(pack(f"http://127.0.0.1:{api.port}")))
    url = f"sqlite+aiosqlite:///{tmp_path}/c.db"
    settings = Settings.model_validate(
        {"storage": {"url": url}, "auth": {"enabled": True}, "packs": {"path": str(packs)}}
    )
    gw = Gateway(settings)
    await gw.start()
    assert gw.db is not None
    store = SecretStore.from_environ(gw.db, {"CATALYST_SECRET_KEY": _key()})
    await store.put("alice", "api", "API_KEY", ALICE_CANARY)
    await store.put("*", "*", "API_KEY", SHARED_CANARY)
    yield gw
    await gw.stop()


def _key() -> str:
    import os

    return os.environ["CATALYST_SECRET_KEY"]


async def key_for(gw: Gateway, user: str) -> str:
    assert gw.db is not None
    await UserRepo(gw.db).create(user, roles=("admin",))
    new = apikeys.generate()
    await KeyRepo(gw.db).create(user, "k", new.prefix, new.key_hash)
    return new.token


async def whoami(client: AsgiClient, token: str) -> dict[str, Any]:
    message = modern_request("tools/call", {"name": "api__whoami", "arguments": {}})
    response = await client.post("/mcp", message, {**modern_headers(message), **bearer(token)})
    result: dict[str, Any] = response.message()["result"]
    return result


async def test_each_caller_gets_their_own_value_else_the_shared_one(
    gateway: Gateway, api: ApiServer, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    client = AsgiClient(gateway.asgi)
    alice, bob = await key_for(gateway, "alice"), await key_for(gateway, "bob")
    for token in (alice, bob):
        result = await whoami(client, token)
        assert not result.get("isError"), result
    sent = [seen.headers["x-api-key"] for seen in api.seen("/echo")]
    assert sent == [ALICE_CANARY, SHARED_CANARY]
    # the echo endpoint sends the header back: the result is the API's, so it may show it;
    # everything the gateway itself writes must not
    assert gateway.access.audit is not None and gateway.db is not None
    await gateway.access.audit.flush()
    exported = tmp_path / "audit.jsonl"
    with exported.open("w") as stream:
        await export(gateway.db, stream)
    trail = exported.read_text()
    assert trail.count('"tools/call"') == 2
    for canary in (ALICE_CANARY, SHARED_CANARY):
        assert canary not in trail
        assert canary not in caplog.text


async def test_a_missing_secret_is_a_clear_tool_error(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/s.db")
    try:
        await upgrade(db)
        injector = SecretInjector()
        with pytest.raises(PackError, match="needs the secrets store"):
            await injector.resolve("alice", "api", "API_KEY")
        injector.store = SecretStore.from_environ(db, {})
        with pytest.raises(PackError, match="CATALYST_SECRET_KEY is not set"):
            await injector.resolve("alice", "api", "API_KEY")
        store = SecretStore.from_environ(db, {"CATALYST_SECRET_KEY": generate_key()})
        injector.store = store
        assert await injector.resolve("alice", "api", "API_KEY") is None
        await store.put("alice", "api", "API_KEY", "v1")
        assert await injector.resolve("alice", "api", "API_KEY") is None  # cached for ttl
        injector.forget()
        lookup = injector.for_scope("api")
        ctx = CallContext("modern", "2026-07-28", identity=Identity("alice", "user"))
        assert await lookup("API_KEY", ctx) == "v1"
        # a value sealed under a key this gateway no longer has
        injector.forget()
        injector.store = SecretStore.from_environ(db, {"CATALYST_SECRET_KEY": generate_key()})
        with pytest.raises(PackError, match="cannot be decrypted"):
            await lookup("API_KEY", ctx)
    finally:
        await db.close()
