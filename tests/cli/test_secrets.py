"""``catalyst secrets set|list|remove|generate-key|rotate-key``, and the canary: a secret value
never shows in any command's output, the audit trail or the logs."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path

import click
import pytest

from catalyst_mcp.cli.common import EXIT_CONFIG, EXIT_FAILED, EXIT_USAGE
from catalyst_mcp.cli.main import cli
from catalyst_mcp.security.secretstore import SecretStore
from catalyst_mcp.security.vault import ENV_ACTIVE, ENV_PREVIOUS, generate_key, parse_key
from catalyst_mcp.storage.db import Database
from tests.cli.admin_helpers import ACTOR, actions, add_role, admin_env, audit_trail, ok
from tests.cli.helpers import run


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = admin_env(tmp_path)
    ok("users", "add", "ada", env=env)
    return env


def resolve(env: dict[str, str], owner: str, scope: str, name: str) -> str | None:
    """What a gateway with these keys would resolve."""

    async def main() -> str | None:
        db = Database(env["CATALYST_DATABASE_URL"])
        try:
            return await SecretStore.from_environ(db, env).resolve(owner, scope, name)
        finally:
            await db.close()

    return asyncio.run(main())


def set_secret(env: dict[str, str], value: str, *args: str) -> str:
    return ok("secrets", "set", *args, "--value-from-stdin", input=value, env=env).stdout


def test_set_from_stdin_list_remove(env: dict[str, str]) -> None:
    key_id = env[ENV_ACTIVE].partition(":")[0]
    assert set_secret(env, "s3cret\n", "token", "--user", "ada", "--server", "github") == (
        f"stored secret 'token' (of 'ada', for server 'github'), sealed with key {key_id}\n"
    )
    assert set_secret(env, "shared-value\r\n", "token", "--shared") == (
        f"stored secret 'token' (shared, for any server), sealed with key {key_id}\n"
    )
    assert resolve(env, "ada", "github", "token") == "s3cret"
    assert resolve(env, "bob", "github", "token") == "shared-value"
    lines = ok("secrets", "list", env=env).stdout.splitlines()
    assert lines[0].split() == ["OWNER", "SCOPE", "NAME", "KEY_ID", "CREATED", "UPDATED"]
    assert [line.split()[:4] for line in lines[1:]] == [
        ["*", "*", "token", key_id],
        ["ada", "github", "token", key_id],
    ]
    listed = json.loads(ok("secrets", "list", "--user", "ada", "--json", env=env).stdout)
    assert [(s["owner"], s["scope"], s["name"]) for s in listed] == [("ada", "github", "token")]
    assert set(listed[0]) == {"owner", "scope", "name", "key_id", "created_at", "updated_at"}
    shared = json.loads(ok("secrets", "list", "--shared", "--json", env=env).stdout)
    assert [s["owner"] for s in shared] == ["*"]
    by_server = json.loads(ok("secrets", "list", "--server", "github", "--json", env=env).stdout)
    assert [s["owner"] for s in by_server] == ["ada"]
    assert ok("secrets", "remove", "token", "--shared", env=env).stdout == (
        "removed secret 'token' (owner '*', scope '*')\n"
    )
    assert resolve(env, "bob", "github", "token") is None
    missing = run("secrets", "remove", "token", "--user", "ada", env=env)
    assert (missing.exit_code, missing.stderr) == (
        EXIT_FAILED,
        "error: no secret 'token' for owner 'ada' and scope '*'\n",
    )
    records = audit_trail(env)[1:]
    assert [(r["action"], r["target"], r["outcome"]) for r in records] == [
        ("admin.secrets.set", "token", "ok"),
        ("admin.secrets.set", "token", "ok"),
        ("admin.secrets.delete", "token", "ok"),
        ("admin.secrets.delete", "token", "error"),
    ]
    assert records[0]["detail"] == {
        "owner": "ada",
        "scope": "github",
        "key_id": key_id,
        "replaced": False,
    }
    assert {r["actor"] for r in records} == {ACTOR}


def test_set_again_replaces(env: dict[str, str]) -> None:
    set_secret(env, "one", "token", "--shared")
    set_secret(env, "two", "token", "--shared")
    assert resolve(env, "ada", "x", "token") == "two"
    assert audit_trail(env)[-1]["detail"]["replaced"] is True


def test_set_prompts_hidden_twice(env: dict[str, str]) -> None:
    result = ok("secrets", "set", "token", "--user", "ada", input="p4ss\np4ss\n", env=env)
    assert "p4ss" not in result.output
    assert resolve(env, "ada", "any", "token") == "p4ss"
    mismatch = run("secrets", "set", "other", "--shared", input="abc\nabd\n", env=env)
    assert mismatch.exit_code == EXIT_FAILED  # asked again, then stdin ends: aborted
    assert "do not match" in mismatch.stderr
    assert "abc" not in mismatch.output
    assert resolve(env, "ada", "any", "other") is None


def test_the_value_is_never_an_argument() -> None:
    group = cli.commands["secrets"]
    assert isinstance(group, click.Group)
    command = group.commands["set"]
    assert [p.name for p in command.params if isinstance(p, click.Argument)] == ["name"]
    assert not any("value" in p.name for p in command.params if p.name != "value_from_stdin")
    result = run("secrets", "set", "token", "hunter2", "--shared")
    assert result.exit_code == EXIT_USAGE
    assert "unexpected extra argument" in result.stderr.lower()


@pytest.mark.parametrize(
    ("args", "stdin", "code", "message"),
    [
        (["token"], "v", EXIT_USAGE, "give --user USER (that user's secret) or --shared"),
        (["token", "--user", "ada", "--shared"], "v", EXIT_USAGE, "not both"),
        (["bad name", "--shared"], "v", EXIT_USAGE, "must be 1-128 letters, digits"),
        (["token", "--shared"], "\n", EXIT_USAGE, "the value is empty"),
        (["token", "--user", "bob"], "v", EXIT_FAILED, "no user named 'bob'"),
    ],
    ids=["no-owner", "two-owners", "bad-name", "empty", "unknown-user"],
)
def test_set_errors(
    env: dict[str, str], args: list[str], stdin: str, code: int, message: str
) -> None:
    result = run("secrets", "set", *args, "--value-from-stdin", input=stdin, env=env)
    assert result.exit_code == code
    assert message in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        ["set", "token", "--shared", "--value-from-stdin"],
        ["list"],
        ["remove", "token", "--shared"],
        ["rotate-key"],
    ],
    ids=lambda a: a[0],
)
def test_without_a_key_exit_3(env: dict[str, str], args: list[str]) -> None:
    result = run("secrets", *args, input="v", env={**env, ENV_ACTIVE: ""})
    assert result.exit_code == EXIT_CONFIG
    assert "CATALYST_SECRET_KEY is not set: generate one with `catalyst secrets generate-key`" in (
        result.stderr
    )
    bad = run("secrets", *args, input="v", env={**env, ENV_ACTIVE: "abc:not-base64!"})
    assert bad.exit_code == EXIT_CONFIG
    assert "not-base64" not in bad.stderr


def test_generate_key() -> None:
    first, second = run("secrets", "generate-key"), run("secrets", "generate-key")
    assert first.exit_code == 0
    key = first.stdout.strip()
    assert parse_key(key).key_id == key.partition(":")[0]
    assert key != second.stdout.strip()
    assert "CATALYST_SECRET_KEY" in first.stderr and key not in first.stderr


def test_rotate_key(env: dict[str, str]) -> None:
    for i in range(3):
        set_secret(env, f"value-{i}", f"s{i}", "--shared")
    old = env[ENV_ACTIVE]
    new = generate_key()
    rotating = {**env, ENV_ACTIVE: new, ENV_PREVIOUS: old}
    set_secret(rotating, "fresh", "s3", "--shared")
    result = ok("secrets", "rotate-key", env=rotating)
    new_id = new.partition(":")[0]
    assert result.stdout == f"key {new_id}: 3 resealed, 1 already current, 0 failed\n"
    assert result.stderr == "checked 4/4\n"
    only_new = {**env, ENV_ACTIVE: new}
    assert [resolve(only_new, "ada", "x", f"s{i}") for i in range(3)] == [
        "value-0",
        "value-1",
        "value-2",
    ]
    report = json.loads(ok("secrets", "rotate-key", "--json", env=only_new).stdout)
    assert report == {
        "key_id": new_id,
        "ok": True,
        "resealed": 0,
        "already_current": 4,
        "failed": [],
    }
    record = audit_trail(env)[-1]
    assert (record["action"], record["target"], record["outcome"]) == (
        "admin.secrets.rotate",
        new_id,
        "ok",
    )


def test_rotate_key_reports_failures_and_exits_1(env: dict[str, str]) -> None:
    set_secret(env, "readable", "good", "--shared")
    set_secret({**env, ENV_ACTIVE: generate_key()}, "lost", "orphan", "--user", "ada")
    result = run(
        "secrets",
        "rotate-key",
        env={**env, ENV_ACTIVE: generate_key(), ENV_PREVIOUS: env[ENV_ACTIVE]},
    )
    assert result.exit_code == EXIT_FAILED
    assert ": 1 resealed, 0 already current, 1 failed" in result.stdout
    assert "cannot reseal 'orphan' (owner 'ada', scope '*'): secret 'orphan' was sealed with" in (
        result.stderr
    )
    record = audit_trail(env)[-1]
    assert (record["action"], record["outcome"]) == ("admin.secrets.rotate", "error")
    assert record["detail"]["failed"][0]["name"] == "orphan"
    assert "lost" not in json.dumps(record) and "readable" not in json.dumps(record)


# ---- the canary -------------------------------------------------------------------------------

CANARY_COMMANDS: dict[str, list[list[str]]] = {
    "users": [
        ["add", "carol", "--role", "dev", "--email", "c@example.org"],
        ["list"],
        ["show", "ada"],
        ["set-roles", "carol", "dev"],
        ["disable", "carol"],
        ["enable", "carol"],
        ["remove", "carol", "--yes"],
    ],
    "keys": [["create", "ada", "--name", "ci"], ["list"], ["revoke", "{prefix}"]],
    "roles": [
        ["add", "ops", "--rules", "{rules}"],
        ["list"],
        ["show", "dev"],
        ["check", "ada", "tool", "crm__find"],
        ["remove", "ops", "--force"],
    ],
    "secrets": [
        ["set", "canary", "--user", "ada", "--value-from-stdin"],
        ["set", "canary", "--user", "nobody", "--value-from-stdin"],
        ["list"],
        ["remove", "other", "--shared"],
        ["generate-key"],
        ["rotate-key"],
    ],
    "audit": [["verify"], ["search"], ["export"], ["export", "-o", "{export}"]],
}


def _has_json(group: str, sub: str) -> bool:
    command = cli.commands[group]
    assert isinstance(command, click.Group)
    return any("--json" in getattr(p, "opts", ()) for p in command.commands[sub].params)


def test_canary_commands_cover_every_command() -> None:
    for group, runs in CANARY_COMMANDS.items():
        command = cli.commands[group]
        assert isinstance(command, click.Group)
        assert {args[0] for args in runs} == set(command.commands), group


def test_the_canary_never_shows(
    env: dict[str, str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    canary = f"CANARY-{uuid.uuid4().hex}"
    add_role(env, tmp_path, "dev", "crm__*")
    ok("users", "set-roles", "ada", "dev", env=env)
    set_secret(env, canary, "canary", "--shared", "--server", "crm")
    ok("secrets", "set", "other", "--shared", input=f"{canary}\n{canary}\n", env=env)
    rules_file = tmp_path / "ops.yaml"
    rules_file.write_text("- {effect: allow, match: ['*']}\n", encoding="utf-8")
    outputs: list[str] = []
    exported = tmp_path / "export.jsonl"
    prefix = ""
    rotating = {**env, ENV_ACTIVE: generate_key(), ENV_PREVIOUS: env[ENV_ACTIVE]}
    for group, runs in CANARY_COMMANDS.items():
        for args in runs:
            sub = args[0]
            for as_json in (False, True) if _has_json(group, sub) else (False,):
                filled = [a.format(prefix=prefix, rules=rules_file, export=exported) for a in args]
                extra = ["--json"] if as_json else []
                use = rotating if sub == "rotate-key" else env
                result = run(group, *filled, *extra, input=canary, env=use)
                outputs += [result.stdout, result.stderr]
                expected = EXIT_FAILED if "nobody" in args else 0
                assert result.exit_code == expected, (group, filled, extra, result.stderr)
                if group == "keys" and sub == "create" and as_json:
                    prefix = json.loads(result.stdout)["prefix"]
                elif group == "keys" and sub == "create":
                    prefix = result.stdout.split()[2]
    assert exported.exists() and exported.read_text(encoding="utf-8")
    assert resolve({**env, ENV_ACTIVE: rotating[ENV_ACTIVE]}, "ada", "crm", "canary") == canary
    checked = "\n".join(outputs)
    assert "admin.secrets.set" in checked  # the audit commands did show the records
    assert canary not in checked
    assert canary not in exported.read_text(encoding="utf-8")
    assert canary not in json.dumps(audit_trail(env))
    assert canary not in caplog.text
    database = Path(env["CATALYST_DATABASE_URL"].removeprefix("sqlite:///"))
    for file in database.parent.iterdir():  # the database, its WAL: sealed only
        assert canary.encode() not in file.read_bytes()
    assert ("admin.secrets.set", "canary", "error") in actions(env)  # the unknown user
