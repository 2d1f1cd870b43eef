"""``catalyst db upgrade|current|pending`` on a SQLite file named by CATALYST_DATABASE_URL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from catalyst_mcp.cli.common import EXIT_CONFIG, EXIT_CONNECT, EXIT_FAILED
from catalyst_mcp.storage.migrate import revisions
from tests.cli.helpers import run

FIRST = "0001_identities"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"CATALYST_DATABASE_URL": f"sqlite:///{tmp_path / 'state' / 'catalyst.db'}"}


def test_pending_upgrade_current(env: dict[str, str]) -> None:
    result = run("db", "current", env=env)
    assert (result.exit_code, result.stdout) == (0, "(none)\n")
    result = run("db", "pending", env=env)
    assert result.exit_code == 0
    assert result.stdout.split() == revisions()

    result = run("db", "upgrade", env=env)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"applied {name}" for name in revisions()]

    result = run("db", "upgrade", env=env)
    assert (result.exit_code, result.stdout) == (0, "already current\n")
    assert run("db", "current", env=env).stdout == f"{revisions()[-1]}\n"
    assert run("db", "pending", env=env).stdout == "(none): the database is current\n"


def test_json_output(env: dict[str, str]) -> None:
    assert json.loads(run("db", "pending", "--json", env=env).stdout) == {"pending": revisions()}
    assert json.loads(run("db", "upgrade", FIRST, "--json", env=env).stdout) == {"applied": [FIRST]}
    assert json.loads(run("db", "current", "--json", env=env).stdout) == {"current": FIRST}
    assert json.loads(run("db", "upgrade", "--json", env=env).stdout) == {
        "applied": revisions()[1:]
    }


def test_the_config_files_storage_url_wins(tmp_path: Path, env: dict[str, str]) -> None:
    db_file = tmp_path / "from-config.db"
    config = tmp_path / "catalyst.yaml"
    config.write_text(f"storage:\n  url: sqlite+aiosqlite:///{db_file}\n", encoding="utf-8")
    result = run("db", "upgrade", "--config", str(config), env=env)
    assert result.exit_code == 0, result.output
    assert db_file.exists()
    assert not (tmp_path / "state").exists()


def test_an_unreachable_database_is_exit_4_without_the_password() -> None:
    env = {"CATALYST_DATABASE_URL": "postgresql://postgres:hunter2-secret@127.0.0.1:9/test"}
    result = run("db", "upgrade", env=env)
    assert result.exit_code == EXIT_CONNECT
    assert result.stderr == (
        "error: cannot connect to the PostgreSQL database test on 127.0.0.1:9: connection refused\n"
    )
    assert "hunter2" not in result.output


def test_an_unknown_revision_fails_with_exit_1(env: dict[str, str]) -> None:
    result = run("db", "upgrade", "nope", env=env)
    assert result.exit_code == EXIT_FAILED
    assert result.stderr.startswith("error: cannot upgrade the database to 'nope'")


def test_an_unsupported_url_fails_clearly() -> None:
    result = run("db", "current", env={"CATALYST_DATABASE_URL": "mysql://root:pw@db/x"})
    assert result.exit_code == EXIT_FAILED
    assert result.stderr == "error: database 'mysql' is not supported: use sqlite or postgresql\n"


def test_an_invalid_config_is_exit_3(tmp_path: Path) -> None:
    config = tmp_path / "catalyst.yaml"
    config.write_text("storage:\n  nonsense: 1\n", encoding="utf-8")
    assert run("db", "current", "--config", str(config)).exit_code == EXIT_CONFIG
