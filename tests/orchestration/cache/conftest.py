"""A gateway with the result cache: auth on (HS256 tokens for any user and roles), SQLite storage
(audit trail), a rules folder, a fake clock, and one fake server ``db`` whose answers name the
caller and count its calls, so a test sees whether the server was reached and for whom.

``db``'s tools (cached as ``configure`` says: the server ``user``-scoped for 60 s):

* ``lookup``: cached per user (the server's cache);
* ``catalog``: cached shared (its own cache);
* ``hinted``: cached shared; answers with ``ttlMs``/``cacheScope`` taken from its arguments
  ``ttl_ms`` and ``scope`` (an upstream's hints);
* ``write``: annotated ``readOnlyHint: false``: left out of the server's cache;
* ``nocache``: its own ``ttl: 0``;
* ``err``: answers ``isError``; ``big``: a result larger than ``max_entry_bytes``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import jwt
import orjson
import pytest_asyncio

from catalyst_mcp.app import Gateway
from catalyst_mcp.context import CallContext
from catalyst_mcp.orchestration.cache.config import CacheSpec
from catalyst_mcp.settings import Settings
from tests.asgiclient import AsgiClient, Response
from tests.fakes import (
    JSON_HEADERS,
    LEGACY,
    FakeProvider,
    initialize_request,
    legacy_request,
    modern_headers,
    modern_request,
    tool,
)

SECRET = "an-hs256-secret-of-at-least-32-bytes!!"
RESOURCE = "http://testserver/mcp"
API = "/api/v1"
ROLES = {
    "reader": {"rules": [{"effect": "allow", "kinds": ["tool"], "match": ["db__*"]}]},
    "catalog_only": {"rules": [{"effect": "allow", "kinds": ["tool"], "match": ["db__catalog"]}]},
}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def db_server() -> FakeProvider:
    counts: dict[str, int] = {}

    async def answer(method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        name = params["name"]
        arguments = params.get("arguments") or {}
        counts[name] = counts.get(name, 0) + 1
        data = {"user": ctx.identity.subject, "arguments": arguments, "n": counts[name]}
        result: dict[str, Any] = {
            "content": [{"type": "text", "text": orjson.dumps(data).decode()}],
            "structuredContent": data,
        }
        if name == "err":
            result["isError"] = True
        elif name == "big":
            result["content"] = [{"type": "text", "text": "x" * 5000}]
        elif name == "hinted":
            if "ttl_ms" in arguments:
                result["ttlMs"] = arguments["ttl_ms"]
            if "scope" in arguments:
                result["cacheScope"] = arguments["scope"]
        return result

    tools = [
        tool("lookup"),
        tool("catalog"),
        tool("hinted"),
        tool("write", annotations={"readOnlyHint": False}),
        tool("nocache"),
        tool("err"),
        tool("big"),
    ]
    return FakeProvider("db", tools=tools, prompts=[], resources=[], templates=[], handler=answer)


class Gate:
    """Holds every call that reaches ``db`` until :meth:`open` (misses stay in flight)."""

    def __init__(self, db: FakeProvider) -> None:
        assert db.handler is not None
        self.handler = db.handler
        self.opened = asyncio.Event()
        db.handler = self.held

    async def held(self, method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        await self.opened.wait()
        return await self.handler(method, params, ctx)

    def open(self) -> None:
        self.opened.set()


async def until(check: Callable[[], bool], what: str) -> None:
    """Wait (at most 5 s) for ``check`` to hold: requests in flight reaching a point."""
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never happened: {what}")


def token(user: str, *roles: str) -> str:
    claims = {
        "sub": user,
        "aud": RESOURCE,
        "exp": int(time.time()) + 600,
        "roles": list(roles or ("reader",)),
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


class CacheGateway:
    """A started gateway with the cache, its fake clock, ``db`` and clients of every kind."""

    def __init__(self, gateway: Gateway, db: FakeProvider, rules: Path) -> None:
        self.gateway = gateway
        self.db = db
        self.rules = rules
        self.clock = Clock()
        gateway.cache.clock = self.clock
        self.client = AsgiClient(gateway.asgi)
        gateway.cache.configure(
            "db",
            CacheSpec(ttl=60, scope="user"),
            {
                "catalog": CacheSpec(ttl=60, scope="shared"),
                "hinted": CacheSpec(ttl=60, scope="shared"),
                "nocache": CacheSpec(ttl=0),
            },
        )

    def gate(self) -> Gate:
        """Hold the calls reaching ``db`` from now on until the gate is opened."""
        return Gate(self.db)

    async def waiting(self, count: int) -> None:
        """Wait until ``count`` callers wait for a miss in flight."""
        flights = self.gateway.cache.flights
        await until(lambda: flights.waiting() == count, f"{count} callers waiting")

    def reached(self, name: str) -> int:
        """How many calls of ``name`` reached the server."""
        return sum(1 for _, params, _ in self.db.calls if params["name"] == name)

    async def modern(
        self, user: str, name: str, arguments: dict[str, Any] | None = None, *roles: str
    ) -> dict[str, Any]:
        """The JSON-RPC answer of a modern-era call by ``user``."""
        message = modern_request("tools/call", {"name": f"db__{name}", "arguments": arguments})
        headers = {**modern_headers(message), "authorization": f"Bearer {token(user, *roles)}"}
        response = await self.client.post("/mcp", message, headers)
        answer: dict[str, Any] = response.message()
        return answer

    async def result(
        self, user: str, name: str, arguments: dict[str, Any] | None = None, *roles: str
    ) -> dict[str, Any]:
        """The result of a modern-era call by ``user`` (it must succeed)."""
        answer = await self.modern(user, name, arguments, *roles)
        assert "result" in answer, answer
        result: dict[str, Any] = answer["result"]
        return result

    async def legacy(self, user: str, name: str, arguments: dict[str, Any] | None = None) -> Any:
        auth = {"authorization": f"Bearer {token(user)}"}
        init = await self.client.post("/mcp", initialize_request(), {**JSON_HEADERS, **auth})
        session = init.headers["mcp-session-id"]
        headers = {**JSON_HEADERS, **auth, "mcp-session-id": session}
        headers["mcp-protocol-version"] = LEGACY
        initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
        await self.client.post("/mcp", initialized, headers)
        message = legacy_request("tools/call", {"name": f"db__{name}", "arguments": arguments})
        return (await self.client.post("/mcp", message, headers)).message()

    async def rest(self, user: str, name: str, arguments: dict[str, Any] | None = None) -> Response:
        return await self.api("POST", f"/tools/db__{name}/call", arguments or {}, user=user)

    async def api(
        self, method: str, path: str, body: Any = None, *, user: str = "root", roles: tuple = ()
    ) -> Response:
        headers = {"authorization": f"Bearer {token(user, *(roles or ('admin',)))}"}
        raw = b""
        if body is not None:
            headers["content-type"] = "application/json"
            raw = orjson.dumps(body)
        return await self.client.request(method, API + path, headers=headers, body=raw)

    async def audit(self, action: str = "tools/call") -> list[dict[str, Any]]:
        """The audit records of ``action``, oldest first."""
        audit = self.gateway.access.audit
        assert audit is not None
        await audit.flush()
        response = await self.api("GET", f"/audit?action={action}&order=asc")
        assert response.status == 200, response.body
        records: list[dict[str, Any]] = response.json()["records"]
        return records

    async def write_rules(self, text: str) -> None:
        (self.rules / "rules.yaml").write_text(text)
        await self.gateway.rules.ruleset.reload([self.rules / "rules.yaml"])


def cache_settings(tmp_path: Path, **sections: Any) -> Settings:
    data: dict[str, Any] = {
        "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/c.db"},
        "auth": {"enabled": True, "resource_url": RESOURCE, "jwt": {"hs256_secret": SECRET}},
        "rbac": {"roles": ROLES},
        "packs": {"path": None},
        "rules": {"path": str(tmp_path / "rules"), "watch": False},
        "cache": {"max_entry_bytes": 4096},
    }
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values}
    return Settings.model_validate(data)


async def start_cache_gateway(settings: Settings, tmp_path: Path, **options: Any) -> CacheGateway:
    (tmp_path / "rules").mkdir(exist_ok=True)
    db = db_server()
    gateway = Gateway(settings, [db], **options)
    await gateway.start()
    return CacheGateway(gateway, db, tmp_path / "rules")


@pytest_asyncio.fixture
async def cached(tmp_path: Path) -> AsyncIterator[CacheGateway]:
    served = await start_cache_gateway(cache_settings(tmp_path), tmp_path)
    try:
        yield served
    finally:
        await served.gateway.stop()
