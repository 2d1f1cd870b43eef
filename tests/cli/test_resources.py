"""``catalyst resources list`` / ``resources read`` against the real SDK test server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalyst_mcp.cli.common import EXIT_FAILED
from tests.cli.helpers import run, write_config

pytestmark = [pytest.mark.subprocess, pytest.mark.network]


def test_list(upstream_url: str) -> None:
    result = run("resources", "list", "--url", upstream_url)
    assert result.exit_code == 0, result.output
    assert [line.split() for line in result.stdout.splitlines()] == [
        ["URI", "MIME", "DESCRIPTION"],
        ["res://hello", "text/plain", "hello"],
    ]


def test_templates(upstream_url: str) -> None:
    result = run("resources", "list", "--templates", "--url", upstream_url, "--json")
    assert result.exit_code == 0
    assert [t["uriTemplate"] for t in json.loads(result.stdout)] == ["res://greet/{name}"]


def test_configured_uris_carry_the_gateway_prefix(tmp_path: Path, upstream_url: str) -> None:
    config = write_config(tmp_path / "c.yaml", {"web": {"url": upstream_url}})
    result = run("resources", "list", "--config", str(config), "--json")
    assert [r["uri"] for r in json.loads(result.stdout)] == ["catalyst://web/res://hello"]
    result = run("resources", "read", "catalyst://web/res://greet/bob", "--config", str(config))
    assert result.exit_code == 0, result.output
    assert result.stdout == "greetings bob\n"


def test_read(upstream_url: str) -> None:
    result = run("resources", "read", "res://hello", "--url", upstream_url)
    assert result.exit_code == 0, result.output
    assert result.stdout == "hello resource\n"
    result = run("resources", "read", "res://hello", "--url", upstream_url, "--json")
    assert json.loads(result.stdout)["contents"][0]["text"] == "hello resource"


def test_read_unknown(upstream_url: str) -> None:
    result = run("resources", "read", "res://nope", "--url", upstream_url)
    assert result.exit_code == EXIT_FAILED
    assert result.stderr.startswith("error: ")
