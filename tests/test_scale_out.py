"""Several ``catalyst serve`` processes behind a real round-robin load balancer (HAProxy), on
the real PostgreSQL (a database of each test's own) and Redis (a key prefix of each test's
own): the official SDK client in legacy mode completes a whole session while its requests
alternate instances, and carries on through the others when one is killed with SIGKILL; a
change made through one instance's API applies on another within a second; and the audit
trail they all write stays one chain."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import mcp_types as t
import orjson
import pytest
import redis
import yaml
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning

from tests.cluster.conftest import REDIS_URL
from tests.conftest import FIXTURES, PG_HOST, PG_PORT, PYTHON, free_port, pg_reachable
from tests.conftest import require_or_skip as require
from tests.fakes import modern_headers, modern_request
from tests.haproxy import SERVED_BY, Haproxy, haproxy_or_skip
from tests.live import poll

pytestmark = [
    pytest.mark.network,
    pytest.mark.subprocess,
    pytest.mark.postgres,
    pytest.mark.redis,
    pytest.mark.timeout(180),
]

CATALYST = str(Path(PYTHON).parent / "catalyst")
PG_ADMIN = f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test"
COUNTER = "catalyst://res/res://counter"


# ---- the deployment: PostgreSQL, Redis, gateways, HAProxy ------------------------------------


@pytest.fixture
async def database() -> AsyncIterator[str]:
    """A new PostgreSQL database of this test's own (dropped afterwards): its async URL."""
    require(pg_reachable(), f"PostgreSQL is not reachable on {PG_HOST}:{PG_PORT}")
    import asyncpg

    name = f"catalyst_scale_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(PG_ADMIN)
    try:
        await admin.execute(f"CREATE DATABASE {name}")
        yield f"postgresql+asyncpg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.close()


@dataclass
class Instance:
    """One ``catalyst serve`` process (its stderr in a file), stopped by its PID."""

    name: str
    port: int
    config: Path
    log: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, cwd: Path) -> None:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [CATALYST, "serve", "--config", str(self.config)],
                cwd=cwd,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, to the gateway alone: no chance to hand anything over."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def tail(self) -> str:
        text = self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""
        return f"--- {self.name} stderr ---\n" + "\n".join(text.splitlines()[-30:])


@dataclass
class Deployment:
    instances: list[Instance]
    proxy: Haproxy
    prefix: str
    database: str
    logs: list[str] = field(default_factory=list)

    def by_name(self, name: str) -> Instance:
        return next(i for i in self.instances if i.name == name)

    def tails(self) -> str:
        return "\n".join(i.tail() for i in self.instances)


def wait_ready(instance: Instance, deadline: float) -> None:
    while True:
        with contextlib.suppress(httpx2.TransportError):
            if httpx2.get(f"{instance.base}/ready?strict").status_code == 200:
                return
        assert instance.alive(), f"{instance.name} exited during start-up\n{instance.tail()}"
        assert time.monotonic() < deadline, f"{instance.name} not ready\n{instance.tail()}"
        time.sleep(0.1)


@contextlib.contextmanager
def deployment(count: int, database: str, folder: Path) -> Iterator[Deployment]:
    """``count`` gateways on ``database`` and the real Redis, behind HAProxy."""
    program = haproxy_or_skip()
    require(_redis_up(), "no Redis at 127.0.0.1:6379")
    prefix = f"catalyst-scale-{uuid.uuid4().hex[:12]}"
    instances = []
    for i in range(count):
        port = free_port()
        config = folder / f"g{i}.yaml"
        settings = {
            "gateway": {"port": port},
            "servers": {
                "res": {
                    "command": PYTHON,
                    "args": [str(FIXTURES / "resource_server.py")],
                    "era": "legacy",
                }
            },
            "packs": {"path": None},
            "storage": {"url": database},
            "redis": {"url": REDIS_URL, "prefix": prefix},
        }
        config.write_text(yaml.safe_dump(settings), encoding="utf-8")
        instances.append(Instance(f"g{i}", port, config, folder / f"g{i}.log"))
    proxy: Haproxy | None = None
    try:
        for instance in instances:
            instance.start(folder)
        deadline = time.monotonic() + 60
        for instance in instances:
            wait_ready(instance, deadline)
        proxy = Haproxy(program, [i.port for i in instances], folder)
        yield Deployment(instances, proxy, prefix, database)
    finally:
        if proxy is not None:
            proxy.stop()
        for instance in instances:
            instance.stop()
        _clean(prefix)


def _redis_up() -> bool:
    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1) as client:
            return bool(client.ping())
    except redis.RedisError:
        return False


def _clean(prefix: str) -> None:
    with redis.Redis.from_url(REDIS_URL) as client:
        keys = list(client.scan_iter(match="{" + prefix + "}:*", count=1000))
        if keys:
            client.delete(*keys)


# ---- the client side ---------------------------------------------------------------------------


@dataclass
class Exchange:
    method: str
    status: int
    served_by: str
    session: str | None


