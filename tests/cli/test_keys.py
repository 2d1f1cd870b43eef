"""``catalyst keys create|list|revoke``: a key is shown once, stored as a hash, audited by
prefix."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from catalyst_mcp.cli.common import EXIT_FAILED, EXIT_USAGE
from catalyst_mcp.security import apikeys
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.keys import KeyCredential, KeyRepo
from tests.cli.admin_helpers import ACTOR, admin_env, audit_trail, ok
from tests.cli.helpers import run


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    env = admin_env(tmp_path)
    ok("users", "add", "ada", env=env)
    return env


def stored(env: dict[str, str], prefix: str) -> KeyCredential | None:
    async def find() -> KeyCredential | None:
        db = Database(env["CATALYST_DATABASE_URL"])
        try:
            return await KeyRepo(db).find(prefix)
        finally:
            await db.close()

    return asyncio.run(find())


def test_create_prints_the_key_once(env: dict[str, str], caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    result = ok("keys", "create", "ada", "--name", "laptop", env=env)
    lines = result.stdout.splitlines()
    token = lines[2].strip()
    parsed = apikeys.parse(token)
    assert parsed is not None
    prefix = parsed[0]
    assert lines[0] == f"created key {prefix} ('laptop') for 'ada'; never expires"
    assert lines[4].startswith("store it now: it cannot be shown again")
    credential = stored(env, prefix)
    assert credential is not None
    assert apikeys.verify(token, credential.key_hash)
    for command in (["keys", "list"], ["keys", "list", "--json"], ["users", "show", "ada"]):
        output = ok(*command, env=env).output
        assert prefix in output
        assert token not in output
        assert credential.key_hash not in output
    record = audit_trail(env)[-1]
    assert (record["action"], record["target"], record["actor"]) == (
        "admin.keys.create",
        prefix,
        ACTOR,
    )
    assert record["detail"] == {"user": "ada", "name": "laptop", "scopes": None, "expires_at": None}
    assert token not in json.dumps(audit_trail(env))
    assert token not in caplog.text


def test_create_json(env: dict[str, str]) -> None:
    created = json.loads(
        ok(
            "keys", "create", "ada", "--scope", "tool:crm__*", "--scope", "mcp",
            "--expires", "30d", "--json", env=env,
        ).stdout
    )  # fmt: skip
    assert apikeys.parse(created["token"]) == (created["prefix"], created["token"])
    assert created["note"] == "store it now: it cannot be shown again"
    assert (created["user"], created["name"], created["scopes"]) == (
        "ada",
        "default",
        ["mcp", "tool:crm__*"],
    )
    expires = datetime.fromisoformat(created["expires_at"])
    assert abs(expires - (datetime.now(UTC) + timedelta(days=30))) < timedelta(minutes=1)
    assert created["revoked_at"] is None


def test_list(env: dict[str, str]) -> None:
    ok("users", "add", "bob", env=env)
    ok("keys", "create", "bob", "--name", "ci", "--expires", "2999-01-01", env=env)
    ok("keys", "create", "ada", "--scope", "server:crm", env=env)
    lines = ok("keys", "list", env=env).stdout.splitlines()
    assert lines[0].split() == [
        "PREFIX", "NAME", "USER", "SCOPES", "CREATED", "EXPIRES", "LAST_USED", "REVOKED",
    ]  # fmt: skip
    assert [line.split()[1:4] for line in lines[1:]] == [
        ["default", "ada", "server:crm"],
        ["ci", "bob", "(all)"],
    ]
    assert "2999-01-01 00:00" in lines[2]
    listed = json.loads(ok("keys", "list", "--user", "bob", "--json", env=env).stdout)
    assert [(k["user"], k["expires_at"]) for k in listed] == [("bob", "2999-01-01T00:00:00+00:00")]
    assert set(listed[0]) == {
        "prefix", "name", "user", "scopes", "created_at", "expires_at", "last_used_at",
        "revoked_at",
    }  # fmt: skip
    assert ok("keys", "list", "--user", "ada", env=env).stdout.count("\n") == 2


def test_revoke(env: dict[str, str]) -> None:
    prefix = json.loads(ok("keys", "create", "ada", "--json", env=env).stdout)["prefix"]
    assert ok("keys", "revoke", prefix, env=env).stdout == (
        f"revoked key {prefix} ('default') of 'ada'\n"
    )
    credential = stored(env, prefix)
    assert credential is not None and credential.revoked_at is not None
    again = ok("keys", "revoke", f"cat_{prefix}", env=env).stdout
    assert again.startswith(f"key {prefix} of 'ada' was already revoked (")
    listed = json.loads(ok("keys", "list", "--json", env=env).stdout)
    assert listed[0]["revoked_at"] is not None
    revokes = [r for r in audit_trail(env) if r["action"] == "admin.keys.revoke"]
    assert [(r["target"], r["detail"]["already_revoked"]) for r in revokes] == [
        (prefix, False),
        (prefix, True),
    ]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["keys", "create", "bob"], EXIT_FAILED, "no user named 'bob'"),
        (["keys", "list", "--user", "bob"], EXIT_FAILED, "no user named 'bob'"),
        (["keys", "revoke", "abcdefgh"], EXIT_FAILED, "no key with prefix 'abcdefgh'"),
        (["keys", "create", "ada", "--expires", "2001-01-01"], EXIT_USAGE, "is in the past"),
        (["keys", "create", "ada", "--expires", "soon"], EXIT_USAGE, "neither an age"),
        (["keys", "create", "ada", "--scope", "tools"], EXIT_USAGE, "is not a scope"),
        (["keys", "create", "ada", "--scope", "tool:"], EXIT_USAGE, "is not a scope"),
    ],
    ids=[
        "unknown-user",
        "list-unknown-user",
        "unknown-prefix",
        "past",
        "bad-time",
        "scope",
        "glob",
    ],
)
def test_errors(env: dict[str, str], args: list[str], code: int, message: str) -> None:
    result = run(*args, env=env)
    assert result.exit_code == code
    assert message in result.stderr
    assert "cat_" not in result.output


def test_a_failed_create_is_audited(env: dict[str, str]) -> None:
    run("keys", "create", "bob", env=env)
    record = audit_trail(env)[-1]
    assert (record["action"], record["outcome"]) == ("admin.keys.create", "error")
    assert record["detail"]["user"] == "bob"
    assert record["detail"]["reason"] == "no user named 'bob'"
