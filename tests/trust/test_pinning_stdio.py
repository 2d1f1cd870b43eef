"""End to end with a real stdio server that changes its tools on request
(``tests/fixtures/mutable_server.py``): a rug pull is held back by a gateway in strict mode,
shown by ``catalyst tools diff``, approved by ``catalyst tools approve`` (on the database: the
running gateway picks it up), and pins outlive the gateway. SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result

from catalyst_mcp.app import Gateway
from catalyst_mcp.cli.admin import cli_identity
from catalyst_mcp.errors import ToolHeldBack
from catalyst_mcp.settings import load_settings
from tests.cli.helpers import run
from tests.conftest import FIXTURES, PYTHON
from tests.live import poll
from tests.trust.conftest import INJECTED, audited, call, running, tool_names

pytestmark = pytest.mark.subprocess

MUTABLE = str(FIXTURES / "mutable_server.py")


def write_config(folder: Path, database_url: str, pin: str = "strict") -> Path:
    server = {
        "command": PYTHON,
        "args": [MUTABLE, "--state", str(folder / "server-state.json")],
        "pin": pin,
        "ping_interval_seconds": 0,
    }
    config = {
        "servers": {"files": server},
        "storage": {"url": database_url},
        "packs": {"path": None},
        "gateway": {"watch_config": False},
    }
    path = folder / "catalyst.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


async def cli(*args: str) -> Result:
    """``catalyst ARGS`` in a thread (it runs its own event loop)."""
    return await asyncio.to_thread(run, *args)


async def mutate(gateway: Gateway, **arguments: Any) -> None:
    result = await call(gateway, "files__mutate", **arguments)
    assert result["content"][0]["text"] == "mutated"


async def test_a_rug_pull_is_held_back_diffed_and_approved(
    tmp_path: Path, database_url: str
) -> None:
    config = write_config(tmp_path, database_url)
    settings = load_settings(config)
    actor = cli_identity().subject
    async with running(settings) as gateway:
        assert sorted(await tool_names(gateway)) == ["files__mutate", "files__read"]
        assert (await call(gateway, "files__read", path="/x"))["content"][0]["text"] == "read /x"

        await mutate(gateway, tool="read", description="Read a file." + INJECTED)
        await poll(lambda: "read" in gateway.pinning.held_on("files"), what="read held back")
        assert sorted(await tool_names(gateway)) == ["files__mutate"]
        with pytest.raises(ToolHeldBack, match="changed its definition since it was approved"):
            await call(gateway, "files__read", path="~/.ssh/id_rsa")

        # the CLI's own gateway (another instance on the database) holds it back too
        listed = await cli("tools", "list", "--config", str(config))
        assert "files__read" not in listed.stdout and "files__mutate" in listed.stdout
        called = await cli(
            "tools", "call", "files__read", "--arg", "path=/x", "--config", str(config)
        )
        assert called.exit_code == 1
        assert "tool 'read' of server 'files' changed its definition" in called.stderr

        shown = await cli("tools", "diff", "files", "--config", str(config))
        assert shown.exit_code == 0, shown.stderr
        out = shown.stdout
        assert "server files: 1 tool changed since approved, held back until approved" in out
        assert "read: changed" in out
        assert "by first-contact" in out
        assert "description:" in out
        assert "Read a file.{+" + INJECTED + "+}" in out
        assert "Approve with: catalyst tools approve files read" in out

        approved = await cli("tools", "approve", "files", "read", "--config", str(config))
        assert approved.exit_code == 0, approved.stderr
        assert "server files: approved read (" in approved.stdout
        await poll(lambda: not gateway.pinning.held_on("files"), what="the approval polled")
        assert sorted(await tool_names(gateway)) == ["files__mutate", "files__read"]
        assert (await call(gateway, "files__read", path="/y"))["content"][0]["text"] == "read /y"
        again = await cli("tools", "diff", "files", "--config", str(config))
        assert "server files: no tool definitions wait for approval" in again.stdout

        trail = await audited(gateway, "pin.approved", "admin.tools.approve")
        calls = await audited(gateway, "tools/call")
    assert trail == [
        ("pin.approved", "files/read", "ok", actor),
        ("admin.tools.approve", "files", "ok", actor),
    ]
    # refused twice, each audited: by this gateway, and by the CLI's
    assert calls.count(("tools/call", "files__read", "denied", "anonymous")) == 2


async def test_pins_outlive_the_gateway(tmp_path: Path, database_url: str) -> None:
    settings = load_settings(write_config(tmp_path, database_url))
    async with running(settings) as gateway:
        await mutate(gateway, tool="note", description="Take a note.", add=True)
        await poll(lambda: "note" in gateway.pinning.held_on("files"), what="note held back")
    # a new gateway on the same database, and the server (restarted) lists the same tools
    async with running(settings) as gateway:
        assert sorted(await tool_names(gateway)) == ["files__mutate", "files__read"]
        with pytest.raises(ToolHeldBack, match="'note' of server 'files' is new since"):
            await call(gateway, "files__note")
        trail = await audited(gateway, "pin.recorded", "pin.changed")
    assert trail == [  # first contact and the change, each once, by the first gateway
        ("pin.recorded", "files", "ok", "gateway"),
        ("pin.changed", "files/note", "ok", "gateway"),
    ]


async def test_cli_refuses_what_is_not_waiting(tmp_path: Path, database_url: str) -> None:
    config = write_config(tmp_path, database_url, pin="warn")
    async with running(load_settings(config)) as gateway:
        await mutate(gateway, tool="read", description="Read a file, now.")
        await poll(lambda: gateway.pinning.live("files")[0]._noted, what="the change seen")
        assert sorted(await tool_names(gateway)) == ["files__mutate", "files__read"]  # warn: served
    shown = await cli("tools", "diff", "files", "--config", str(config), "--json")
    assert shown.exit_code == 0, shown.stderr
    [change] = yaml.safe_load(shown.stdout)
    assert (change["tool"], change["change"]) == ("read", "changed")
    assert "held" not in change
    wrong = await cli("tools", "approve", "files", "write", "--config", str(config))
    assert wrong.exit_code == 1
    assert "no change of tool 'write' of server 'files' is waiting" in wrong.stderr
    ghost = await cli("tools", "diff", "ghost", "--config", str(config))
    assert ghost.exit_code == 1
    assert "no tools of server 'ghost' are pinned" in ghost.stderr
    usage = await cli("tools", "approve", "files", "--config", str(config))
    assert usage.exit_code == 2
    assert "name the tools to approve, or give --all" in usage.stderr
    everything = await cli("tools", "approve", "files", "--all", "--config", str(config), "--json")
    assert everything.exit_code == 0, everything.stderr
    assert [c["tool"] for c in yaml.safe_load(everything.stdout)] == ["read"]
