"""``catalyst packs show``: one pack in detail, and never a secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from catalyst_mcp.cli.common import EXIT_CONFIG, EXIT_OK, EXIT_USAGE
from catalyst_mcp.cli.packs_support import mask_url
from tests.cli.helpers import run
from tests.conftest import ROOT

PACKS = ROOT / "knowledge-packs"
CANARY = "canary-91b7-SECRET"


def config(tmp_path: Path, packs: Path) -> Path:
    path = tmp_path / "catalyst.yaml"
    path.write_text(f"packs:\n  path: {packs}\n", encoding="utf-8")
    return path


def secret_pack(tmp_path: Path) -> Path:
    data = {
        "pack": "vault",
        "description": "A pack whose connections hold secrets.\nSecond line.",
        "connections": {
            "db": {"type": "sql", "url": "postgresql://app:hunter2@db.internal:5432/crm"},
            "api": {
                "type": "rest",
                "base_url": "https://api.example.com/v1",
                "headers": {"X-Key": "${env:SHOW_KEY}"},
                "auth": {
                    "type": "api_key",
                    "name": "X-Api-Key",
                    "value": "${env:SHOW_KEY}",
                },
                "allow_private_network": True,
            },
            "idp": {
                "type": "rest",
                "base_url": "https://idp.example.com",
                "auth": {
                    "type": "oauth2_client_credentials",
                    "token_url": "https://idp.example.com/token",
                    "client_id": "app",
                    "client_secret": "${env:SHOW_KEY}",
                    "scopes": ["read"],
                },
            },
        },
        "tools": [
            {
                "name": "issue",
                "description": "One issue.",
                "annotations": {"readOnlyHint": True},
                "parameters": {
                    "number": {"type": "integer", "required": True},
                    "ids": {"type": "array", "items": {"type": "integer"}},
                },
                "rest": {"connection": "api", "path": "/issues/{number}"},
            },
            {
                "name": "count",
                "description": "How many.",
                "sql": {"connection": "db", "statement": "SELECT 1"},
            },
        ],
        "resources": [
            {"uri": "vault://readme", "name": "readme", "text": "hi"},
            {
                "uri_template": "vault://issues/{n}",
                "name": "issue",
                "rest": {"connection": "api", "path": "/issues/{n}"},
            },
        ],
        "limits": {"rate_per_second": 5, "burst": 10},
    }
    file = tmp_path / "vault.yaml"
    file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return file


def test_show_the_bundled_pack(tmp_path: Path) -> None:
    result = run("packs", "show", "crm", "--config", str(config(tmp_path, PACKS)))
    assert result.exit_code == EXIT_OK
    lines = result.stdout.splitlines()
    assert lines[0] == "pack crm: Customers and their orders (sample data)."
    assert lines[1] == f"file: {PACKS}/crm.yaml"
    assert lines[2].startswith("limits: 16 calls at once, unlimited rate, 30 s per call")
    assert "connections (1):" in lines
    assert any(
        line.split()
        == ["db", "sql", "sqlite:///${pack_dir}/crm.db", "read-only,", "10", "s", "timeout"]
        for line in lines
    )
    find = next(line for line in lines if line.startswith("find_customers "))
    assert "SQL on db" in find
    assert "name: string, limit?: integer = 10" in find
    assert "prompts (1):" in lines


def test_show_never_prints_a_secret(tmp_path: Path) -> None:
    file = secret_pack(tmp_path)
    result = run("packs", "show", str(file), env={"SHOW_KEY": CANARY})
    assert result.exit_code == EXIT_OK, result.output
    out = result.stdout
    assert CANARY not in out
    assert "hunter2" not in out
    assert "postgresql://app:***@db.internal:5432/crm" in out
    assert "auth api_key X-Api-Key in header, 10 s timeout, private network allowed" in out
    assert "auth oauth2_client_credentials" in out
    assert "GET /issues/{number} on api" in out  # two REST connections: named
    assert "number: integer, ids?: array[integer]" in out
    assert "vault://issues/{n}" in out
    assert "limits: 16 calls at once, 5 calls/s (burst 10)" in out
    assert "pack vault: A pack whose connections hold secrets." in out

    result = run("packs", "show", str(file), "--json", env={"SHOW_KEY": CANARY})
    assert result.exit_code == EXIT_OK
    assert CANARY not in result.stdout
    data = json.loads(result.stdout)
    api = next(c for c in data["connections"] if c["name"] == "api")
    assert api == {
        "name": "api",
        "type": "rest",
        "target": "https://api.example.com/v1",
        "timeout_seconds": 10.0,
        "allow_private_network": True,
        "headers": ["X-Key"],
        "auth": {"type": "api_key", "name": "X-Api-Key", "in": "header"},
    }
    assert data["tools"][0]["parameters"] == {
        "number": {"type": "integer", "required": True},
        "ids": {"type": "array", "items": {"type": "integer"}},
    }
    assert data["tools"][0]["annotations"] == {"readOnlyHint": True}
    assert data["resources"][1]["source"] == "GET /issues/{n} on api"
    assert data["tests"] == 0


def test_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    result = run("packs", "show", "nope", "--config", str(config(tmp_path, PACKS)))
    assert result.exit_code == EXIT_USAGE
    assert result.stderr == "error: unknown pack 'nope' (known: crm)\n"


def test_unknown_name_mentions_invalid_files(tmp_path: Path) -> None:
    folder = tmp_path / "packs"
    folder.mkdir()
    (folder / "broken.yaml").write_text("pack: broken\ntools: 5\n")
    result = run("packs", "show", "broken", "--config", str(config(tmp_path, folder)))
    assert result.exit_code == EXIT_USAGE
    assert "(known: none); 1 problem(s) in the folder, see `catalyst packs validate`" in (
        result.stderr
    )


def test_an_invalid_or_missing_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("pack: broken\ntools: 5\n")
    result = run("packs", "show", str(broken))
    assert result.exit_code == EXIT_CONFIG
    assert result.stderr.startswith("error: invalid pack file:\n")
    assert f"{broken}:2:1: tools: Input should be a valid list" in result.stderr
    result = run("packs", "show", str(tmp_path / "missing.yaml"))
    assert result.exit_code == EXIT_USAGE
    assert "no such pack file" in result.stderr


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://app:pw@db/crm", "postgresql://app:***@db/crm"),
        ("postgresql://app:${env:PW}@db/crm", "postgresql://app:***@db/crm"),
        ("postgresql://app@db/crm", "postgresql://app@db/crm"),
        ("https://api.example.com/v1?key=abc&x=1", "https://api.example.com/v1?key=***&x=***"),
        ("sqlite:///${pack_dir}/crm.db", "sqlite:///${pack_dir}/crm.db"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown
