"""Per-user upstream processes: a stdio server whose env says ``${secret:API_TOKEN}`` runs once
with the shared value, and once more for each caller who stored their own, started at their
first call and stopped when idle. The values reach the processes and nothing else."""

from __future__ import annotations

import asyncio
import contextlib
import json
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
from catalyst_mcp.errors import ProcessLimit, UpstreamUnavailable
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
from catalyst_mcp.upstreams.pool import ProcessPool
from tests.asgiclient import AsgiClient
from tests.conftest import FIXTURES, PYTHON
from tests.fakes import (
    JSON_HEADERS,
    initialize_request,
    legacy_request,
    modern_headers,
    modern_request,
)
from tests.live import poll

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
    assert isinstance(provider, ProcessPool)
    assert [t["name"] for t in gateway.registry.items("tools")] == ["envy__whoami"]

    alice, bob = await token_of(gateway, "alice"), await token_of(gateway, "bob")
    bob_sees = await whoami(client, bob)
    assert bob_sees["token"] == SHARED  # no value of his own: the shared process
    alice_sees = await whoami(client, alice)
    assert alice_sees["token"] == ALICE
    assert alice_sees["pid"] != bob_sees["pid"]
    assert (await whoami(client, alice))["pid"] == alice_sees["pid"]  # reused
    assert provider.health()["processes"] == 1

    # idle: her process is stopped; her next call starts another
    provider.clock = lambda: 10**9
    assert await provider.reap_idle() == 1
    assert provider.health()["processes"] == 0
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
    provider = ProcessPool("remote", "remote", config, 30.0, SecretInjector())
    assert provider.names == ["ORG", "TOKEN"]
    filled = provider._configured({"TOKEN": "t-1", "ORG": "acme"})
    assert filled.headers == {"Authorization": "Bearer t-1", "X-Org": "acme"}
    assert config.headers["Authorization"] == "Bearer ${secret:TOKEN}"  # the template stays


async def test_reaping_skips_instances_replaced_or_used_meanwhile() -> None:
    from catalyst_mcp.security.injection import SecretInjector
    from catalyst_mcp.settings import ServerConfig
    from catalyst_mcp.upstreams.pool import _Instance

    class Stub:
        def __init__(self) -> None:
            self.stopped = False

        def in_use(self) -> bool:
            return False

        async def stop(self) -> None:
            self.stopped = True
            await asyncio.sleep(0)
            # while this one stops, bob's instance is replaced by a new start
            provider.instances["bob"] = fresh

    config = ServerConfig.model_validate({"command": "x", "env": {"T": "${secret:T}"}})
    provider = ProcessPool("s", "s", config, 30.0, SecretInjector())
    provider.clock = lambda: 1000.0
    old_alice, old_bob, fresh = Stub(), Stub(), _Instance(Stub(), "d2", 999.0)  # type: ignore[arg-type]
    provider.instances = {
        "alice": _Instance(old_alice, "d", 0.0),  # type: ignore[arg-type]
        "bob": _Instance(old_bob, "d", 0.0),  # type: ignore[arg-type]
    }
    provider.idle_seconds = 10
    assert await provider.reap_idle() == 1  # alice's; bob's new instance is not touched
    assert old_alice.stopped and not old_bob.stopped
    assert provider.instances == {"bob": fresh}


# ---- sharing modes, with real (lean) processes ------------------------------------------------

LEAN = str(FIXTURES / "lean_server.py")


def lean(**extra: Any) -> dict[str, Any]:
    return {"command": PYTHON, "args": [LEAN], "era": "legacy", **extra}


def ctx_of(user: str, session: str | None = None, connection: str | None = None) -> Any:
    from catalyst_mcp.context import CallContext, Identity

    return CallContext(
        era="legacy" if session else "modern",
        protocol_version="2025-11-25",
        method="tools/call",
        identity=Identity(subject=user, kind="user"),
        session_id=session,
        connection_id=connection,
    )


