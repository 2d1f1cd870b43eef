"""``catalyst servers list``: every configured server connected as the gateway does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalyst_mcp.cli.common import EXIT_CONFIG, EXIT_FAILED
from tests.cli.helpers import run, stdio_server, write_config

pytestmark = [pytest.mark.subprocess, pytest.mark.network]


def _rows(stdout: str) -> dict[str, list[str]]:
    lines = stdout.splitlines()
    assert lines[0].split() == [
        "NAME",
        "TRANSPORT",
        "STATUS",
        "ERA",
        "TOOLS",
        "RESOURCES",
        "PROMPTS",
        "ERROR",
    ]
    return {line.split()[0]: line.split() for line in lines[1:]}


def test_ready_and_disabled_servers(tmp_path: Path, upstream_url: str) -> None:
    config = write_config(
        tmp_path / "c.yaml",
        {
            "web": {"url": upstream_url},
            "local": stdio_server(era="legacy"),
            "spare": {"command": "no-such-program-for-catalyst", "disabled": True},
        },
    )
    result = run("servers", "list", "--config", str(config))
    assert result.exit_code == 0, result.output
    rows = _rows(result.stdout)
    assert rows["web"] == ["web", "streamable-http", "ready", "modern", "8", "1", "1"]
    assert rows["local"] == ["local", "stdio", "ready", "legacy", "8", "1", "1"]
    assert rows["spare"] == ["spare", "stdio", "disabled"]
    assert list(rows) == ["web", "local", "spare"]  # config order


def test_a_failed_server_makes_exit_1(tmp_path: Path, upstream_url: str, dead_url: str) -> None:
    config = write_config(
        tmp_path / "c.yaml", {"web": {"url": upstream_url}, "gone": {"url": dead_url}}
    )
    result = run("servers", "list", "--config", str(config))
    assert result.exit_code == EXIT_FAILED
    rows = _rows(result.stdout)
    assert rows["gone"][:3] == ["gone", "streamable-http", "failed"]
    assert "cannot connect to 127.0.0.1:" in result.stdout
    assert rows["web"][2] == "ready"


def test_json(tmp_path: Path, upstream_url: str) -> None:
    config = write_config(
        tmp_path / "c.yaml",
        {"web": {"url": upstream_url}, "off": {"url": upstream_url, "enabled": False}},
    )
    result = run("servers", "list", "--config", str(config), "--json")
    assert result.exit_code == 0
    web, off = json.loads(result.stdout)
    assert web["name"] == "web"
    assert web["status"] == "ready"
    assert web["serverInfo"]["name"] == "test-upstream"
    assert web["tools"] == 8
    assert off == {"name": "off", "transport": "streamable-http", "status": "disabled"}


def test_timeout_option_limits_the_handshake(tmp_path: Path) -> None:
    hang = {"command": "python3", "args": ["-c", "import time; time.sleep(30)"]}
    config = write_config(tmp_path / "c.yaml", {"hang": hang})
    result = run("servers", "list", "--config", str(config), "--timeout", "0.5", "--json")
    assert result.exit_code == EXIT_FAILED
    (report,) = json.loads(result.stdout)
    assert report["status"] == "failed"
    assert report["error"] == "timed out connecting"


def test_invalid_config_is_exit_3(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("servers:\n  a:\n    url: nope\n", encoding="utf-8")
    result = run("servers", "list", "--config", str(path))
    assert result.exit_code == EXIT_CONFIG
    assert f"{path}:2: servers.a: url must start with http://" in result.stderr
