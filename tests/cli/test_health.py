"""``catalyst health`` against canned HTTP answers and a real running gateway."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.cli.common import EXIT_CONNECT, EXIT_FAILED, EXIT_USAGE
from tests.cli.helpers import run, write_config
from tests.conftest import PYTHON, Process, free_port, wait_for_port

pytestmark = pytest.mark.network

DEGRADED = {
    "status": "degraded",
    "gateway": {"name": "catalyst", "version": "9.9"},
    "servers": [
        {"name": "a", "status": "ready", "transport": "stdio", "era": "modern", "tools": 2},
        {"name": "b", "status": "failed", "transport": "sse", "error": "b: cannot connect"},
    ],
    "collisions": {"tools": {"echo": ["a", "c"]}},
    "database": {"status": "ready"},
    "redis": {
        "status": "failed",
        "error": "Redis at redis://127.0.0.1:1/0 failed: ConnectionError",
    },
    "packs": {"status": "failed", "served": 2, "problems": 1},
    "pack_problems": ["crm.yaml:3: tools: field required"],
}


class _Canned(BaseHTTPRequestHandler):
    answers: dict[str, tuple[int, Any]] = {}

    def do_GET(self) -> None:
        status, body = self.answers.get(self.path, (404, {"error": "not found"}))
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def canned() -> Iterator[tuple[str, dict[str, tuple[int, Any]]]]:
    """A loopback HTTP server answering GETs from a dict: (base URL, path -> (status, body))."""
    answers: dict[str, tuple[int, Any]] = {}
    handler = type("Handler", (_Canned,), {"answers": answers})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", answers
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_degraded_gateway_is_exit_1_with_a_server_table(
    canned: tuple[str, dict[str, tuple[int, Any]]],
) -> None:
    url, answers = canned
    answers.update({"/health": (200, {"status": "ok"}), "/ready": (200, DEGRADED)})
    result = run("health", "--url", url)
    assert result.exit_code == EXIT_FAILED
    lines = result.stdout.splitlines()
    assert lines[0] == f"gateway {url}: degraded (catalyst 9.9), 1/2 servers ready"
    assert lines[1].split()[:3] == ["NAME", "TRANSPORT", "STATUS"]
    assert lines[2].split() == ["a", "stdio", "ready", "modern", "2"]
    assert lines[3].split() == ["b", "sse", "failed", "cannot", "connect"]
    assert lines[5].split() == ["PART", "STATUS", "DETAIL"]
    assert lines[6].split() == ["database", "ready"]
    assert lines[7].split()[:3] == ["redis", "failed", "Redis"]
    assert lines[7].endswith("failed: ConnectionError")
    assert lines[8].split()[:4] == ["packs", "failed", "2", "served;"]
    assert lines[8].endswith("first: crm.yaml:3: tools: field required")
    assert "warning: tools 'echo' is offered by a, c" in result.stderr


def test_json_is_the_ready_report(canned: tuple[str, dict[str, tuple[int, Any]]]) -> None:
    url, answers = canned
    answers.update({"/health": (200, {"status": "ok"}), "/ready": (503, DEGRADED)})
    result = run("health", "--url", url + "/", "--json")
    assert result.exit_code == EXIT_FAILED
    assert json.loads(result.stdout) == DEGRADED


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({}, "is not a Catalyst gateway (GET /health answered HTTP 404)"),
        ({"/health": (200, b"<html>")}, "is not a Catalyst gateway"),
        ({"/health": (200, {"status": "ok"}), "/ready": (500, b"oops")}, "GET /ready answered"),
    ],
    ids=["no-health", "not-json", "no-report"],
)
def test_something_else_is_exit_4(
    canned: tuple[str, dict[str, tuple[int, Any]]], answers: dict[str, Any], message: str
) -> None:
    url, table = canned
    table.update(answers)
    result = run("health", "--url", url)
    assert result.exit_code == EXIT_CONNECT
    assert message in result.stderr


def test_unreachable_is_exit_4() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = run("health", "--url", url)
    assert result.exit_code == EXIT_CONNECT
    assert result.stderr.startswith(f"error: cannot reach the gateway at {url}: ")


def test_bad_url_is_a_usage_error() -> None:
    assert run("health", "--url", "ftp://127.0.0.1").exit_code == EXIT_USAGE


@pytest.mark.subprocess
def test_a_real_gateway_is_ready(tmp_path: Path, upstream_url: str) -> None:
    config = write_config(tmp_path / "c.yaml", {"web": {"url": upstream_url}})
    port = free_port()
    main = "from catalyst_mcp.cli.main import main; main()"
    gateway = Process([PYTHON, "-c", main, "serve", "--config", str(config), "--port", str(port)])
    try:
        wait_for_port(port)
        result = run("health", "--url", f"http://127.0.0.1:{port}")
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert lines[0].startswith(f"gateway http://127.0.0.1:{port}: ready (catalyst ")
        assert lines[0].endswith("1/1 servers ready")
        assert lines[2].split()[:4] == ["web", "streamable-http", "ready", "modern"]
    finally:
        gateway.stop()