@contextlib.asynccontextmanager
async def pool(**extra: Any) -> AsyncIterator[ProcessPool]:
    from catalyst_mcp.security.injection import SecretInjector
    from catalyst_mcp.settings import ServerConfig

    provider = ProcessPool(
        "lean", "lean", ServerConfig.model_validate(lean(**extra)), 30.0, SecretInjector()
    )
    await provider.start()
    await provider.wait_settled(20)
    try:
        yield provider
    finally:
        await provider.stop()


async def pid_for(provider: ProcessPool, ctx: Any) -> int:
    result = await provider.call("tools/call", {"name": "whoami", "arguments": {}}, ctx)
    assert not result.get("isError"), result
    return int(json.loads(result["content"][0]["text"])["pid"])


async def test_per_user_gives_each_caller_a_process_of_their_own() -> None:
    async with pool(sharing="per-user") as provider:
        alice = await pid_for(provider, ctx_of("alice"))
        bob = await pid_for(provider, ctx_of("bob"))
        shared = provider.health()["pid"]
        assert len({alice, bob, shared}) == 3  # nobody uses the listing process
        assert await pid_for(provider, ctx_of("alice")) == alice  # reused
        assert provider.health()["processes"] == 2
        assert sorted(p["instance"] for p in provider.processes()) == ["user alice", "user bob"]


async def test_per_session_gives_each_session_a_process_and_its_end_stops_it() -> None:
    async with pool(sharing="per-session") as provider:
        one = await pid_for(provider, ctx_of("alice", session="session-one-0123456789"))
        two = await pid_for(provider, ctx_of("alice", session="session-two-0123456789"))
        over_ws = await pid_for(provider, ctx_of("alice", connection="conn-abc"))
        assert len({one, two, over_ws}) == 3
        assert await pid_for(provider, ctx_of("alice", session="session-one-0123456789")) == one
        labels = sorted(p["instance"] for p in provider.processes())
        assert labels == ["session conn-abc", "session session-", "session session-"]
        assert provider.session_ended("session-one-0123456789") is True
        await poll(lambda: not alive(one), what="the ended session's process gone")
        assert alive(two) and provider.health()["processes"] == 2
        assert provider.session_ended("no-such-session") is False


async def test_per_session_refuses_a_stateless_request_clearly() -> None:
    async with pool(sharing="per-session") as provider:
        with pytest.raises(UpstreamUnavailable) as caught:
            await pid_for(provider, ctx_of("alice"))
        message = caught.value.message
        assert "one process per MCP session" in message and "stateless" in message
        assert "WebSocket (/ws) or stdio" in message and "sharing: per-user" in message


async def test_idle_processes_are_reaped_but_not_in_the_middle_of_a_call() -> None:
    async with pool(sharing="per-user", idle_seconds=0.3) as provider:
        alice = await pid_for(provider, ctx_of("alice"))
        slow = asyncio.create_task(
            provider.call(
                "tools/call", {"name": "slow", "arguments": {"seconds": 1.5}}, ctx_of("bob")
            )
        )
        await poll(lambda: "bob" in provider.instances, what="bob's process started")
        await poll(lambda: not alive(alice), timeout=10, what="alice's idle process reaped")
        assert "alice" not in provider.instances
        assert "bob" in provider.instances  # busy for longer than idle_seconds: kept
        assert not (await slow).get("isError")
        await poll(lambda: "bob" not in provider.instances, timeout=10, what="bob reaped")
        # a reaped user's next call starts another process
        assert await pid_for(provider, ctx_of("alice")) != alice


async def test_the_process_caps_refuse_with_the_cap_named() -> None:
    async with pool(sharing="per-user", max_processes=2) as provider:
        await pid_for(provider, ctx_of("alice"))
        await pid_for(provider, ctx_of("bob"))
        with pytest.raises(ProcessLimit) as caught:
            await pid_for(provider, ctx_of("carol"))
        assert caught.value.data == {"cap": "max_processes", "limit": 2}
        assert "servers.lean.max_processes" in caught.value.message
        assert "idle ones are stopped after 600s" in caught.value.message
        await pid_for(provider, ctx_of("alice"))  # a holder keeps working
    async with pool(sharing="per-session", max_processes_per_user=1) as provider:
        await pid_for(provider, ctx_of("alice", session="s-1"))
        with pytest.raises(ProcessLimit) as caught:
            await pid_for(provider, ctx_of("alice", session="s-2"))
        assert caught.value.data == {"cap": "max_processes_per_user", "limit": 1}
        assert "close a session you no longer use" in caught.value.message
        await pid_for(provider, ctx_of("bob", session="s-3"))  # the cap is per user
        provider.session_ended("s-1")
        await pid_for(provider, ctx_of("alice", session="s-2"))  # room again


