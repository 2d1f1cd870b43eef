"""``catalyst roles add|list|show|remove|check``: rules validated before they are stored, and
the decision the gateway would make."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from catalyst_mcp.cli.common import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, EXIT_USAGE
from tests.cli.admin_helpers import actions, admin_env, audit_trail, ok, write_rules
from tests.cli.helpers import run

CRM = [{"effect": "allow", "kinds": ["tool"], "match": ["crm__*"]}]
CONFIG = """
rbac:
  roles:
    dev:
      description: from the config file
      rules: [{effect: allow, match: ["*"]}]
    support:
      rules: [{effect: allow, kinds: [tool], match: ["helpdesk__*"]}]
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return admin_env(tmp_path)


@pytest.fixture
def config(tmp_path: Path) -> str:
    path = tmp_path / "catalyst.yaml"
    path.write_text(CONFIG, encoding="utf-8")
    return str(path)


def add(env: dict[str, str], folder: Path, name: str, rules: Any, *extra: str) -> str:
    file = write_rules(folder / f"{name}.yaml", rules)
    return ok("roles", "add", name, "--rules", str(file), *extra, env=env).stdout


def test_add_show_list(env: dict[str, str], tmp_path: Path) -> None:
    assert add(env, tmp_path, "crm", CRM) == "stored role 'crm' with 1 rule(s)\n"
    assert add(env, tmp_path, "ops", {"description": "operators", "rules": CRM * 2}) == (
        "stored role 'ops' with 2 rule(s)\n"
    )
    ok("users", "add", "ada", "--role", "crm", env=env)
    shown = ok("roles", "show", "crm", env=env).stdout.splitlines()
    assert shown[:2] == ["role 'crm' (database)", "holders: ada"]
    assert yaml.safe_load("\n".join(shown[3:])) == CRM
    as_json = json.loads(ok("roles", "show", "ops", "--json", env=env).stdout)
    assert (as_json["description"], as_json["holders"], len(as_json["rules"])) == (
        "operators",
        [],
        2,
    )
    lines = ok("roles", "list", env=env).stdout.splitlines()
    assert lines[0].split() == ["NAME", "SOURCE", "RULES", "HOLDERS", "DESCRIPTION"]
    assert [line.split()[:4] for line in lines[1:]] == [
        ["admin", "built-in", "1", "0"],
        ["crm", "database", "1", "1"],
        ["ops", "database", "2", "0"],
    ]
    listed = json.loads(ok("roles", "list", "--json", env=env).stdout)
    assert [(r["name"], r["holders"]) for r in listed] == [
        ("admin", []),
        ("crm", ["ada"]),
        ("ops", []),
    ]
    assert actions(env)[:2] == [
        ("admin.roles.create", "crm", "ok"),
        ("admin.roles.create", "ops", "ok"),
    ]


def test_add_from_stdin_with_a_description(env: dict[str, str]) -> None:
    text = yaml.safe_dump({"description": "ignored", "rules": CRM})
    ok("roles", "add", "crm", "--rules", "-", "--description", "CRM users", input=text, env=env)
    shown = json.loads(ok("roles", "show", "crm", "--json", env=env).stdout)
    assert (shown["description"], shown["rules"]) == ("CRM users", CRM)


def test_time_windows_are_stored_as_json_and_still_valid(env: dict[str, str]) -> None:
    text = """
- effect: allow
  match: ["crm__*"]
  when: {days: [monday, fri], hours: "09:00-17:00", timezone: Europe/Berlin, from: 2025-01-01}
- effect: deny
  kinds: tools
  match: ["crm__delete_*"]
"""
    ok("roles", "add", "crm", "--rules", "-", input=text, env=env)
    rules = json.loads(ok("roles", "show", "crm", "--json", env=env).stdout)["rules"]
    assert rules == [
        {
            "effect": "allow",
            "match": ["crm__*"],
            "when": {
                "days": ["mon", "fri"],
                "hours": "09:00-17:00",
                "timezone": "Europe/Berlin",
                "from": "2025-01-01",
            },
        },
        {"effect": "deny", "kinds": ["tool"], "match": ["crm__delete_*"]},
    ]
    ok("users", "add", "ada", "--role", "crm", env=env)
    result = run("roles", "check", "ada", "tool", "crm__delete_all", env=env)
    assert (result.exit_code, result.stdout) == (
        EXIT_FAILED,
        "denied: role 'crm' denies tool 'crm__delete_all' (rule 2)\n",
    )


def test_invalid_rules_list_every_problem_and_store_nothing(
    env: dict[str, str], tmp_path: Path
) -> None:
    rules = [
        {"effect": "allow", "match": ["crm__*"]},
        {"effect": "maybe", "match": ["x"]},
        {"effect": "deny", "match": ["[oops"], "colour": "red"},
    ]
    file = write_rules(tmp_path / "bad.yaml", rules)
    result = run("roles", "add", "bad", "--rules", str(file), env=env)
    assert result.exit_code == EXIT_CONFIG
    lines = result.stderr.splitlines()
    assert lines[0] == "error: invalid rules file:"
    assert any(line.startswith(f"{file}: role 'bad', rule 2: effect:") for line in lines)
    assert f"{file}: role 'bad', rule 3: colour: unknown field (check the spelling)" in lines
    assert any("rule 3: match" in line and "never closed" in line for line in lines)
    assert [r["name"] for r in json.loads(ok("roles", "list", "--json", env=env).stdout)] == [
        "admin"
    ]
    assert audit_trail(env) == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- effect: allow\n  match: [x\n", "<stdin>:3: not valid YAML"),
        ("just text", "<stdin>: expected a list of rules, or a mapping with 'rules'"),
        ("", "<stdin>: expected a list of rules"),
        ("[]", None),
    ],
    ids=["yaml", "scalar", "nothing", "no-rules"],
)
def test_rules_that_are_not_rules(env: dict[str, str], text: str, message: str | None) -> None:
    result = run("roles", "add", "x", "--rules", "-", input=text, env=env)
    if message is None:  # an empty list of rules is a role that allows nothing
        assert result.exit_code == EXIT_OK
        return
    assert result.exit_code == EXIT_CONFIG
    assert message in result.stderr


