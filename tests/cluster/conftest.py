"""Fixtures of the shared-state tests: the real Redis under a key prefix of each test's own
(deleted afterwards), and two gateway instances in this process that share it."""

from __future__ import annotations

import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from catalyst_mcp.app import Gateway
from catalyst_mcp.settings import Settings
from tests.asgiclient import AsgiClient
from tests.conftest import require_or_skip
from tests.fakes import FakeProvider

REDIS_URL = "redis://127.0.0.1:6379/0"


def redis_up() -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", 6379)) == 0


def clean(prefix: str) -> None:
    """Delete every key of the deployment ``prefix``."""
    with redis.Redis.from_url(REDIS_URL) as client:
        keys = list(client.scan_iter(match="{" + prefix + "}:*", count=1000))
        if keys:
            client.delete(*keys)


@pytest.fixture
def prefix() -> Iterator[str]:
    """A deployment prefix of this test's own; its keys are deleted afterwards."""
    require_or_skip(redis_up(), "no Redis at 127.0.0.1:6379")
    name = f"catalyst-test-{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        clean(name)


def shared_settings(prefix: str, tmp_path: Path, **extra: Any) -> Settings:
    """Settings of instances sharing Redis (under ``prefix``) and a SQLite file."""
    data: dict[str, Any] = {
        "redis": {"url": REDIS_URL, "prefix": prefix},
        "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/shared.db"},
        "packs": {"path": None},
    }
    for section, values in extra.items():
        data[section] = {**data.get(section, {}), **values}
    return Settings.model_validate(data)


@dataclass
class Instances:
    """Gateways sharing one deployment, each with its own FakeProvider and client."""

    gateways: list[Gateway]
    providers: list[FakeProvider]
    clients: list[AsgiClient] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.clients = [AsgiClient(g.asgi) for g in self.gateways]


async def start_instances(settings: Settings, count: int = 2, **provider: Any) -> Instances:
    providers = [FakeProvider(**provider) for _ in range(count)]
    gateways = [Gateway(settings, [p]) for p in providers]
    started: list[Gateway] = []
    try:
        for gateway in gateways:
            await gateway.start()
            started.append(gateway)
    except BaseException:
        for gateway in started:
            await gateway.stop()
        raise
    return Instances(gateways, providers)


async def stop_instances(instances: Instances) -> None:
    for gateway in instances.gateways:
        if gateway.started and not gateway.stopping:
            await gateway.stop()


@pytest.fixture
async def pair(prefix: str, tmp_path: Path) -> AsyncIterator[Instances]:
    """Two started instances of one deployment (default settings otherwise)."""
    instances = await start_instances(shared_settings(prefix, tmp_path))
    try:
        yield instances
    finally:
        await stop_instances(instances)
