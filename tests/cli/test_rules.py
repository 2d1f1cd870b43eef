"""``catalyst rules validate|list|test|approvals|approve|reject``."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from pathlib import Path

import pytest

from catalyst_mcp.cli.common import EXIT_CONFIG, EXIT_FAILED, EXIT_USAGE
from catalyst_mcp.orchestration.rules.approvals import Approvals
from catalyst_mcp.storage.approvals import ApprovalRepo
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.migrate import upgrade
from tests.cli.admin_helpers import ACTOR, actions, admin_env, ok
from tests.cli.helpers import run

RULES = """
- id: big-exports
  tools: ["crm__export*"]
  if: arguments.limit > 1000
  action: require_approval
  message: Big exports need approval
- id: no-drop
  tools: ["db__*"]
  if: '"drop" in arguments.sql.lower()'
  action: deny
  message: no DROP
- id: cap
  roles: [analyst]
  tools: ["db__*"]
  action: transform
  set: {arguments.limit: 100}
- id: emails
  action: transform
  redact: ["result.rows[*].email"]
"""


@pytest.fixture
def rules_file(tmp_path: Path) -> Path:
    file = tmp_path / "rules" / "policy.yaml"
    file.parent.mkdir()
    file.write_text(RULES)
    return file


def test_test_shows_which_rule_fires_and_why(rules_file: Path) -> None:
    out = ok(
        "rules",
        "test",
        str(rules_file),
        "--as",
        "alice",
        "--role",
        "analyst",
        "--call",
        "db__execute",
        "--args",
        '{"sql": "DROP TABLE t", "limit": 5}',
        env={},
    ).stdout
    lines = out.splitlines()
    assert lines[0] == "call: db__execute on server db by alice (roles: analyst)"
    table = {line.split()[0]: line for line in lines[3:8]}
    assert "out of scope" in table["big-exports"]
    assert "tool 'db__execute' is not one of ['crm__export*']" in table["big-exports"]
    assert "matched" in table["no-drop"] and '"drop" in arguments.sql.lower()' in table["no-drop"]
    assert "not reached" in table["cap"]
    assert "decision: denied by rule 'no-drop': no DROP" in out


def test_test_shows_transforms_and_the_result_returned(rules_file: Path) -> None:
    result = {"structuredContent": {"rows": [{"email": "a@x", "n": 1}]}}
    report = json.loads(
        ok(
            "rules",
            "test",
            str(rules_file),
            "--as",
            "alice",
            "--role",
            "analyst",
            "--call",
            "db__query",
            "--args",
            '{"limit": 5000}',
            "--result",
            json.dumps(result),
            "--json",
            env={},
        ).stdout
    )
    outcomes = {r["id"]: r["outcome"] for r in report["rules"]}
    assert outcomes == {
        "big-exports": "out of scope",
        "no-drop": "error",  # no sql argument: a deny fails closed
        "cap": "not reached",
        "emails": "not reached",
    }
    assert report["decision"].startswith("denied by rule 'no-drop'")
    bob = json.loads(
        ok(
            "rules",
            "test",
            str(rules_file),
            "--as",
            "bob",
            "--call",
            "db__query",
            "--args",
            '{"sql": "select", "limit": 5000}',
            "--result",
            json.dumps(result),
            "--json",
            env={},
        ).stdout
    )
    assert {r["id"]: r["outcome"] for r in bob["rules"]}["cap"] == "not matched"
    assert bob["decision"].startswith("the call runs")
    assert bob["result_returned"] == {
        "structuredContent": {"rows": [{"email": "[redacted]", "n": 1}]}
    }


def test_test_refuses_bad_input(rules_file: Path) -> None:
    bad_args = run("rules", "test", str(rules_file), "--as", "a", "--call", "x", "--args", "[1")
    assert bad_args.exit_code == EXIT_USAGE and "--args: not valid JSON" in bad_args.stderr
    missing = run("rules", "test", "/nonexistent", "--as", "a", "--call", "x")
    assert missing.exit_code == EXIT_USAGE


def test_validate_lists_every_problem(tmp_path: Path, rules_file: Path) -> None:
    assert ok("rules", "validate", str(rules_file), env={}).stdout == (
        f"{rules_file}: 4 rules, all valid\n"
    )
    (rules_file.parent / "bad.yaml").write_text("- id: x\n  action: fly\n")
    result = run("rules", "validate", str(rules_file.parent))
    assert result.exit_code == EXIT_CONFIG
    assert f"{rules_file.parent / 'bad.yaml'}:2:3: rule 'x': action: Input should be" in (
        result.stderr
    )


def test_list_shows_file_and_stored_rules(tmp_path: Path, rules_file: Path) -> None:
    env = admin_env(tmp_path)
    config = tmp_path / "catalyst.yaml"
    config.write_text(f"rules:\n  path: {rules_file.parent}\n")
    listed = json.loads(ok("rules", "list", "--config", str(config), "--json", env=env).stdout)
    assert [r["id"] for r in listed["rules"]] == ["big-exports", "no-drop", "cap", "emails"]
    assert listed["rules"][0]["source"] == f"{rules_file}:2"
    table = ok("rules", "list", "--config", str(config), "--no-stored", env=env).stdout
    assert table.splitlines()[0].split() == ["ID", "PRIORITY", "ACTION", "SCOPE", "SOURCE"]


def test_approvals_are_listed_and_decided(tmp_path: Path) -> None:
    env = admin_env(tmp_path)
    url = env["CATALYST_DATABASE_URL"].replace("sqlite://", "sqlite+aiosqlite://")
    (tmp_path / "state").mkdir()

    async def held() -> list[str]:
        db = Database(url)
        try:
            await upgrade(db)
            approvals = Approvals(ApprovalRepo(db))
            ids = []
            for limit in (2000, 3000):
                record = await approvals.open(
                    rule_id="big",
                    subject="alice",
                    via="api_key",
                    tool="crm__export",
                    server="crm",
                    arguments={"limit": limit},
                    message="needs approval",
                    timeout=timedelta(minutes=5).total_seconds(),
                )
                ids.append(record.id)
            return ids
        finally:
            await db.close()

    first, second = asyncio.run(held())
    table = ok("rules", "approvals", "--status", "pending", env=env).stdout
    assert first in table and second in table and '{"limit": 2000}' in table
    assert ok("rules", "approve", first, "--note", "ok", env=env).stdout == (
        f"{first}: approved (crm__export for alice)\n"
    )
    assert ok("rules", "reject", second, env=env).stdout == (
        f"{second}: rejected (crm__export for alice)\n"
    )
    again = run("rules", "approve", first, env=env)
    assert again.exit_code == EXIT_FAILED and "is approved, not pending" in again.stderr
    unknown = run("rules", "reject", "apr_nothing", env=env)
    assert unknown.exit_code == EXIT_FAILED and "no approval request" in unknown.stderr
    shown = json.loads(ok("rules", "approvals", "--json", env=env).stdout)
    assert {(a["id"], a["status"], a["decided_by"]) for a in shown} == {
        (first, "approved", ACTOR),
        (second, "rejected", ACTOR),
    }
    assert ("admin.approvals.approve", first, "ok") in actions(env)
    assert ("admin.approvals.approve", first, "error") in actions(env)
