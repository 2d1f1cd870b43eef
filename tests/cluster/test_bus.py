"""The bus between instances on the real Redis: what a client gets when Redis cannot be
reached, and a pub/sub connection that is cut and made again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from catalyst_mcp.app import Gateway
from catalyst_mcp.cluster.bus import Bus
from catalyst_mcp.cluster.config import RedisSettings
from catalyst_mcp.errors import SharedStateUnavailable
from tests.cluster.conftest import REDIS_URL, Instances, shared_settings
from tests.cluster.test_sessions import URI, Session
from tests.conftest import free_port
from tests.fakes import JSON_HEADERS, FakeProvider, initialize_request, legacy_request

pytestmark = pytest.mark.redis


async def test_a_gateway_without_its_redis_does_not_start(prefix: str, tmp_path: Path) -> None:
    settings = shared_settings(prefix, tmp_path)
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = settings.model_copy(
        update={"redis": RedisSettings(url=dead, prefix=prefix, timeout_seconds=0.5)}
    )
    gateway = Gateway(settings, [FakeProvider()])
    with pytest.raises(SharedStateUnavailable, match=r"cannot reach Redis at .*\(redis.url\)"):
        await gateway.start()
    await gateway.stop()


async def test_without_redis_a_client_gets_503_and_known_sessions_go_on(
    pair: Instances,
) -> None:
    session = await Session(pair).initialize(on=0)
    bus = pair.gateways[0].cluster.bus  # type: ignore[union-attr]
    working = bus.redis
    bus.redis = aioredis.Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5
    )
    sessions = pair.gateways[0].cluster.sessions  # type: ignore[union-attr]
    for name in ("_create", "_claim"):  # scripts bound to the client they were made with
        setattr(sessions, name, bus.redis.register_script(getattr(sessions, name).script))
    try:
        refused = await pair.clients[0].post("/mcp", initialize_request(), JSON_HEADERS)
        assert refused.status == 503
        error = refused.message()["error"]
        assert error["code"] == -32000
        assert "shared state (Redis) cannot be reached" in error["message"]
        assert "127.0.0.1" not in error["message"]
        # a session this instance holds needs no Redis for its requests
        assert (await session.post(0, legacy_request("ping"))).status == 200
        headers = {**session.headers, "accept": "text/event-stream"}
        stream = await pair.clients[0].get("/mcp", headers)
        assert stream.status == 503
    finally:
        await bus.redis.aclose()
        bus.redis = working


async def test_the_pubsub_connection_comes_back(pair: Instances) -> None:
    session = await Session(pair).initialize(on=0)
    await session.request(1, "resources/subscribe", {"uri": URI})
    bus = pair.gateways[0].cluster.bus  # type: ignore[union-attr]
    back = asyncio.Event()
    bus.on_reconnect.append(back.set)
    headers = {**session.headers, "accept": "text/event-stream"}
    async with session.client(0).stream("GET", "/mcp", headers=headers) as stream:
        await stream.wait_started()
        await asyncio.sleep(0.1)  # the stream has claimed the session
        async with aioredis.Redis.from_url(REDIS_URL) as admin:
            for client in await admin.client_list(_type="pubsub"):
                if client.get("name") == f"catalyst-{bus.instance}-pubsub":
                    await admin.client_kill_filter(_id=client["id"])
        await asyncio.wait_for(back.wait(), 10)
        await pair.providers[1].on_resource_updated(pair.providers[1], "mem://a")
        assert (await stream.next_message())["params"] == {"uri": URI}


async def test_a_message_for_nobody_is_dropped_quietly(prefix: str) -> None:
    bus = Bus(RedisSettings(url=REDIS_URL, prefix=prefix))
    await bus.start()
    try:
        assert not await bus.send("nobody", {"k": "deliver"})
        assert not await bus.listening("nobody")
        assert await bus.listening(bus.instance)
        await bus.redis.publish(bus.own_channel, b"not json")  # ignored, the reader goes on
        await bus.redis.publish(bus.own_channel, b'{"k": "unknown"}')
        got = asyncio.Event()
        bus.handlers["ping"] = lambda message: got.set()
        other = Bus(RedisSettings(url=REDIS_URL, prefix=prefix))
        await other.start()
        try:
            assert await other.send(bus.instance, {"k": "ping"})
            await asyncio.wait_for(got.wait(), 5)
        finally:
            await other.stop()
    finally:
        await bus.stop()


async def test_ready_reports_the_shared_redis(pair: Instances) -> None:
    report = (await pair.clients[0].get("/ready")).json()
    assert report["redis"] == {"status": "ready"}
    bus = pair.gateways[0].cluster.bus  # type: ignore[union-attr]
    working = bus.redis
    bus.redis = aioredis.Redis.from_url(
        f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5
    )
    try:
        pair.gateways[0].telemetry.dependencies.results.clear()
        await asyncio.sleep(1.1)  # the last verdict is kept for a second
        report = (await pair.clients[0].get("/ready")).json()
        assert report["redis"]["status"] == "failed"
        assert report["status"] == "degraded"
    finally:
        await bus.redis.aclose()
        bus.redis = working
