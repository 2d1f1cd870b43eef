"""``/ready`` reports the database and Redis with a reason per failing part."""

from __future__ import annotations

import asyncio
from pathlib import Path

from catalyst_mcp.app import Gateway
from catalyst_mcp.errors import StorageError
from catalyst_mcp.observability.health import DependencyCheck
from catalyst_mcp.settings import Settings
from tests.asgiclient import AsgiClient
from tests.conftest import free_port
from tests.fakes import FakeProvider


async def test_an_unreachable_redis_makes_the_gateway_degraded_and_says_why(
    tmp_path: Path,
) -> None:
    redis_url = f"redis://:hunter2-canary@127.0.0.1:{free_port()}/0"
    settings = Settings.model_validate(
        {
            "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/c.db"},
            "rate_limits": {
                "backend": "redis",
                "redis_url": redis_url,
                "per_user": {"rate_per_second": 5, "burst": 5},
            },
            "packs": {"path": None},
        }
    )
    gateway = Gateway(settings, [FakeProvider()])
    before = (await AsgiClient(gateway.asgi).get("/ready")).json()
    assert "redis" not in before  # not started: not checked
    await gateway.start()
    try:
        response = await AsgiClient(gateway.asgi).get("/ready")
    finally:
        await gateway.stop()
    report = response.json()
    assert response.status == 200  # degraded: 503 only with ?strict
    assert report["status"] == "degraded"
    assert report["database"] == {"status": "ready"}
    assert report["redis"]["status"] == "failed"
    assert report["redis"]["error"].startswith("Redis at redis://127.0.0.1:")
    assert "hunter2-canary" not in response.body.decode()


async def test_checks_run_at_once_within_their_time_limit_and_are_kept_a_moment() -> None:
    calls: list[str] = []

    async def slow() -> None:
        calls.append("slow")
        await asyncio.sleep(10)

    async def broken() -> None:
        calls.append("broken")
        raise StorageError("cannot connect to the PostgreSQL database db on h:5432: timed out")

    check = DependencyCheck(
        {"database": (broken, "the database"), "redis": (slow, "Redis at x")},
        timeout=0.2,
        max_age=60,
    )
    first, second = await asyncio.gather(check.check(), check.check())  # one check for both
    assert (
        first
        == second
        == {
            "database": {
                "status": "failed",
                "error": "cannot connect to the PostgreSQL database db on h:5432: timed out",
            },
            "redis": {"status": "failed", "error": "Redis at x did not answer within 0.2s"},
        }
    )
    await check.check()  # within max_age: not again
    assert sorted(calls) == ["broken", "slow"]
