"""Per-user upstream processes: a stdio server whose env says ``${secret:API_TOKEN}`` runs once
with the shared value, and once more for each caller who stored their own, started at their
first call and stopped when idle. The values reach the processes and nothing else."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from catalyst_mcp.app import Gateway
from catalyst_mcp.observability import tracing
from catalyst_mcp.observability.auditsearch import export
from catalyst_mcp.security import apikeys
from catalyst_mcp.security.secretstore import SecretStore
from catalyst_mcp.security.vault import generate_key
from catalyst_mcp.settings import Settings
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.keys import KeyRepo
from catalyst_mcp.storage.migrate import upgrade
from catalyst_mcp.storage.users import UserRepo
from catalyst_mcp.upstreams.peruser import PerUserUpstream
from tests.asgiclient import AsgiClient
from tests.conftest import FIXTURES, PYTHON
from tests.fakes import modern_headers, modern_request

pytestmark = pytest.mark.subprocess

ALICE = "canary-alice-token-5e7a"
SHARED = "canary-shared-token-91c2"


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Every span the gateway makes (tracing on, every trace sampled)."""
    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    memory.provider = provider  # type: ignore[attr-defined]
    yield memory
    tracing.deactivate()


@pytest_asyncio.fixture
async def gateway(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spans: InMemorySpanExporter
) -> AsyncIterator[Gateway]:
    key = generate_key()
    monkeypatch.setenv("CATALYST_SECRET_KEY", key)
    url = f"sqlite+aiosqlite:///{tmp_path}/c.db"
    db = Database(url)
    await upgrade(db)
    store = SecretStore.from_environ(db, {"CATALYST_SECRET_KEY": key})
    await store.put("*", "envy", "API_TOKEN", SHARED)
    await store.put("alice", "*", "API_TOKEN", ALICE)
    for user in ("alice", "bob"):
        await UserRepo(db).create(user, roles=("admin",))
    await db.close()
    server = {
        "command": PYTHON,
        "args": [str(FIXTURES / "env_server.py")],
        "env": {"API_TOKEN": "${secret:API_TOKEN}"},
    }
    settings = Settings.model_validate(
        {
            "storage": {"url": url},
            "auth": {"enabled": True},
            "servers": {"envy": server},
            "packs": {"path": None},
        }
    )
    gw = Gateway(settings, tracer_provider=spans.provider)  # type: ignore[attr-defined]
    await gw.start()
    yield gw
    await gw.stop()


async def token_of(gw: Gateway, user: str) -> str:
    assert gw.db is not None
    new = apikeys.generate()
    await KeyRepo(gw.db).create(user, "k", new.prefix, new.key_hash)
    return new.token


async def whoami(client: AsgiClient, token: str) -> dict[str, Any]:
    message = modern_request("tools/call", {"name": "envy__whoami", "arguments": {}})
    headers = {**modern_headers(message), "authorization": f"Bearer {token}"}
    result = (await client.post("/mcp", message, headers)).message()["result"]
    assert not result.get("isError"), result
    structured: dict[str, Any] = result["structuredContent"]
    return structured


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_each_user_with_own_secrets_gets_their_own_process(
    gateway: Gateway, caplog: pytest.LogCaptureFixture, tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    caplog.set_level(logging.DEBUG, logger="catalyst")
    client = AsgiClient(gateway.asgi)
    provider = gateway.registry.provider("envy")
    assert isinstance(provider, PerUserUpstream)
    assert [t["name"] for t in gateway.registry.items("tools")] == ["envy__whoami"]

    alice, bob = await token_of(gateway, "alice"), await token_of(gateway, "bob")
    bob_sees = await whoami(client, bob)
    assert bob_sees["token"] == SHARED  # no value of his own: the shared process
    alice_sees = await whoami(client, alice)
    assert alice_sees["token"] == ALICE
    assert alice_sees["pid"] != bob_sees["pid"]
    assert (await whoami(client, alice))["pid"] == alice_sees["pid"]  # reused
    assert provider.health()["per_user_instances"] == 1

    # idle: her process is stopped; her next call starts another
    provider.clock = lambda: 10**9
    assert await provider.reap_idle() == 1
    assert provider.health()["per_user_instances"] == 0
    for _ in range(100):
        if not alive(int(alice_sees["pid"])):
            break
        await asyncio.sleep(0.05)
    assert not alive(int(alice_sees["pid"]))

    # the values went to the processes, and nowhere else the gateway writes
    assert gateway.access.audit is not None and gateway.db is not None
    await gateway.access.audit.flush()
    trail = tmp_path / "audit.jsonl"
    with trail.open("w") as stream:
        await export(gateway.db, stream)
    metrics = (await client.get("/metrics", {"authorization": f"Bearer {alice}"})).body.decode()
    assert 'tool="envy__whoami"' in metrics  # scraped (an admin's key)
    exported = [s.to_json() for s in spans.get_finished_spans()]
    assert any('"gen_ai.tool.name": "envy__whoami"' in s for s in exported)
    assert any('"mcp.method.name": "tools/call"' in s and "CLIENT" in s for s in exported)
    for canary in (ALICE, SHARED, alice, bob):  # the secrets, and the callers' API keys
        assert canary not in caplog.text
        assert canary not in trail.read_text()
        assert canary not in str(gateway.readiness())
        assert canary not in metrics
        assert not [s for s in exported if canary in s]


def test_secret_references_of_env_and_headers_are_filled_per_user() -> None:
    from catalyst_mcp.security.injection import SecretInjector
    from catalyst_mcp.settings import ServerConfig

    config = ServerConfig.model_validate(
        {
            "url": "https://api.example.com/mcp",
            "headers": {"Authorization": "Bearer ${secret:TOKEN}", "X-Org": "${secret:ORG}"},
        }
    )
    provider = PerUserUpstream("remote", "remote", config, 30.0, SecretInjector())
    assert provider.names == ["ORG", "TOKEN"]
    filled = provider._configured({"TOKEN": "t-1", "ORG": "acme"})
    assert filled.headers == {"Authorization": "Bearer t-1", "X-Org": "acme"}
    assert config.headers["Authorization"] == "Bearer ${secret:TOKEN}"  # the template stays


async def test_reaping_skips_instances_replaced_or_used_meanwhile() -> None:
    from catalyst_mcp.security.injection import SecretInjector
    from catalyst_mcp.settings import ServerConfig
    from catalyst_mcp.upstreams.peruser import _Instance

    class Stub:
        def __init__(self) -> None:
            self.stopped = False

        async def stop(self) -> None:
            self.stopped = True
            await asyncio.sleep(0)
            # while this one stops, bob's instance is replaced by a new start
            provider.users["bob"] = fresh

    config = ServerConfig.model_validate({"command": "x", "env": {"T": "${secret:T}"}})
    provider = PerUserUpstream("s", "s", config, 30.0, SecretInjector())
    provider.clock = lambda: 1000.0
    old_alice, old_bob, fresh = Stub(), Stub(), _Instance(Stub(), "d2", 999.0)  # type: ignore[arg-type]
    provider.users = {
        "alice": _Instance(old_alice, "d", 0.0),  # type: ignore[arg-type]
        "bob": _Instance(old_bob, "d", 0.0),  # type: ignore[arg-type]
    }
    provider.idle_seconds = 10
    assert await provider.reap_idle() == 1  # alice's; bob's new instance is not touched
    assert old_alice.stopped and not old_bob.stopped
    assert provider.users == {"bob": fresh}