class Watch:
    """Every HTTP exchange of the SDK client (through an event hook), and the resource
    updates it receives."""

    def __init__(self) -> None:
        self.exchanges: list[Exchange] = []
        self.updates = 0

    async def response(self, response: httpx2.Response) -> None:
        self.exchanges.append(
            Exchange(
                response.request.method,
                response.status_code,
                response.headers.get(SERVED_BY, "?"),
                response.headers.get("mcp-session-id"),
            )
        )

    async def message(self, message: Any) -> None:
        if isinstance(message, t.ResourceUpdatedNotification):
            self.updates += 1

    def served(self, method: str) -> list[str]:
        return [e.served_by for e in self.exchanges if e.method == method]

    @property
    def stream_holder(self) -> str | None:
        """The instance serving the client's latest GET stream."""
        gets = [e for e in self.exchanges if e.method == "GET" and e.status == 200]
        return gets[-1].served_by if gets else None


@contextlib.asynccontextmanager
async def sdk_client(url: str, watch: Watch) -> AsyncIterator[Client]:
    http = httpx2.AsyncClient(
        timeout=httpx2.Timeout(30, read=300), event_hooks={"response": [watch.response]}
    )
    async with (
        http,
        Client(
            streamable_http_client(url, http_client=http),
            mode="legacy",
            cache=None,
            read_timeout_seconds=30,
            message_handler=watch.message,
        ) as client,
    ):
        yield client


# ---- the tests -----------------------------------------------------------------------------


@pytest.mark.parametrize("count", [2, 3])
async def test_a_legacy_session_goes_on_across_instances_and_a_killed_one(
    count: int, database: str, tmp_path: Path
) -> None:
    with deployment(count, database, tmp_path) as deployed:
        watch = Watch()
        try:
            await _whole_session(deployed, watch, count)
        except BaseException:
            print(deployed.tails())
            print("\n".join(str(e) for e in watch.exchanges))
            raise
        print(" ".join(f"{e.method}:{e.status}:{e.served_by}" for e in watch.exchanges))
        # the client's DELETE ended the session in Redis too
        (session_id,) = {e.session for e in watch.exchanges if e.session}
        with redis.Redis.from_url(REDIS_URL) as client:
            assert not client.exists("{" + deployed.prefix + "}:s:" + session_id)
        # every instance wrote audit records; the chain still verifies (one was killed)
        survivor = next(i for i in deployed.instances if i.alive())
        verified = subprocess.run(
            [CATALYST, "audit", "verify", "--config", str(survivor.config), "--json"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert verified.returncode == 0, verified.stdout + verified.stderr
        assert orjson.loads(verified.stdout)["records"] >= 8


async def _whole_session(deployed: Deployment, watch: Watch, count: int) -> None:
    names = {i.name for i in deployed.instances}
    async with sdk_client(deployed.proxy.url, watch) as client:
        tools = {tool.name for tool in (await client.list_tools()).tools}
        assert {"res__echo", "res__bump"} <= tools
        for n in range(count):
            echoed = await client.call_tool("res__echo", {"text": f"hello {n}"})
            assert echoed.content[0].text == f"hello {n}"  # type: ignore[union-attr]
        with pytest.warns(MCPDeprecationWarning):  # the modern era has listen instead
            await client.subscribe_resource(COUNTER)
        await poll(lambda: watch.stream_holder is not None, what="the GET stream")
        await client.call_tool("res__bump", {})
        await poll(lambda: watch.updates >= 1, timeout=20, what="a resource update")
        # every request so far was balanced anew: each instance served some of them
        assert set(watch.served("POST")) == names, watch.served("POST")

        victim = deployed.by_name(str(watch.stream_holder))  # the instance holding the stream
        victim.kill()
        for n in range(2 * count):  # through the others; none is lost
            echoed = await client.call_tool("res__echo", {"text": f"after {n}"})
            assert echoed.content[0].text == f"after {n}"  # type: ignore[union-attr]
        read = await client.read_resource(COUNTER)
        assert read.contents
        await poll(
            lambda: watch.stream_holder not in (None, victim.name),
            timeout=20,
            what="the GET stream reopened on another instance",
        )
        before = watch.updates
        await client.call_tool("res__bump", {})
        await poll(lambda: watch.updates > before, timeout=20, what="an update after the kill")
        after_kill = watch.served("POST")[-(2 * count + 2) :]
        assert victim.name not in after_kill
    deletes = [e for e in watch.exchanges if e.method == "DELETE"]
    assert [e.status for e in deletes] == [200]


async def test_a_change_through_one_instance_applies_on_another_within_a_second(
    database: str, tmp_path: Path
) -> None:
    with deployment(2, database, tmp_path) as deployed:
        first, second = deployed.instances
        async with httpx2.AsyncClient(timeout=10) as http:

            async def echo_refused() -> bool:
                message = modern_request("tools/call", {"name": "res__echo", "arguments": {}})
                answer = await http.post(
                    f"{second.base}/mcp", json=message, headers=modern_headers(message)
                )
                return "error" in answer.json()

            assert not await echo_refused()
            deny = {"rules": [{"effect": "deny", "match": ["res__echo"]}]}
            response = await http.put(f"{first.base}/api/v1/roles/admin", json=deny)
            assert response.status_code == 200, response.text
            started = time.monotonic()
            await poll(echo_refused, timeout=10, interval=0.01, what="the role on the other")
            elapsed = time.monotonic() - started
        assert elapsed < 1.0, f"applied after {elapsed:.3f}s\n{deployed.tails()}"
        print(f"applied on the other instance {elapsed * 1000:.0f} ms after the answer")
        await asyncio.sleep(0)
