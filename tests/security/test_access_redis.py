"""Rate limits shared by two gateway instances through the real Redis: the limit holds for the
user across both, exactly."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import redis

from catalyst_mcp.app import Gateway
from catalyst_mcp.security import apikeys
from catalyst_mcp.settings import Settings
from catalyst_mcp.storage.keys import KeyRepo
from catalyst_mcp.storage.users import UserRepo
from tests.asgiclient import AsgiClient
from tests.conftest import require_or_skip
from tests.fakes import FakeProvider, tool
from tests.security.test_access import call
from tests.security.test_ratelimit import REDIS_URL, redis_up

pytestmark = pytest.mark.redis

BURST = 7


async def test_two_instances_share_one_users_limit_exactly(tmp_path: Path) -> None:
    require_or_skip(redis_up(), "no Redis at 127.0.0.1:6379")
    user = f"alice-{uuid.uuid4().hex}"
    settings = Settings.model_validate(
        {
            "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/shared.db"},
            "auth": {"enabled": True},
            "rate_limits": {
                "backend": "redis",
                "redis_url": REDIS_URL,
                "per_user": {"rate_per_second": 0.001, "burst": BURST},
            },
            "packs": {"path": None},
        }
    )
    first = Gateway(settings, [FakeProvider(tools=[tool("echo")])])
    second = Gateway(settings, [FakeProvider(tools=[tool("echo")])])
    await first.start()
    await second.start()
    try:
        assert first.db is not None
        await UserRepo(first.db).create(user, roles=("admin",))
        new = apikeys.generate()
        await KeyRepo(first.db).create(user, "k", new.prefix, new.key_hash)
        clients = [AsgiClient(first.asgi), AsgiClient(second.asgi)]
        outcomes = []
        for i in range(2 * BURST):
            message = (
                await call(
                    clients[i % 2], "tools/call", {"name": "fake__echo", "arguments": {}}, new.token
                )
            ).message()
            outcomes.append("ok" if "result" in message else str(message["error"]["code"]))
        assert outcomes.count("ok") == BURST
        assert outcomes[BURST:] == ["-32029"] * BURST
    finally:
        await first.stop()
        await second.stop()
        with redis.Redis.from_url(REDIS_URL) as client:
            keys = list(client.scan_iter(match=f"*{user}*"))
            if keys:
                client.delete(*keys)
