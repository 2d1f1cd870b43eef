"""``catalyst users add|list|show|set-roles|disable|enable|remove``, each change audited."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalyst_mcp.cli.common import EXIT_CONNECT, EXIT_FAILED, EXIT_OK
from tests.cli.admin_helpers import ACTOR, actions, add_role, admin_env, audit_trail, ok
from tests.cli.helpers import run
from tests.conftest import free_port


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = admin_env(tmp_path)
    add_role(env, tmp_path, "dev", "crm__*")
    add_role(env, tmp_path, "ops")
    return env


def test_add_list_show(env: dict[str, str]) -> None:
    result = ok(
        "users", "add", "ada", "--display-name", "Ada L", "--email", "ada@example.org",
        "--role", "dev", "--role", "ops", env=env,
    )  # fmt: skip
    assert result.stdout == "created user 'ada' with roles dev, ops\n"
    assert ok("users", "add", "ci-bot", "--service", env=env).stdout == (
        "created service 'ci-bot' without roles\n"
    )
    lines = ok("users", "list", env=env).stdout.splitlines()
    assert lines[0].split() == [
        "NAME", "KIND", "ROLES", "STATUS", "DISPLAY_NAME", "EMAIL", "CREATED",
    ]  # fmt: skip
    assert lines[1].split()[:6] == ["ada", "user", "dev,ops", "enabled", "Ada", "L"]
    assert lines[2].split()[:5] == ["ci-bot", "service", "-", "enabled", "-"]
    listed = json.loads(ok("users", "list", "--json", env=env).stdout)
    assert [(u["name"], u["kind"], u["roles"]) for u in listed] == [
        ("ada", "user", ["dev", "ops"]),
        ("ci-bot", "service", []),
    ]
    shown = json.loads(ok("users", "show", "ada", "--json", env=env).stdout)
    assert shown["email"] == "ada@example.org"
    assert (shown["disabled"], shown["keys"], shown["secrets"]) == (False, [], [])
    text = ok("users", "show", "ada", env=env).stdout
    assert "display name: Ada L\n" in text
    assert "roles:        dev, ops\n" in text


def test_show_lists_keys_and_owned_secrets(env: dict[str, str]) -> None:
    ok("users", "add", "ada", env=env)
    prefix = json.loads(ok("keys", "create", "ada", "--name", "laptop", "--json", env=env).stdout)[
        "prefix"
    ]
    ok("secrets", "set", "token", "--user", "ada", "--value-from-stdin", input="v", env=env)
    shown = json.loads(ok("users", "show", "ada", "--json", env=env).stdout)
    assert shown["keys"] == [{"prefix": prefix, "name": "laptop", "revoked": False}]
    assert shown["secrets"] == [{"scope": "*", "name": "token"}]
    text = ok("users", "show", "ada", env=env).stdout
    assert f"keys:         {prefix} (laptop)\n" in text
    assert "secrets:      token (scope *)\n" in text


def test_set_roles_disable_enable(env: dict[str, str]) -> None:
    ok("users", "add", "ada", "--role", "dev", env=env)
    assert ok("users", "set-roles", "ada", "ops", "dev", env=env).stdout == (
        "'ada' now has roles: dev, ops\n"
    )
    assert ok("users", "set-roles", "ada", env=env).stdout == "'ada' now has roles: (none)\n"
    assert ok("users", "disable", "ada", env=env).stdout == "'ada' is disabled\n"
    assert json.loads(ok("users", "show", "ada", "--json", env=env).stdout)["disabled"] is True
    assert ok("users", "enable", "ada", env=env).stdout == "'ada' is enabled\n"
    records = audit_trail(env)[2:]  # after the two roles
    assert [(r["action"], r["target"], r["outcome"]) for r in records] == [
        ("admin.users.create", "ada", "ok"),
        ("admin.users.set_roles", "ada", "ok"),
        ("admin.users.set_roles", "ada", "ok"),
        ("admin.users.disable", "ada", "ok"),
        ("admin.users.enable", "ada", "ok"),
    ]
    assert records[1]["detail"] == {"roles": ["dev", "ops"], "previous": ["dev"]}
    assert {(r["actor"], r["actor_kind"]) for r in records} == {(ACTOR, "admin")}


def test_remove_asks_first(env: dict[str, str]) -> None:
    ok("users", "add", "ada", env=env)
    ok("keys", "create", "ada", env=env)
    refused = run("users", "remove", "ada", input="n\n", env=env)
    assert refused.exit_code == EXIT_FAILED
    assert "delete user 'ada' with 1 API key(s) and 0 secret(s)?" in refused.stderr
    assert json.loads(ok("users", "list", "--json", env=env).stdout)[0]["name"] == "ada"
    assert ok("users", "remove", "ada", input="y\n", env=env).stdout.endswith(
        "removed user 'ada'\n"
    )
    ok("users", "add", "bob", env=env)
    assert ok("users", "remove", "bob", "--yes", env=env).stdout == "removed user 'bob'\n"
    assert json.loads(ok("users", "list", "--json", env=env).stdout) == []
    assert json.loads(ok("keys", "list", "--json", env=env).stdout) == []
    deleted = [r for r in audit_trail(env) if r["action"] == "admin.users.delete"]
    assert [(r["target"], r["detail"]) for r in deleted] == [
        ("ada", {"keys": 1, "secrets": 0}),
        ("bob", {"keys": 0, "secrets": 0}),
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["users", "add", "ada"], "error: a user named 'ada' already exists"),
        (["users", "add", "bob", "--role", "nope"], "error: no role named 'nope'"),
        (["users", "set-roles", "ada", "nope"], "error: no role named 'nope'"),
        (["users", "show", "bob"], "error: no user named 'bob'"),
        (["users", "disable", "bob"], "error: no user named 'bob'"),
        (["users", "remove", "bob", "--yes"], "error: no user named 'bob'"),
        (["users", "add", ""], "error: a user name must be 1 to 128 characters"),
    ],
    ids=["taken", "unknown-role", "set-unknown-role", "show", "disable", "remove", "empty"],
)
def test_errors_exit_1_with_one_line(env: dict[str, str], args: list[str], message: str) -> None:
    ok("users", "add", "ada", env=env)
    result = run(*args, env=env)
    assert result.exit_code == EXIT_FAILED
    assert result.stderr == message + "\n"
    assert "Traceback" not in result.output


def test_failed_changes_are_audited_with_the_reason(env: dict[str, str]) -> None:
    ok("users", "add", "ada", env=env)
    run("users", "add", "ada", env=env)
    run("users", "set-roles", "ada", "nope", env=env)
    assert actions(env)[-3:] == [
        ("admin.users.create", "ada", "ok"),
        ("admin.users.create", "ada", "error"),
        ("admin.users.set_roles", "ada", "error"),
    ]
    last = audit_trail(env)[-1]
    assert last["detail"]["reason"] == "no role named 'nope'"


def test_auditing_off_records_nothing(env: dict[str, str], tmp_path: Path) -> None:
    config = tmp_path / "catalyst.yaml"
    config.write_text("audit:\n  enabled: false\n", encoding="utf-8")
    before = len(audit_trail(env))
    ok("users", "add", "ada", "--config", str(config), env=env)
    assert len(audit_trail(env)) == before


def test_unreachable_database_exits_4(tmp_path: Path) -> None:
    env = {"CATALYST_DATABASE_URL": f"postgresql://u:pw-123@127.0.0.1:{free_port()}/x"}
    result = run("users", "list", env=env)
    assert result.exit_code == EXIT_CONNECT
    assert "connection refused" in result.stderr
    assert "pw-123" not in result.output


def test_without_auto_upgrade_a_fresh_database_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "catalyst.yaml"
    config.write_text(
        f"storage:\n  url: sqlite:///{tmp_path / 'x.db'}\n  auto_upgrade: false\n",
        encoding="utf-8",
    )
    result = run("users", "list", "--config", str(config))
    assert result.exit_code == EXIT_FAILED
    assert "run `catalyst db upgrade` first" in result.stderr
    assert run("db", "upgrade", "--config", str(config)).exit_code == EXIT_OK
    assert run("users", "list", "--config", str(config)).stdout == "(none)\n"
