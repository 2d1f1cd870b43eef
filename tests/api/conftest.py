"""A gateway for the REST API for tools: auth on, SQLite storage, two servers, three callers.

* ``fake``: :class:`tests.fakes.FakeProvider` with its built-in tools plus ``echo`` with an
  input schema, ``add`` with an output schema, and ``nested`` whose schema has ``$defs``;
* ``other``: one tool, ``other__secret``, that only administrators may use;
* callers: ``root`` (admin), ``bob`` (role ``reader``: ``fake__echo``, ``fake__add``, the
  resource ``catalyst://fake/mem://a`` and the prompt ``fake__hello``) and ``carol`` (no roles).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest_asyncio

from catalyst_mcp.app import Gateway
from catalyst_mcp.context import CallContext
from catalyst_mcp.security import apikeys
from catalyst_mcp.settings import Settings
from catalyst_mcp.storage.keys import KeyRepo
from catalyst_mcp.storage.users import UserRepo
from tests.asgiclient import AsgiClient, Response
from tests.fakes import FakeProvider, modern_headers, modern_request, tool

API = "/api/v1"
ECHO_SCHEMA = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "description": "What to say."},
        "times": {"type": "integer", "minimum": 1, "maximum": 3},
    },
    "required": ["text"],
    "additionalProperties": False,
}
ADD_SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
}
ADD_OUTPUT = {
    "type": "object",
    "properties": {"result": {"type": "integer"}},
    "required": ["result"],
}
NESTED_SCHEMA = {
    "$defs": {
        "Point": {
            "type": "object",
            "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
            "required": ["x", "y"],
        }
    },
    "type": "object",
    "properties": {
        "at": {"$ref": "#/$defs/Point"},
        "path": {"type": "array", "items": {"$ref": "#/$defs/Point"}},
    },
    "required": ["at"],
}
ROLES = {
    "reader": {
        "rules": [
            {"effect": "allow", "kinds": ["tool"], "match": ["fake__echo", "fake__add"]},
            {"effect": "allow", "kinds": ["resource"], "match": ["catalyst://fake/mem://a"]},
            {"effect": "allow", "kinds": ["prompt"], "match": ["fake__hello"]},
        ]
    },
}


class ToolsProvider(FakeProvider):
    """``fake``: FakeProvider's tools plus ``echo`` (with an input schema), ``add`` (with an
    output schema), ``nested`` (whose schema has ``$defs``) and ``oops`` (a tool error)."""

    def __init__(self) -> None:
        super().__init__("fake")
        self.lists["tools"] = [
            tool("echo", inputSchema=ECHO_SCHEMA, description="Echo text back.\nSeveral times."),
            tool("add", inputSchema=ADD_SCHEMA, outputSchema=ADD_OUTPUT, title="Add two integers"),
            tool("nested", inputSchema=NESTED_SCHEMA),
            tool("oops"),
            *(t for t in self.lists["tools"] if t["name"] != "echo"),
        ]

    async def call(self, method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        name = params.get("name")
        arguments = params.get("arguments") or {}
        if method != "tools/call" or name not in ("echo", "add", "nested", "oops"):
            return await super().call(method, params, ctx)
        self.calls.append((method, params, ctx))
        if name == "echo":
            text = " ".join([str(arguments.get("text", ""))] * int(arguments.get("times", 1)))
            return {"content": [{"type": "text", "text": text}]}
        if name == "add":
            total = arguments["a"] + arguments["b"]
            return {
                "content": [{"type": "text", "text": str(total)}],
                "structuredContent": {"result": total},
            }
        if name == "nested":
            return {"content": [{"type": "text", "text": orjson.dumps(arguments).decode()}]}
        return {"content": [{"type": "text", "text": "no such city"}], "isError": True}


async def say_name(method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
    """A FakeProvider handler: every tool answers with its name (for tools added by tests)."""
    return {"content": [{"type": "text", "text": params["name"]}]}


def settings(tmp_path: Path, **sections: Any) -> Settings:
    data: dict[str, Any] = {
        "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/c.db"},
        "auth": {"enabled": True},
        "rbac": {"roles": ROLES},
        "packs": {"path": None},
    }
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values}
    return Settings.model_validate(data)


class ToolsApi:
    """A started gateway and its callers' API keys."""

    def __init__(self, gateway: Gateway, fake: ToolsProvider) -> None:
        self.gateway = gateway
        self.fake = fake
        self.client = AsgiClient(gateway.asgi)
        self.tokens: dict[str, str] = {}

    async def user(self, name: str, *roles: str, **key: Any) -> str:
        db = self.gateway.db
        assert db is not None
        known = {"admin", *self.gateway.settings.rbac.roles}
        await UserRepo(db, known_roles=known).create(name, roles=roles)
        self.tokens[name] = await self.key(name, **key)
        return self.tokens[name]

    async def key(self, user: str, **key: Any) -> str:
        assert self.gateway.db is not None
        new = apikeys.generate()
        await KeyRepo(self.gateway.db).create(user, "k", new.prefix, new.key_hash, **key)
        return new.token

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = "root",
        headers: dict[str, str] | None = None,
    ) -> Response:
        sent = dict(headers or {})
        if token is not None:
            sent["authorization"] = f"Bearer {self.tokens.get(token, token)}"
        raw = b""
        if body is not None:
            sent.setdefault("content-type", "application/json")
            raw = body if isinstance(body, bytes) else orjson.dumps(body)
        return await self.client.request(method, API + path, headers=sent, body=raw)

    async def mcp(self, method: str, params: dict[str, Any], token: str = "root") -> Response:
        message = modern_request(method, params)
        headers = {**modern_headers(message), "authorization": f"Bearer {self.tokens[token]}"}
        return await self.client.post("/mcp", message, headers)

    async def audit(self, **filters: str) -> list[dict[str, Any]]:
        audit = self.gateway.access.audit
        assert audit is not None
        await audit.flush()
        query = "&".join(f"{k}={v}" for k, v in filters.items())
        response = await self.call("GET", f"/audit?{query}")
        assert response.status == 200, response.body
        records: list[dict[str, Any]] = response.json()["records"]
        return records


async def start_tools_api(settings: Settings) -> ToolsApi:
    fake = ToolsProvider()
    other = FakeProvider("other", tools=[tool("secret")], resources=[], templates=[], prompts=[])
    gateway = Gateway(settings, [fake, other])
    await gateway.start()
    api = ToolsApi(gateway, fake)
    try:
        await api.user("root", "admin")
        await api.user("bob", "reader")
        await api.user("carol")
    except BaseException:
        await gateway.stop()
        raise
    return api


@pytest_asyncio.fixture
async def tools_api(tmp_path: Path) -> AsyncIterator[ToolsApi]:
    api = await start_tools_api(settings(tmp_path))
    try:
        yield api
    finally:
        await api.gateway.stop()


def error_of(response: Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    return error
