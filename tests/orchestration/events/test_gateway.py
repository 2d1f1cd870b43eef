"""The event bus as the settings build it: webhooks from the config file, consumers of a
gateway, two gateways sharing one Redis stream (each event delivered once)."""

from __future__ import annotations

import asyncio
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import redis

from catalyst_mcp.app import Gateway
from catalyst_mcp.context import Identity
from catalyst_mcp.orchestration.events.webhooks import verify_signature
from catalyst_mcp.settings import Settings, load_settings
from tests.conftest import require_or_skip
from tests.fakes import FakeProvider
from tests.orchestration.events.receiver import Receiver, receiver
from tests.orchestration.events.support import wait_until
from tests.security.test_ratelimit import REDIS_URL, redis_up

ALICE = Identity(subject="alice", kind="user", roles=("admin",), via="api_key")
SECRET = "whsec-0123456789abcdef"


def config_file(tmp_path: Path, url: str, extra: str = "") -> Path:
    file = tmp_path / "catalyst.yaml"
    file.write_text(
        textwrap.dedent(
            f"""\
            packs: {{path: null}}
            storage: {{url: "sqlite+aiosqlite:///{tmp_path / "c.db"}"}}
            events:
              webhooks:
                ops:
                  url: {url}
                  events: ["call.*"]
                  allow_private_network: true
                  headers: {{X-Receiver-Token: t0k}}
                  timeout_seconds: 5
                  retries: 2
                  backoff_seconds: 0.01
                  max_backoff_seconds: 0.02
            """
        )
        + textwrap.dedent(extra)
    )
    return file


def gateway_from(file: Path, env: dict[str, str] | None = None) -> Gateway:
    settings = load_settings(
        file, {"CATALYST_EVENTS__WEBHOOKS__OPS__SECRET": SECRET, **(env or {})}
    )
    return Gateway(settings, [FakeProvider("fake")], config_file=file)


def bodies(got: Receiver) -> list[dict[str, Any]]:
    return [orjson.loads(r.body) for r in got.got]


@pytest.mark.network
async def test_a_configured_webhook_gets_the_gateways_calls(tmp_path: Path) -> None:
    async with receiver() as got:
        got.answers = [503]  # the first attempt fails: retried
        gateway = gateway_from(config_file(tmp_path, got.url))
        assert gateway.events is not None and gateway.events.backend == "memory"
        await gateway.start()
        try:
            await gateway.dispatcher.direct(
                "tools/call", {"name": "fake__echo", "arguments": {"text": "private"}}, ALICE
            )
            await wait_until(lambda: len(got.got) == 2)
            retry, delivered = got.got
            assert retry.body == delivered.body
            event = orjson.loads(delivered.body)
            assert event["type"] == "call.finished" and event["data"]["tool"] == "fake__echo"
            assert delivered.headers["x-receiver-token"] == "t0k"
            assert verify_signature(SECRET, delivered.headers["catalyst-signature"], delivered.body)
            assert b"private" not in delivered.body
            stats = gateway.events.stats
            assert stats.webhooks[("ops", "retry")] == 1 and stats.webhooks[("ops", "ok")] == 1
        finally:
            await gateway.stop()
        # only call.* went to it (upstream states and the rest did not)
        assert {b["type"] for b in bodies(got)} == {"call.finished"}


@pytest.mark.network
async def test_bus_metrics_at_slash_metrics(tmp_path: Path) -> None:
    from tests.asgiclient import AsgiClient

    async with receiver() as got:
        gateway = gateway_from(config_file(tmp_path, got.url))
        await gateway.start()
        try:
            await gateway.dispatcher.direct("tools/call", {"name": "fake__echo"}, ALICE)
            await wait_until(lambda: len(got.got) == 1)
            assert gateway.events is not None
            await wait_until(lambda: gateway.events.stats.events["call.finished"] == 1)  # type: ignore[union-attr]
            text = (await AsgiClient(gateway.asgi).get("/metrics")).body.decode()
            assert 'catalyst_events_total{type="call.finished"} 1.0' in text
            assert 'catalyst_webhook_requests_total{outcome="ok",webhook="ops"} 1.0' in text
            assert 'catalyst_event_deliveries_total{consumer="webhook.ops",outcome="ok"}' in text
        finally:
            await gateway.stop()


@pytest.fixture
def stream() -> Iterator[str]:
    require_or_skip(redis_up(), "no Redis at 127.0.0.1:6379")
    key = f"catalyst-test:{uuid.uuid4().hex}:events"
    yield key
    with redis.Redis.from_url(REDIS_URL) as client:
        client.delete(key)


@pytest.mark.redis
@pytest.mark.network
async def test_two_gateways_on_one_stream_deliver_each_event_once(
    tmp_path: Path, stream: str
) -> None:
    async with receiver() as got:
        extra = f"""\
            redis: {{url: "{REDIS_URL}"}}
            """
        file = config_file(tmp_path, got.url, extra)
        env = {"CATALYST_EVENTS__STREAM": stream}
        first, second = gateway_from(file, env), gateway_from(file, env)
        assert first.events is not None and first.events.backend == "redis"
        await first.start()
        await second.start()
        try:
            for i in range(6):
                gateway = first if i % 2 else second
                await gateway.dispatcher.direct(
                    "tools/call", {"name": "fake__echo", "arguments": {"n": i}}, ALICE
                )
            await wait_until(lambda: len(got.got) >= 6, timeout=15)
            await asyncio.sleep(0.5)  # nothing more comes: each event was delivered once
            ids = [b["id"] for b in bodies(got)]
            assert len(ids) == 6 and len(set(ids)) == 6
            sources = {b["source"] for b in bodies(got)}
            assert sources == {first.events.source, second.events.source}  # type: ignore[union-attr]
            # either instance reads the whole stream through the API's /events
            latest = await second.events.bus.recent(10, ["call.*"])  # type: ignore[union-attr]
            assert {e.id for e in latest} == set(ids)
        finally:
            await first.stop()
            await second.stop()


def test_settings_build_the_room() -> None:
    settings = Settings.model_validate(
        {
            "packs": {"path": None},
            "audit": {"enabled": False},
            "events": {
                "webhooks": {"a": {"url": "https://x/y", "secret": SECRET, "events": ["pack.*"]}}
            },
        }
    )
    gateway = Gateway(settings)
    assert gateway.events is not None
    names = [c.name for c in gateway.events.bus.consumers]
    assert names == ["metrics", "webhook.a"]  # no audit trail: no audit consumer
    assert gateway.server.events is not None
    off = Gateway(Settings.model_validate({"packs": {"path": None}, "events": {"enabled": False}}))
    assert off.events is None and off.server.events is None
