"""A run survives ``kill -9`` of a real ``catalyst serve``: restarted on the same database, the
gateway resumes the run after its last completed step, and no completed step runs again (the
executions are counted by the upstream, in a file that outlives every process)."""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from catalyst_mcp.orchestration.workflows.tasks import TASKS_EXTENSION
from tests.conftest import FIXTURES, PYTHON, Process, free_port
from tests.fakes import modern_headers, modern_request
from tests.orchestration.workflows.support import write
from tests.test_serve import CATALYST, wait_ready

pytestmark = [pytest.mark.network, pytest.mark.subprocess]

WORKFLOW = """
name: long
steps:
  - {id: a, tool: count__step, arguments: {name: a}}
  - {id: b, tool: count__step, arguments: {name: b}}
  - {id: c, tool: count__slow, arguments: {name: c, seconds: 2}}
  - {id: d, tool: count__step, arguments: {name: d}}
"""


def counts(path: Path) -> Counter[str]:
    if not path.exists():
        return Counter()
    return Counter(line.removeprefix("start:") for line in path.read_text().split())


def mcp(base: str, method: str, params: dict[str, Any]) -> dict[str, Any]:
    caps = {"extensions": {TASKS_EXTENSION: {}}}
    message = modern_request(method, params, capabilities=caps)
    headers = modern_headers(message)
    if "taskId" in params:
        headers["Mcp-Name"] = params["taskId"]  # SEP-2663: the task methods name their task
    response = httpx2.post(f"{base}/mcp", json=message, headers=headers)
    body: dict[str, Any] = response.json()
    assert "result" in body, body
    result: dict[str, Any] = body["result"]
    return result


@pytest.mark.parametrize("synchronous", ["normal", "full"])
def test_a_run_resumes_after_kill_9_without_repeating_finished_steps(
    tmp_path: Path, synchronous: str
) -> None:
    port = free_port()
    count_file = tmp_path / "counts"
    write(tmp_path / "workflows", "long", WORKFLOW)
    config = tmp_path / "catalyst.yaml"
    settings = {
        "gateway": {"port": port},
        "storage": {"url": f"sqlite+aiosqlite:///{tmp_path / 'c.db'}"},
        "packs": {"path": None},
        "workflows": {
            "path": str(tmp_path / "workflows"),
            "heartbeat_seconds": 0.3,
            "synchronous": synchronous,
        },
        "servers": {
            "count": {
                "command": PYTHON,
                "args": [str(FIXTURES / "counting_server.py")],
                "env": {
                    "COUNT_FILE": str(count_file),
                    "PYTHONPATH": os.pathsep.join([str(FIXTURES.parent.parent / "src")]),
                },
            }
        },
    }
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    base = f"http://127.0.0.1:{port}"
    first = Process([*CATALYST, "serve", "--config", str(config)], cwd=tmp_path)
    try:
        wait_ready(first, base)
        created = mcp(base, "tools/call", {"name": "workflows__long", "arguments": {}})
        task_id = created["taskId"]
        deadline = time.monotonic() + 20
        while counts(count_file)["c"] < 1:  # the slow step is running
            assert time.monotonic() < deadline, counts(count_file)
            time.sleep(0.02)
        os.killpg(first.pid, signal.SIGKILL)
        first.proc.wait(5)
    finally:
        first.stop()
    assert counts(count_file) == {"a": 1, "b": 1, "c": 1}
    second = Process([*CATALYST, "serve", "--config", str(config)], cwd=tmp_path)
    try:
        wait_ready(second, base)
        deadline = time.monotonic() + 30
        while True:
            task = mcp(base, "tasks/get", {"taskId": task_id})
            if task["status"] != "working":
                break
            assert time.monotonic() < deadline, task
            time.sleep(0.1)
    finally:
        second.stop()
    assert task["status"] == "completed", task
    assert task["result"].get("structuredContent") == {"result": "did d"}, task
    # a and b finished before the kill: never again; c was cut short: run again; d once
    assert counts(count_file) == {"a": 1, "b": 1, "c": 2, "d": 1}
