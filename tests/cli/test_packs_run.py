"""``catalyst packs test``: PASS/FAIL lines, exit codes, and --record/--replay against a real
HTTP API on a loopback socket (the recording holds no secret; the replay needs no network)."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import yaml

from catalyst_mcp.cli.common import EXIT_CONFIG, EXIT_FAILED, EXIT_OK, EXIT_USAGE
from tests.cli.helpers import run
from tests.conftest import ROOT

PACKS = ROOT / "knowledge-packs"
CANARY = "canary-0c4f-SECRET"


def config(tmp_path: Path, packs: Path) -> Path:
    """A catalyst.yaml naming ``packs``, outside that folder (it is not a pack)."""
    path = tmp_path / "cfg" / "catalyst.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(f"packs:\n  path: {packs}\n", encoding="utf-8")
    return path


def write(folder: Path, name: str, data: dict[str, Any]) -> Path:
    file = folder / f"{name}.yaml"
    file.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return file


@pytest.fixture
def people(tmp_path: Path) -> Path:
    """A pack over a SQLite database, with one passing and one failing test."""
    db = tmp_path / "people.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(
            "CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT);"
            "INSERT INTO people VALUES (1, 'Ada'), (2, 'Grace');"
        )
    conn.close()
    return write(
        tmp_path,
        "people",
        {
            "pack": "people",
            "connections": {"db": {"type": "sql", "url": f"sqlite:///{db}"}},
            "tools": [
                {
                    "name": "find",
                    "description": "People by name.",
                    "parameters": {"name": {"type": "string", "required": True}},
                    "sql": {
                        "connection": "db",
                        "statement": "SELECT id, name FROM people WHERE name = :name",
                    },
                }
            ],
            "tests": [
                {
                    "name": "finds Ada",
                    "tool": "find",
                    "arguments": {"name": "Ada"},
                    "expect": {"structured": {"rows": [{"id": 1}]}},
                },
                {
                    "name": "expects the wrong person",
                    "tool": "find",
                    "arguments": {"name": "Grace"},
                    "expect": {"structured": {"rows": [{"name": "Ada", "id": 2}]}},
                },
            ],
        },
    )


def test_the_bundled_packs_pass(tmp_path: Path) -> None:
    result = run("packs", "test", "--config", str(config(tmp_path, PACKS)))
    assert result.exit_code == EXIT_OK, result.output
    assert result.stdout.splitlines()[-1].endswith(" 0 failed (1 pack(s))")


def test_pass_and_fail_lines(people: Path) -> None:
    result = run("packs", "test", str(people))
    assert result.exit_code == EXIT_FAILED
    lines = result.stdout.splitlines()
    assert lines[0].startswith("PASS people: finds Ada (")
    assert lines[1] == (
        'FAIL people: expects the wrong person: structured.rows[0].name: expected "Ada", '
        'got "Grace"'
    )
    assert lines[2:] == ["1 passed, 1 failed (1 pack(s))"]


def test_json(people: Path) -> None:
    result = run("packs", "test", str(people), "--json")
    assert result.exit_code == EXIT_FAILED
    data = json.loads(result.stdout)
    assert data["passed"] == 1
    assert data["failed"] == 1
    assert data["problems"] == []
    [pack] = data["packs"]
    assert pack["pack"] == "people"
    assert pack["error"] is None
    assert [(t["name"], t["passed"], t["reasons"]) for t in pack["tests"]] == [
        ("finds Ada", True, []),
        (
            "expects the wrong person",
            False,
            ['structured.rows[0].name: expected "Ada", got "Grace"'],
        ),
    ]


def test_a_folder_names_and_packs_without_tests(tmp_path: Path, people: Path) -> None:
    write(tmp_path, "empty", {"pack": "empty"})
    result = run("packs", "test", "empty", "--config", str(config(tmp_path, tmp_path)))
    assert result.exit_code == EXIT_OK
    assert result.stdout.splitlines() == [
        f"---- empty: no tests ({tmp_path / 'empty.yaml'})",
        "0 passed, 0 failed (1 pack(s))",
    ]
    result = run("packs", "test", str(tmp_path))
    assert result.exit_code == EXIT_FAILED
    assert result.stdout.splitlines()[-1] == "1 passed, 1 failed (2 pack(s))"


def test_an_invalid_pack_exits_3(tmp_path: Path, people: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("pack: broken\ntests: [{name: t, tool: nope}]\n")
    result = run("packs", "test", str(broken), str(people))
    assert result.exit_code == EXIT_CONFIG
    assert "broken.yaml:2:" in result.stderr
    assert "unknown tool 'nope'" in result.stderr
    assert result.stdout.splitlines()[-1] == (
        "1 passed, 1 failed (1 pack(s), 1 problem(s) in pack files)"
    )


def test_usage_errors(tmp_path: Path, people: Path) -> None:
    result = run("packs", "test", str(people), "--record", "--replay")
    assert result.exit_code == EXIT_USAGE
    assert "give --record or --replay, not both" in result.stderr
    result = run("packs", "test", "nope", "--config", str(config(tmp_path, tmp_path)))
    assert result.exit_code == EXIT_USAGE
    assert "unknown pack 'nope' (known: people)" in result.stderr


# ---- --record and --replay against a real API -----------------------------------------------


class Handler(BaseHTTPRequestHandler):
    """A tiny issue API that echoes the credentials it got (so a leak would be recorded)."""

    def do_GET(self) -> None:
        if self.path.startswith("/v1/issues/1"):
            self.reply(200, {"number": 1, "title": "Bug", "auth": self.headers["Authorization"]})
        else:
            self.reply(404, {"message": "no such issue"})

    def reply(self, status: int, data: dict[str, Any]) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Set-Cookie", f"session={CANARY}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def api() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def tracker_pack(folder: Path, port: int) -> Path:
    return write(
        folder,
        "tracker",
        {
            "pack": "tracker",
            "connections": {
                "api": {
                    "type": "rest",
                    "base_url": f"http://127.0.0.1:{port}/v1",
                    "allow_private_network": True,
                    "retries": {"attempts": 1},
                    "auth": {"type": "bearer", "token": "${env:TRACKER_TOKEN}"},
                }
            },
            "tools": [
                {
                    "name": "issue",
                    "description": "One issue.",
                    "parameters": {"number": {"type": "integer", "required": True}},
                    "rest": {"connection": "api", "path": "/issues/{number}"},
                }
            ],
            "tests": [
                {
                    "name": "gets an issue",
                    "tool": "issue",
                    "arguments": {"number": 1},
                    "expect": {"structured": {"title": "Bug"}},
                },
                {
                    "name": "a missing issue",
                    "tool": "issue",
                    "arguments": {"number": 2},
                    "expect": {"is_error": True, "text_contains": "no such issue"},
                },
            ],
        },
    )


@pytest.mark.network
def test_record_then_replay_offline(tmp_path: Path, api: ThreadingHTTPServer) -> None:
    file = tracker_pack(tmp_path, api.server_address[1])
    recording = tmp_path / "tracker.recording.json"
    result = run("packs", "test", str(file), "--record", env={"TRACKER_TOKEN": CANARY})
    assert result.exit_code == EXIT_OK, result.output
    assert f"---- tracker: recorded 2 exchange(s) in {recording}" in result.stdout
    text = recording.read_text()
    assert CANARY not in text  # not the token, nor its echo, nor the cookie
    entries = json.loads(text)
    assert [(e["request"]["method"], e["response"]["status"]) for e in entries] == [
        ("GET", 200),
        ("GET", 404),
    ]
    assert entries[0]["request"]["headers"]["Authorization"] == "<redacted>"

    api.shutdown()  # from here on, nothing answers on the network
    api.server_close()
    result = run("packs", "test", str(file), "--replay", env={"TRACKER_TOKEN": None})
    assert result.exit_code == EXIT_OK, result.output
    assert f"---- tracker: replayed from {recording}" in result.stdout
    assert result.stdout.splitlines()[-1] == "2 passed, 0 failed (1 pack(s))"

    data = yaml.safe_load(file.read_text())
    data["tests"][0]["arguments"] = {"number": 3}
    file.write_text(yaml.safe_dump(data))
    result = run("packs", "test", str(file), "--replay")
    assert result.exit_code == EXIT_FAILED
    assert (
        f"FAIL tracker: gets an issue: replay: GET http://127.0.0.1:{api.server_address[1]}"
        f"/v1/issues/3 is not in {recording} (record again with --record)"
    ) in result.stdout


def test_replay_without_a_recording(tmp_path: Path) -> None:
    file = tracker_pack(tmp_path, 9)
    result = run("packs", "test", str(file), "--replay")
    assert result.exit_code == EXIT_FAILED
    assert result.stdout.splitlines()[0] == (
        f"FAIL tracker: no recording {tmp_path / 'tracker.recording.json'}: "
        "run `catalyst packs test --record` first"
    )
