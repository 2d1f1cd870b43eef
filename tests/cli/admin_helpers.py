"""Helpers for the administration commands' tests: a fresh SQLite database and vault key per
test, commands that must succeed, and the audit trail they leave."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml
from click.testing import Result

from catalyst_mcp.cli.admin import cli_identity
from catalyst_mcp.security.vault import generate_key
from tests.cli.helpers import run

ACTOR = cli_identity().subject


def admin_env(folder: Path) -> dict[str, str]:
    """``CATALYST_DATABASE_URL`` (a SQLite file in ``folder``) and a new vault key."""
    return {
        "CATALYST_DATABASE_URL": f"sqlite:///{folder / 'state' / 'catalyst.db'}",
        "CATALYST_SECRET_KEY": generate_key(),
        "CATALYST_SECRET_KEY_PREVIOUS": "",
    }


def ok(*args: str, env: dict[str, str], input: str | None = None) -> Result:
    """Run ``catalyst ARGS`` and check it exits 0."""
    result = run(*args, env=env, input=input)
    assert result.exit_code == 0, (args, result.stdout, result.stderr)
    return result


def audit_trail(env: dict[str, str]) -> list[dict[str, Any]]:
    """Every audit record, oldest first."""
    records: list[dict[str, Any]] = json.loads(
        ok("audit", "search", "--json", "--limit", "100000", env=env).stdout
    )
    return records


def actions(env: dict[str, str]) -> list[tuple[str, str, str]]:
    """(action, target, outcome) of every audit record, oldest first."""
    return [(r["action"], r["target"], r["outcome"]) for r in audit_trail(env)]


def write_rules(path: Path, rules: Any) -> Path:
    path.write_text(yaml.safe_dump(rules, sort_keys=False), encoding="utf-8")
    return path


def add_role(env: dict[str, str], folder: Path, name: str, *globs: str) -> None:
    """Store role ``name`` allowing the tools matching ``globs`` (default: every tool)."""
    rules = [{"effect": "allow", "kinds": ["tool"], "match": list(globs) or ["*"]}]
    ok("roles", "add", name, "--rules", str(write_rules(folder / f"{name}.yaml", rules)), env=env)
