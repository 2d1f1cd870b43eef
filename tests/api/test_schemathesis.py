"""schemathesis against the REST API for tools of a live gateway over a real MCP server.

The server (``tests/fixtures/rest_tools_server.py``, the official SDK over stdio) has a few
harmless tools: one with structured output, one with nested models (``$defs``), one that gives
tool errors. schemathesis (its CLI, in a process of its own, while the gateway serves in this
test's event loop) reads each OpenAPI document, generates valid and invalid requests from it
and checks every answer: never a 5xx, every status documented, every body and header matching
its schema, invalid requests refused, valid ones accepted where the document says enough.

* the per-tool document (``/api/v1/tools/openapi.json``): every check;
* the REST API's own document, its ``tools`` operations: every check but
  ``positive_data_acceptance``, since its operations are generic: a tool's arguments are "any
  object" and a cursor any string, so a request valid by the document may still be one the
  tool or the list refuses (a documented 400); the per-tool document is the precise one.

The seed is fixed so that a run can be repeated (``st run ... --seed``).
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from catalyst_mcp.security import apikeys
from catalyst_mcp.storage.keys import KeyRepo
from catalyst_mcp.storage.users import UserRepo
from tests.conftest import FIXTURES, PYTHON
from tests.live import LiveGateway, live_gateway

pytestmark = [pytest.mark.network, pytest.mark.subprocess, pytest.mark.timeout(120)]

SERVER = FIXTURES / "rest_tools_server.py"
SEED = "20260728"


def gateway_settings(tmp_path: Path) -> dict[str, object]:
    return {
        "storage": {"url": f"sqlite+aiosqlite:///{tmp_path}/c.db"},
        "auth": {"enabled": True},
        "packs": {"path": None},
        "servers": {"t": {"command": PYTHON, "args": [str(SERVER)]}},
    }


async def admin_token(live: LiveGateway) -> str:
    db = live.gateway.db
    assert db is not None
    await UserRepo(db, known_roles={"admin"}).create("root", roles=("admin",))
    new = apikeys.generate()
    await KeyRepo(db).create("root", "fuzz", new.prefix, new.key_hash)
    return new.token


async def schemathesis(url: str, token: str, *options: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        url,
        "--header",
        f"Authorization: Bearer {token}",
        "--seed",
        SEED,
        "--workers",
        "1",
        "--max-examples",
        "25",
        *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), timeout=100)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, output.decode(errors="replace")


async def test_the_per_tool_document(tmp_path: Path) -> None:
    async with live_gateway(gateway_settings(tmp_path)) as live:
        assert live.server("t")["status"] == "ready"
        token = await admin_token(live)
        code, output = await schemathesis(
            f"{live.base}/api/v1/tools/openapi.json", token, "--checks", "all"
        )
        assert code == 0, output[-6000:]
        assert "4 selected / 4 total" in output, output[-3000:]


async def test_the_tools_operations_of_the_api_document(tmp_path: Path) -> None:
    async with live_gateway(gateway_settings(tmp_path)) as live:
        token = await admin_token(live)
        code, output = await schemathesis(
            f"{live.base}/api/v1/openapi.json",
            token,
            "--include-tag",
            "tools",
            "--checks",
            "all",
            "--exclude-checks",
            "positive_data_acceptance",
        )
        assert code == 0, output[-6000:]
        assert "10 selected" in output, output[-3000:]
