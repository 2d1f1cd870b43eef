"""``catalyst prompts list`` / ``prompts get`` against the real SDK test server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalyst_mcp.cli.common import EXIT_CONNECT, EXIT_FAILED, EXIT_USAGE
from tests.cli.helpers import run, write_config

pytestmark = [pytest.mark.subprocess, pytest.mark.network]


def test_list(upstream_url: str) -> None:
    result = run("prompts", "list", "--url", upstream_url)
    assert result.exit_code == 0, result.output
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["NAME", "ARGUMENTS", "DESCRIPTION"],
        ["greet", "name", "A", "greeting", "prompt."],
    ]


def test_list_configured_json(tmp_path: Path, upstream_url: str) -> None:
    config = write_config(tmp_path / "c.yaml", {"web": {"url": upstream_url}})
    result = run("prompts", "list", "--config", str(config), "--json")
    assert result.exit_code == 0
    (prompt,) = json.loads(result.stdout)
    assert prompt["name"] == "web__greet"
    assert prompt["arguments"][0]["name"] == "name"


def test_get(upstream_url: str) -> None:
    result = run("prompts", "get", "greet", "--arg", "name=Ada", "--url", upstream_url)
    assert result.exit_code == 0, result.output
    assert result.stdout == "user: Please greet Ada\n"


def test_get_errors(upstream_url: str, dead_url: str) -> None:
    assert run("prompts", "get", "nope", "--url", upstream_url).exit_code == EXIT_FAILED
    assert run("prompts", "get", "greet", "--arg", "x", "--url", upstream_url).exit_code == (
        EXIT_USAGE
    )
    assert run("prompts", "get", "greet", "--url", dead_url).exit_code == EXIT_CONNECT