async def test_a_cap_error_reaches_the_caller_as_a_tool_error(tmp_path: Path) -> None:
    settings = Settings.model_validate(
        {
            "servers": {"lean": lean(sharing="per-session", max_processes=1)},
            "packs": {"path": None},
            "audit": {"enabled": False},
        }
    )
    gw = Gateway(settings)
    await gw.start()
    try:
        client = AsgiClient(gw.asgi)
        sessions = []
        for _ in range(2):
            init = await client.post("/mcp", initialize_request(), JSON_HEADERS)
            sessions.append({**JSON_HEADERS, "mcp-session-id": init.headers["mcp-session-id"]})
        call = legacy_request("tools/call", {"name": "lean__whoami", "arguments": {}})
        first = (await client.post("/mcp", call, sessions[0])).message()["result"]
        assert not first.get("isError")
        second = (await client.post("/mcp", call, sessions[1])).message()["result"]
        assert second["isError"] is True
        assert "max_processes" in second["content"][0]["text"]
        # the first session ends (DELETE): its process goes, and the second gets one
        pid = int(json.loads(first["content"][0]["text"])["pid"])
        deleted = await client.request("DELETE", "/mcp", headers=sessions[0])
        assert deleted.status in (200, 204)
        await poll(lambda: not alive(pid), what="the deleted session's process gone")
        third = (await client.post("/mcp", call, sessions[1])).message()["result"]
        assert not third.get("isError"), third
        # a modern request over HTTP has no session
        message = modern_request("tools/call", {"name": "lean__whoami", "arguments": {}})
        modern = (await client.post("/mcp", message, modern_headers(message))).message()
        assert "stateless" in modern["result"]["content"][0]["text"]
    finally:
        await gw.stop()


def test_shared_with_secret_references_is_refused() -> None:
    from catalyst_mcp.settings import ServerConfig

    with pytest.raises(ValueError, match="sharing: shared cannot run a server whose env"):
        ServerConfig.model_validate(lean(sharing="shared", env={"T": "${secret:TOKEN}"}))
    assert ServerConfig.model_validate(lean(env={"T": "${secret:TOKEN}"})).mode == "per-user"
    assert ServerConfig.model_validate(lean()).mode == "shared"
    assert ServerConfig.model_validate(lean(sharing="per-session")).mode == "per-session"


async def test_two_legacy_sessions_get_two_processes_through_the_gateway() -> None:
    settings = Settings.model_validate(
        {
            "servers": {"lean": lean(sharing="per-session")},
            "packs": {"path": None},
            "audit": {"enabled": False},
        }
    )
    gw = Gateway(settings)
    await gw.start()
    try:
        client = AsgiClient(gw.asgi)
        call = legacy_request("tools/call", {"name": "lean__whoami", "arguments": {}})
        pids = []
        for _ in range(2):
            init = await client.post("/mcp", initialize_request(), JSON_HEADERS)
            session = {**JSON_HEADERS, "mcp-session-id": init.headers["mcp-session-id"]}
            for _ in range(2):  # the second call reuses the session's process
                result = (await client.post("/mcp", call, session)).message()["result"]
                pids.append(int(json.loads(result["content"][0]["text"])["pid"]))
        assert pids[0] == pids[1] and pids[2] == pids[3] and pids[0] != pids[2]
        status = gw.servers.status("lean", detail=True)
        assert status["sharing"] == "per-session" and status["processes"] == 2
        assert sorted(i["pid"] for i in status["instances"]) == sorted({pids[0], pids[2]})
    finally:
        await gw.stop()
