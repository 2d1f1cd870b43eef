"""``catalyst servers status|start|stop|restart|logs`` against a real ``catalyst serve`` process,
with auth on (an administrator's API key from ``$CATALYST_API_KEY``), and their exit codes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from catalyst_mcp.cli.common import EXIT_CONNECT, EXIT_FAILED, EXIT_USAGE
from catalyst_mcp.cli.servers_control import duration
from catalyst_mcp.security import apikeys
from tests.cli.admin_helpers import admin_env, ok
from tests.cli.helpers import run, write_config
from tests.conftest import FIXTURES, PYTHON, Process, free_port, wait_for_port

LEAN = {"command": PYTHON, "args": [str(FIXTURES / "lean_server.py")], "era": "legacy"}
MAIN = "from catalyst_mcp.cli.main import main; main()"


class Served:
    """A ``catalyst serve`` process with auth on, and an administrator's key."""

    def __init__(self, url: str, env: dict[str, str], key: str) -> None:
        self.url = url
        self.env = env
        self.key = key

    def run(self, *args: str, key: str | None = "admin") -> Any:
        env = {k: v for k, v in self.env.items() if k != "CATALYST_API_KEY"}
        env["CATALYST_API_KEY"] = self.key if key == "admin" else (key or "")
        return run("servers", *args, "--url", self.url, env=env)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    env = admin_env(tmp_path)
    config = write_config(
        tmp_path / "catalyst.yaml",
        {"lean": LEAN},
        auth={"enabled": True},
        packs={"path": None},
    )
    env["CATALYST_CONFIG"] = str(config)
    ok("users", "add", "root", "--role", "admin", env=env)
    created = ok("keys", "create", "root", env=env).stdout
    key = next(w for w in created.split() if apikeys.parse(w) is not None)
    port = free_port()
    gateway = Process(
        [PYTHON, "-c", MAIN, "serve", "--config", str(config), "--port", str(port)], env=env
    )
    try:
        wait_for_port(port)
        yield Served(f"http://127.0.0.1:{port}", env, key)
    finally:
        gateway.stop()


def pid_of(served: Served) -> int:
    result = served.run("status", "lean", "--json")
    assert result.exit_code == 0, result.output
    pid: int = json.loads(result.stdout)["pid"]
    return pid


@pytest.mark.subprocess
@pytest.mark.network
def test_status_stop_start_restart_logs_against_a_real_gateway(served: Served) -> None:
    result = served.run("status")
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()
    assert header.split() == [
        "NAME", "STATE", "PID", "UPTIME", "RESTARTS", "SHARING", "PROCESSES", "TOOLS", "CIRCUIT",
        "ERROR",
    ]  # fmt: skip
    cells = row.split()
    assert cells[:2] == ["lean", "ready"] and cells[4:8] == ["0", "shared", "-", "6"]
    pid = int(cells[2])

    detail = served.run("status", "lean")
    assert "  state:       ready" in detail.stdout and f"  pid:         {pid}" in detail.stdout

    stopped = served.run("stop", "lean")
    assert (stopped.exit_code, stopped.stdout) == (0, "stopped lean: stopped\n")
    again = served.run("stop", "lean")
    assert (again.exit_code, again.stdout) == (0, "lean was already stopped\n")
    status = served.run("status")
    assert status.exit_code == 0  # stopped on purpose is not a failure
    assert "stopped by root at " in status.stdout
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)

    started = served.run("start", "lean")
    assert started.exit_code == 0, started.output
    assert started.stdout.startswith("started lean: ready (pid ")
    assert started.stdout.endswith(", 6 tools)\n")
    restarted = served.run("restart", "lean")
    assert restarted.exit_code == 0 and restarted.stdout.startswith("restarted lean: ready")
    assert json.loads(served.run("status", "lean", "--json").stdout)["restarts"] == 1

    logs = served.run("logs", "lean", "--tail", "3")
    assert logs.exit_code == 0
    lines = logs.stdout.splitlines()
    assert len(lines) == 3 and all(line.startswith("lean-server ") for line in lines)
    record = json.loads(served.run("logs", "lean", "--json", "-n", "1").stdout)
    assert set(record) == {"seq", "at", "pid", "instance", "text"}
    assert record["instance"] == "shared" and record["text"].startswith("lean-server ")

    missing = served.run("restart", "ghost")
    assert missing.exit_code == EXIT_FAILED
    assert "no server named 'ghost'" in missing.stderr


@pytest.mark.subprocess
@pytest.mark.network
def test_credentials_are_needed_and_explained(served: Served) -> None:
    refused = served.run("status", key=None)
    assert refused.exit_code == EXIT_FAILED
    assert "the gateway wants an administrator's credentials: set $CATALYST_API_KEY" in (
        refused.stderr
    )
    wrong = served.run("stop", "lean", key="cat_aaaaaaaa_" + "b" * 43)
    assert wrong.exit_code == EXIT_FAILED
    assert "the key or token in use was refused" in wrong.stderr
    assert served.run("status").exit_code == 0  # nothing was stopped


@pytest.mark.subprocess
@pytest.mark.network
def test_logs_follow_prints_new_lines_until_interrupted(served: Served) -> None:
    env = {**os.environ, **served.env, "CATALYST_API_KEY": served.key}
    follower = subprocess.Popen(
        [PYTHON, "-c", MAIN, "servers", "logs", "lean", "--follow", "-n", "1", "--url", served.url],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert follower.stdout is not None
        first = follower.stdout.readline()
        assert first.startswith("lean-server ")
        time.sleep(0.3)
        served.run("restart", "lean")  # a new process writes a new start line
        second = follower.stdout.readline()
        assert second.startswith("lean-server ") and second != first
        os.killpg(follower.pid, signal.SIGINT)
        assert follower.wait(10) == 0
    finally:
        if follower.poll() is None:
            os.killpg(follower.pid, signal.SIGKILL)
            follower.wait(5)
        for stream in (follower.stdout, follower.stderr):
            if stream is not None:
                stream.close()


def test_an_unreachable_gateway_is_exit_4() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    for args in (["status"], ["stop", "x"], ["logs", "x"]):
        result = run("servers", *args, "--url", url)
        assert result.exit_code == EXIT_CONNECT, args
        assert result.stderr.startswith(f"error: cannot reach the gateway at {url}: ")


def test_the_key_comes_from_the_environment_only() -> None:
    result = run("servers", "status", "--api-key-env", "NOT_SET_ANYWHERE")
    assert result.exit_code == EXIT_USAGE and "$NOT_SET_ANYWHERE is not set" in result.stderr
    result = run("servers", "status", "--api-key-env", "not a name")
    assert result.exit_code == EXIT_USAGE


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (0, "0s"), (59, "59s"), (61, "1m1s"), (3 * 3600 + 120, "3h2m"), (90000, "1d1h")],
)
def test_durations(seconds: int | None, shown: str) -> None:
    assert duration(seconds) == shown