def test_add_twice_needs_replace(env: dict[str, str], tmp_path: Path) -> None:
    add(env, tmp_path, "crm", CRM)
    result = run("roles", "add", "crm", "--rules", str(tmp_path / "crm.yaml"), env=env)
    assert result.exit_code == EXIT_FAILED
    assert result.stderr == "error: a role named 'crm' already exists\n"
    add(env, tmp_path, "crm", CRM * 3, "--replace", "--description", "new")
    shown = json.loads(ok("roles", "show", "crm", "--json", env=env).stdout)
    assert (shown["description"], len(shown["rules"])) == ("new", 3)
    assert actions(env) == [
        ("admin.roles.create", "crm", "ok"),
        ("admin.roles.create", "crm", "error"),
        ("admin.roles.replace", "crm", "ok"),
    ]


def test_remove(env: dict[str, str], tmp_path: Path, config: str) -> None:
    add(env, tmp_path, "crm", CRM)
    ok("users", "add", "ada", "--role", "crm", env=env)
    held = run("roles", "remove", "crm", env=env)
    assert held.exit_code == EXIT_FAILED
    assert "role 'crm' is held by ada" in held.stderr
    assert ok("roles", "remove", "crm", "--force", env=env).stdout == (
        "removed role 'crm' (taken from ada)\n"
    )
    assert json.loads(ok("users", "show", "ada", "--json", env=env).stdout)["roles"] == []
    missing = run("roles", "remove", "crm", env=env)
    assert (missing.exit_code, missing.stderr) == (EXIT_FAILED, "error: no role named 'crm'\n")
    configured = run("roles", "remove", "support", "--config", config, env=env)
    assert configured.exit_code == EXIT_FAILED
    assert "it is defined in the configuration file (rbac.roles)" in configured.stderr
    deletes = [r for r in audit_trail(env) if r["action"] == "admin.roles.delete"]
    assert [(r["outcome"], r["detail"].get("holders")) for r in deletes] == [
        ("error", None),
        ("ok", ["ada"]),
        ("error", None),
        ("error", None),
    ]


def test_configured_and_stored_roles_together(
    env: dict[str, str], tmp_path: Path, config: str
) -> None:
    add(env, tmp_path, "dev", CRM)  # replaces the configured 'dev' (which allows everything)
    listed = json.loads(ok("roles", "list", "--config", config, "--json", env=env).stdout)
    assert [(r["name"], r["source"]) for r in listed] == [
        ("admin", "built-in"),
        ("dev", "database (replaces config)"),
        ("support", "config"),
    ]
    shown = ok("roles", "show", "support", "--config", config, env=env).stdout
    assert shown.startswith("role 'support' (config)\n")
    ok("users", "add", "ada", "--role", "dev", env=env)
    check = ["roles", "check", "ada", "tool", "--config", config]
    allowed = run(*check, "crm__find", env=env)
    assert (allowed.exit_code, allowed.stdout) == (
        EXIT_OK,
        "allowed: role 'dev' allows tool 'crm__find' (rule 1)\n",
    )
    denied = run(*check, "github__push", env=env)
    assert (denied.exit_code, denied.stdout) == (
        EXIT_FAILED,
        "denied: no role allows tool 'github__push' (roles: dev)\n",
    )


def test_check_follows_server_rules_disabled_users_and_json(
    env: dict[str, str], tmp_path: Path
) -> None:
    add(
        env,
        tmp_path,
        "dev",
        [
            {"effect": "allow", "match": ["*"]},
            {"effect": "deny", "kinds": ["server"], "match": ["prod"]},
        ],
    )
    ok("users", "add", "ada", "--role", "dev", env=env)
    on_prod = run("roles", "check", "ada", "tool", "prod__drop", "--server", "prod", env=env)
    assert (on_prod.exit_code, on_prod.stdout) == (
        EXIT_FAILED,
        "denied: role 'dev' denies server 'prod' (rule 2)\n",
    )
    report = json.loads(ok("roles", "check", "ada", "prompt", "hello", "--json", env=env).stdout)
    assert report == {
        "user": "ada",
        "roles": ["dev"],
        "kind": "prompt",
        "name": "hello",
        "server": None,
        "allowed": True,
        "reason": "role 'dev' allows prompt 'hello' (rule 1)",
        "role": "dev",
        "rule": 1,
        "undefined_roles": [],
    }
    ok("users", "disable", "ada", env=env)
    disabled = run("roles", "check", "ada", "prompt", "hello", "--json", env=env)
    assert disabled.exit_code == EXIT_FAILED
    assert json.loads(disabled.stdout)["reason"] == (
        "user 'ada' is disabled (roles aside: role 'dev' allows prompt 'hello' (rule 1))"
    )
    unknown = run("roles", "check", "bob", "tool", "x", env=env)
    assert (unknown.exit_code, unknown.stderr) == (EXIT_FAILED, "error: no user named 'bob'\n")
    assert run("roles", "check", "ada", "widget", "x", env=env).exit_code == EXIT_USAGE
    no_roles = ok("users", "add", "bob", env=env)
    assert no_roles.exit_code == EXIT_OK
    assert run("roles", "check", "bob", "tool", "x", env=env).stdout == (
        "denied: no role allows tool 'x' (no roles)\n"
    )
