"""``/api/v1/servers`` in-process, over a real (lean) stdio server: status, stop (kept stopped,
shown by /ready without degrading it), start, restart (a failed one keeps the old process),
logs with long polling, the audit trail of each action, and no database needed."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from catalyst_mcp.app import Gateway
from catalyst_mcp.security import apikeys
from catalyst_mcp.settings import ServerConfig, Settings
from catalyst_mcp.storage.keys import KeyRepo
from catalyst_mcp.storage.users import UserRepo
from catalyst_mcp.upstreams.upstream import Upstream
from tests.asgiclient import AsgiClient, Response
from tests.conftest import FIXTURES, PYTHON
from tests.fakes import modern_headers, modern_request

pytestmark = pytest.mark.subprocess

API = "/api/v1"
LEAN = {"command": PYTHON, "args": [str(FIXTURES / "lean_server.py")], "era": "legacy"}


class Api:
    def __init__(self, gateway: Gateway, token: str | None = None) -> None:
        self.gateway = gateway
        self.client = AsgiClient(gateway.asgi)
        self.token = token

    async def call(self, method: str, path: str, *, token: str | None = None) -> Response:
        headers = {}
        if token or self.token:
            headers["authorization"] = f"Bearer {token or self.token}"
        return await self.client.request(method, API + path, headers=headers)

    async def ok(self, method: str, path: str) -> Any:
        response = await self.call(method, path)
        assert response.status == 200, response.body
        return response.json()

    async def tools(self) -> list[str]:
        message = modern_request("tools/list")
        headers = modern_headers(message)
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        answer = (await self.client.post("/mcp", message, headers)).message()
        return [t["name"] for t in answer["result"]["tools"]]

    async def say(self, text: str) -> None:
        message = modern_request("tools/call", {"name": "lean__say", "arguments": {"text": text}})
        answer = (await self.client.post("/mcp", message, modern_headers(message))).message()
        assert answer["result"]["content"][0]["text"] == "said"


@pytest_asyncio.fixture
async def api() -> AsyncIterator[Api]:
    """Auth off, storage off: the local user is an administrator, and no database exists (a
    pinned server would open it: pin off)."""
    settings = Settings.model_validate(
        {
            "servers": {"lean": {**LEAN, "pin": "off"}},
            "packs": {"path": None},
            "audit": {"enabled": False},
        }
    )
    gateway = Gateway(settings)
    assert gateway.db is None
    await gateway.start()
    try:
        yield Api(gateway)
    finally:
        await gateway.stop()


async def test_status_lists_each_server_with_its_process(api: Api) -> None:
    servers = (await api.ok("GET", "/servers"))["servers"]
    assert [s["name"] for s in servers] == ["lean"]
    lean = servers[0]["process"]  # the tools API's list, with an administrator's details
    assert lean["state"] == "ready" and lean["transport"] == "stdio" and lean["era"] == "legacy"
    assert isinstance(lean["pid"], int) and lean["uptime_seconds"] >= 0
    assert lean["restarts"] == 0 and lean["circuit"] == "closed" and lean["tools"] == 6
    assert lean["sharing"] == "shared" and lean["processes"] == 0 and lean["sandboxed"] is False
    detail = await api.ok("GET", "/servers/lean")
    assert detail["instances"] == [] and detail["pid"] == lean["pid"]
    missing = await api.call("GET", "/servers/ghost")
    assert missing.status == 404 and missing.json()["error"]["code"] == "not_found"


async def test_stop_keeps_it_stopped_and_ready_says_so_without_degrading(api: Api) -> None:
    pid = (await api.ok("GET", "/servers/lean"))["pid"]
    stopped = await api.ok("POST", "/servers/lean/stop")
    assert stopped["changed"] is True
    server = stopped["server"]
    assert server["state"] == "stopped" and server["stopped_by"] == "anonymous"
    assert server["pid"] is None and server["tools"] == 0
    assert await api.tools() == []
    ready = (await api.client.get("/ready")).json()
    assert ready["status"] == "ready"
    assert ready["servers"][0]["status"] == "stopped"
    assert (await api.ok("POST", "/servers/lean/stop"))["changed"] is False
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # stop returns once the process is gone

    started = await api.ok("POST", "/servers/lean/start")
    assert started["changed"] is True and started["server"]["state"] == "ready"
    assert started["server"]["pid"] != pid
    assert "lean__whoami" in await api.tools()
    assert (await api.ok("POST", "/servers/lean/start"))["changed"] is False


async def test_restart_replaces_the_process(api: Api) -> None:
    before = await api.ok("GET", "/servers/lean")
    restarted = await api.ok("POST", "/servers/lean/restart")
    after = restarted["server"]
    assert after["state"] == "ready" and after["pid"] != before["pid"]
    assert after["restarts"] == 1


async def test_a_restart_that_cannot_start_keeps_the_running_process(api: Api) -> None:
    before = await api.ok("GET", "/servers/lean")
    servers = api.gateway.servers

    def broken(name: str, namespace: str, config: ServerConfig) -> Upstream:
        config = config.model_copy(
            update={"command": "/nonexistent/server", "restart_initial_seconds": 30}
        )
        return Upstream(name, namespace, config, 10.0)

    servers.build = broken
    response = await api.call("POST", "/servers/lean/restart")
    assert response.status == 503
    message = response.json()["error"]["message"]
    assert message.startswith("lean could not be restarted (cannot start lean")
    assert message.endswith("the running one keeps serving")
    assert (await api.ok("GET", "/servers/lean"))["pid"] == before["pid"]


async def test_logs_show_the_tail_and_follow_new_lines(api: Api) -> None:
    await api.say("hello from lean")
    for _ in range(100):
        logs = await api.ok("GET", "/servers/lean/logs?tail=5")
        if any(line["text"] == "hello from lean" for line in logs["lines"]):
            break
        await asyncio.sleep(0.02)
    texts = [line["text"] for line in logs["lines"]]
    assert texts[0].startswith("lean-server ") and texts[-1] == "hello from lean"
    assert logs["capacity"] == 1000 and logs["last_seq"] == logs["lines"][-1]["seq"]
    line = logs["lines"][-1]
    assert (
        line["instance"] == "shared"
        and line["pid"] == (await api.ok("GET", "/servers/lean"))["pid"]
    )
    # following: a long poll that a new line wakes
    last = logs["last_seq"]
    poll = asyncio.create_task(api.ok("GET", f"/servers/lean/logs?after={last}&wait=10"))
    await asyncio.sleep(0.2)
    assert not poll.done()
    await api.say("a new line")
    followed = await asyncio.wait_for(poll, 10)
    assert [x["text"] for x in followed["lines"]] == ["a new line"] and followed["missed"] == 0
    # the lines survive a restart
    await api.ok("POST", "/servers/lean/restart")
    kept = await api.ok("GET", "/servers/lean/logs?tail=1000")
    assert "hello from lean" in [x["text"] for x in kept["lines"]]
    bad = await api.call("GET", "/servers/lean/logs?wait=99")
    assert bad.status == 422


async def test_actions_are_audited_and_need_an_administrator(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings.model_validate(
        {
            "servers": {"lean": LEAN},
            "packs": {"path": None},
            "auth": {"enabled": True},
            "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/c.db"},
        }
    )
    gateway = Gateway(settings)
    await gateway.start()
    try:
        assert gateway.db is not None
        tokens = {}
        for user, roles in (("root", ("admin",)), ("bob", ())):
            await UserRepo(gateway.db, known_roles={"admin"}).create(user, roles=roles)
            new = apikeys.generate()
            await KeyRepo(gateway.db).create(user, "k", new.prefix, new.key_hash)
            tokens[user] = new.token
        api = Api(gateway, tokens["root"])
        refused = await api.call("POST", "/servers/lean/stop", token=tokens["bob"])
        assert refused.status == 403
        assert (await api.call("GET", "/servers")).status == 200
        # the list is the tools API's: a non-administrator sees no process details in it
        theirs = await api.call("GET", "/servers", token=tokens["bob"])
        assert theirs.status == 200
        assert all("process" not in s for s in theirs.json()["servers"])
        await api.ok("POST", "/servers/lean/stop")
        await api.ok("POST", "/servers/lean/start")
        await api.ok("POST", "/servers/lean/restart")
        missing = await api.call("POST", "/servers/ghost/restart")
        assert missing.status == 404
        audit = gateway.access.audit
        assert audit is not None
        await audit.flush()
        records = (await api.ok("GET", "/audit?limit=100"))["records"]
        seen = [
            (r["actor"], r["action"], r["target"], r["outcome"])
            for r in records
            if r["action"].startswith("admin.servers.")
        ]
        assert seen == [
            ("bob", "admin.servers.stop", f"{API}/servers/lean/stop", "denied"),
            ("root", "admin.servers.stop", "lean", "ok"),
            ("root", "admin.servers.start", "lean", "ok"),
            ("root", "admin.servers.restart", "lean", "ok"),
            ("root", "admin.servers.restart", "ghost", "error"),
        ]
    finally:
        await gateway.stop()


def test_the_openapi_document_describes_the_server_routes() -> None:
    settings = Settings.model_validate({"packs": {"path": None}})
    document = Gateway(settings).api.document()
    paths = document["paths"]
    assert set(paths[f"{API}/servers/{{name}}/logs"]["get"]["responses"]) >= {"200", "404"}
    schema = document["components"]["schemas"]["ServerStatus"]
    assert {"state", "pid", "uptime_seconds", "restarts", "last_error", "circuit"} <= set(
        schema["properties"]
    )
    assert "stopped" in json.dumps(schema) and orjson.dumps(document)
