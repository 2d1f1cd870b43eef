"""A gateway with rules: a rules folder, SQLite storage (stored rules, approvals, audit), auth
off (the caller is the local user, who holds ``admin``), and two fake servers:

* ``db``: ``query`` (echoes its arguments as JSON text and as structuredContent),
  ``execute`` and ``echo``;
* ``replica``: the same tools, answering with ``replica`` in the text.

Helpers call a tool in each era and through the REST API.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest_asyncio

from catalyst_mcp.app import Gateway
from catalyst_mcp.context import CallContext
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

API = "/api/v1"


def db_server(name: str) -> FakeProvider:
    async def answer(method: str, params: dict[str, Any], ctx: CallContext) -> dict[str, Any]:
        arguments = params.get("arguments") or {}
        data = {"server": name, "tool": params["name"], "arguments": arguments}
        if params["name"] == "customers":
            data = {
                "customers": [{"name": "Ann", "email": "ann@x"}, {"name": "Bo", "email": "bo@x"}]
            }
        return {
            "content": [{"type": "text", "text": orjson.dumps(data).decode()}],
            "structuredContent": data,
        }

    tools = [tool("query"), tool("execute"), tool("echo"), tool("customers")]
    return FakeProvider(name, tools=tools, prompts=[], resources=[], templates=[], handler=answer)


class RulesGateway:
    """A started gateway, its rules folder and clients for MCP (both eras) and REST."""

    def __init__(self, gateway: Gateway, folder: Path, db: FakeProvider) -> None:
        self.gateway = gateway
        self.folder = folder
        self.db = db
        self.client = AsgiClient(gateway.asgi)
        self.session: str | None = None

    async def write_rules(self, text: str, name: str = "rules.yaml") -> None:
        """Write a rules file and apply it as the watcher would."""
        (self.folder / name).write_text(text)
        await self.gateway.rules.ruleset.reload([self.folder / name])

    async def modern(
        self, name: str, arguments: dict[str, Any] | None = None, **params: Any
    ) -> dict[str, Any]:
        capabilities = params.pop("capabilities", {"elicitation": {}})
        message = modern_request(
            "tools/call",
            {"name": name, "arguments": arguments or {}, **params},
            capabilities=capabilities,
        )
        response = await self.client.post("/mcp", message, modern_headers(message))
        body: dict[str, Any] = response.message()
        return body

    async def legacy(
        self, name: str, arguments: dict[str, Any] | None = None, progress: str | None = None
    ) -> Response:
        if self.session is None:
            init = await self.client.post("/mcp", initialize_request(), JSON_HEADERS)
            self.session = init.headers["mcp-session-id"]
            await self.client.post(
                "/mcp",
                {"jsonrpc": "2.0", "method": "notifications/initialized"},
                self._legacy_headers(),
            )
        params: dict[str, Any] = {"name": name, "arguments": arguments or {}}
        if progress is not None:
            params["_meta"] = {"progressToken": progress}
        return await self.client.post(
            "/mcp", legacy_request("tools/call", params), self._legacy_headers()
        )

    def _legacy_headers(self) -> dict[str, str]:
        assert self.session is not None
        return {**JSON_HEADERS, "mcp-session-id": self.session, "mcp-protocol-version": LEGACY}

    async def rest(self, name: str, arguments: dict[str, Any] | None = None) -> Response:
        return await self.api("POST", f"/tools/{name}/call", arguments or {})

    async def api(self, method: str, path: str, body: Any = None) -> Response:
        headers = {}
        raw = b""
        if body is not None:
            headers["content-type"] = "application/json"
            raw = orjson.dumps(body)
        return await self.client.request(method, API + path, headers=headers, body=raw)

    async def audit(self, action: str = "tools/call") -> list[dict[str, Any]]:
        audit = self.gateway.access.audit
        assert audit is not None
        await audit.flush()
        response = await self.api("GET", f"/audit?action={action}")
        assert response.status == 200, response.body
        records: list[dict[str, Any]] = response.json()["records"]
        return records

    async def pending(self) -> list[dict[str, Any]]:
        for _ in range(200):
            found = (await self.api("GET", "/approvals?status=pending")).json()["approvals"]
            if found:
                return list(found)
            await asyncio.sleep(0.01)
        raise AssertionError("no approval request appeared")


def rules_settings(tmp_path: Path, **sections: Any) -> Settings:
    data: dict[str, Any] = {
        "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/c.db"},
        "packs": {"path": None},
        "rules": {"path": str(tmp_path / "rules"), "watch": False, "approval_poll_seconds": 0.05},
    }
    for section, values in sections.items():
        data[section] = {**data.get(section, {}), **values}
    return Settings.model_validate(data)


async def start_rules_gateway(settings: Settings, folder: Path, **options: Any) -> RulesGateway:
    folder.mkdir(exist_ok=True)
    db = db_server("db")
    gateway = Gateway(settings, [db, db_server("replica")], **options)
    await gateway.start()
    return RulesGateway(gateway, folder, db)


@pytest_asyncio.fixture
async def rules_gateway(tmp_path: Path) -> AsyncIterator[RulesGateway]:
    served = await start_rules_gateway(rules_settings(tmp_path), tmp_path / "rules")
    try:
        yield served
    finally:
        await served.gateway.stop()
