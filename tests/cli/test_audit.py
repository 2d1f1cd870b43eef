"""``catalyst audit verify|search|export`` on a SQLite database named by the config file."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from catalyst_mcp.cli.common import EXIT_CONNECT, EXIT_FAILED, EXIT_OK, EXIT_USAGE
from catalyst_mcp.observability.audit import AuditEvent, AuditLog
from catalyst_mcp.storage.db import Database
from catalyst_mcp.storage.migrate import upgrade
from tests.cli.helpers import run
from tests.conftest import free_port

EVENTS = [
    AuditEvent("alice", "user", "tools/call", "github__create_issue", "ok", 12.5, {"n": 1}),
    AuditEvent("bob", "user", "tools/call", "github__delete_repo", "denied", 0.4, {"n": 2}),
    AuditEvent("alice", "user", "resources/read", "file:///notes.md", "ok", 3.0, {"n": 3}),
    AuditEvent("root", "user", "admin.users.create", "carol", "ok", None, {"n": 4}),
]


async def _populate(path: Path) -> None:
    db = Database(f"sqlite:///{path}")
    try:
        await upgrade(db)
        async with AuditLog(db) as log:
            for event in EVENTS:
                log.record(event)
    finally:
        await db.close()


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "audit.db"
    asyncio.run(_populate(path))
    return path


@pytest.fixture
def config(tmp_path: Path, database: Path) -> str:
    path = tmp_path / "catalyst.yaml"
    path.write_text(f"storage:\n  url: sqlite:///{database}\n", encoding="utf-8")
    return str(path)


def test_verify_ok(config: str) -> None:
    result = run("audit", "verify", "--config", config)
    assert result.exit_code == EXIT_OK, result.stderr
    assert result.stdout.startswith("ok: 4 records, chain intact; head hash ")


def test_verify_names_the_tampered_record_and_exits_1(config: str, database: Path) -> None:
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE audit_records SET outcome = 'ok' WHERE seq = 2")
    conn.close()
    result = run("audit", "verify", "--config", config)
    assert result.exit_code == EXIT_FAILED
    assert "broken at record 2: contents do not match its hash" in result.stderr
    assert "1 records before it are intact" in result.stderr
    as_json = run("audit", "verify", "--json", "--config", config)
    assert as_json.exit_code == EXIT_FAILED
    report = json.loads(as_json.stdout)
    assert (report["ok"], report["first_bad_seq"], report["records"]) == (False, 2, 1)


def test_verify_a_fresh_database_migrates_it(tmp_path: Path) -> None:
    path = tmp_path / "catalyst.yaml"
    path.write_text(f"storage:\n  url: sqlite:///{tmp_path / 'new.db'}\n", encoding="utf-8")
    result = run("audit", "verify", "--config", str(path))
    assert result.exit_code == EXIT_OK, result.stderr
    assert result.stdout.startswith("ok: 0 records")


def test_an_unreachable_database_exits_4(tmp_path: Path) -> None:
    path = tmp_path / "catalyst.yaml"
    url = f"postgresql://nobody:pw@127.0.0.1:{free_port()}/nothing"
    path.write_text(f"storage:\n  url: {url}\n", encoding="utf-8")
    result = run("audit", "search", "--config", str(path))
    assert result.exit_code == EXIT_CONNECT
    assert "connection refused" in result.stderr
    assert "pw" not in result.stderr


def test_search_table(config: str) -> None:
    result = run("audit", "search", "--actor", "alice", "--config", config)
    assert result.exit_code == EXIT_OK, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["SEQ", "AT", "ACTOR", "ACTION", "TARGET", "OUTCOME", "LATENCY_MS"]
    assert [line.split()[0] for line in lines[1:]] == ["1", "3"]
    assert "github__create_issue" in lines[1]


SEARCHES = [
    ([], [1, 2, 3, 4]),
    (["--outcome", "denied"], [2]),
    (["--action", "admin.users.create"], [4]),
    (["--target", "github__*"], [1, 2]),
    (["--limit", "2", "--after", "1"], [2, 3]),
    (["--newest", "--limit", "2"], [4, 3]),
    (["--since", "1h"], [1, 2, 3, 4]),
    (["--until", "2000-01-01"], []),
    (["--since", "2000-01-01T00:00:00Z", "--actor", "bob"], [2]),
]


@pytest.mark.parametrize(("args", "seqs"), SEARCHES, ids=[" ".join(a) or "-" for a, _ in SEARCHES])
def test_search_json(config: str, args: list[str], seqs: list[int]) -> None:
    result = run("audit", "search", "--json", *args, "--config", config)
    assert result.exit_code == EXIT_OK, result.stderr
    assert [row["seq"] for row in json.loads(result.stdout)] == seqs


def test_search_nothing_found(config: str) -> None:
    result = run("audit", "search", "--actor", "nobody", "--config", config)
    assert result.stdout == "(none)\n"


def test_a_bad_time_is_a_usage_error(config: str) -> None:
    result = run("audit", "search", "--since", "yesterday", "--config", config)
    assert result.exit_code == EXIT_USAGE
    assert "is not a time" in result.stderr


def test_export_json_lines_to_stdout(config: str) -> None:
    result = run("audit", "export", "--config", config)
    assert result.exit_code == EXIT_OK, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3, 4]
    assert lines[1]["prev_hash"] == lines[0]["hash"]
    assert "exported 4 records" in result.stderr


def test_export_filtered_to_a_file(config: str, tmp_path: Path) -> None:
    out = tmp_path / "audit.jsonl"
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    args = ["--since", since, "--until", until, "--actor", "alice", "--action", "tools/call"]
    result = run("audit", "export", "-o", str(out), *args, "--outcome", "ok", "--config", config)
    assert result.exit_code == EXIT_OK, result.stderr
    assert result.stdout == ""
    assert f"exported 1 records to {out}" in result.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["target"] for line in lines] == ["github__create_issue"]


def test_export_to_an_unwritable_file_exits_1(config: str, tmp_path: Path) -> None:
    result = run("audit", "export", "-o", str(tmp_path / "missing" / "x.jsonl"), "--config", config)
    assert result.exit_code == EXIT_FAILED
    assert "cannot write" in result.stderr
