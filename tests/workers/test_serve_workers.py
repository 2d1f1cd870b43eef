"""``catalyst serve --workers N`` as real processes: N workers answer on one port, a worker
killed with SIGKILL is replaced while the port keeps answering, SIGTERM stops them all (with
their stdio servers), ``auto`` means one per core, and workers that cannot start make the
command fail with their reason."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2
import pytest
import yaml

from catalyst_mcp.settings import Settings
from catalyst_mcp.workers.supervisor import cpu_count
from tests.conftest import EXTRA_UPSTREAM, PYTHON, free_port, stdio_upstream
from tests.fakes import (
    JSON_HEADERS,
    LEGACY,
    initialize_request,
    legacy_request,
    modern_headers,
    modern_request,
)

pytestmark = [pytest.mark.network, pytest.mark.subprocess]

CATALYST = str(Path(PYTHON).parent / "catalyst")


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            found.append(int(entry))
    return found


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Served:
    """``catalyst serve`` in its own process group; its stderr in a file (never a full pipe)."""

    def __init__(self, tmp_path: Path, settings: dict[str, Any], *args: str) -> None:
        self.port = settings["gateway"].get("port", 0)
        self.base = f"http://127.0.0.1:{self.port}"
        config = tmp_path / "catalyst.yaml"
        config.write_text(yaml.safe_dump(settings), encoding="utf-8")
        self.log = tmp_path / "serve.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [CATALYST, "serve", "--config", str(config), *args],
                cwd=tmp_path,
                env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")},
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while "catalyst: serving MCP at" not in self.stderr():
            if self.proc.poll() is not None:
                pytest.fail(f"catalyst serve exited ({self.proc.returncode}):\n{self.stderr()}")
            if time.monotonic() > deadline:
                pytest.fail(f"catalyst serve did not start:\n{self.stderr()}")
            time.sleep(0.05)

    def health(self) -> dict[str, Any]:
        # a fresh connection each time: each may land on any worker
        with httpx2.Client(timeout=5) as client:
            response = client.get(f"{self.base}/health")
        assert response.status_code == 200
        body: dict[str, Any] = response.json()
        return body

    def worker_pids(self, want: int, tries: int = 400) -> set[int]:
        """The worker pids /health names, asked until ``want`` different ones answered."""
        seen: set[int] = set()
        for _ in range(tries):
            seen.add(self.health()["pid"])
            if len(seen) >= want:
                break
        return seen

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(25)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)


def settings_for(port: int, **gateway: Any) -> dict[str, Any]:
    return {
        "gateway": {"port": port, **gateway},
        "servers": {"io": stdio_upstream(EXTRA_UPSTREAM)},
        "packs": {"path": None},
        "audit": {"enabled": False},
    }


@pytest.fixture
def two_workers(tmp_path: Path) -> Iterator[Served]:
    served = Served(tmp_path, settings_for(free_port()), "--workers", "2")
    try:
        served.wait_ready()
        yield served
    finally:
        served.stop()


def call_echo(base: str, text: str) -> str:
    body = modern_request("tools/call", {"name": "io__echo", "arguments": {"text": text}})
    headers = modern_headers(body)
    with httpx2.Client(timeout=10) as client:
        response = client.post(f"{base}/mcp", json=body, headers=headers)
    assert response.status_code == 200, response.text
    return str(response.json()["result"]["content"][0]["text"])


@pytest.mark.timeout(120)
def test_two_workers_answer_on_one_port(two_workers: Served) -> None:
    workers = children_of(two_workers.pid)
    assert len(workers) == 2, two_workers.stderr()
    assert two_workers.worker_pids(2) == set(workers)
    health = two_workers.health()
    assert health["status"] == "ok" and health["worker"] in (1, 2)
    assert call_echo(two_workers.base, "hello") == "hello"
    for worker in workers:  # each worker runs its own stdio server
        assert len(children_of(worker)) == 1
    assert "with 2 workers" in two_workers.stderr()
    assert "legacy-era client" in two_workers.stderr()  # without shared sessions: said at start


@pytest.mark.timeout(120)
def test_a_killed_worker_is_restarted_and_the_port_keeps_answering(two_workers: Served) -> None:
    first = set(children_of(two_workers.pid))
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while alive(victim):  # its sockets close as it dies (what was queued on them is reset)
        assert time.monotonic() < deadline
        time.sleep(0.005)
    # from then on the port answers all along: new connections go to the worker still alive
    for i in range(30):
        assert call_echo(two_workers.base, f"during {i}") == f"during {i}"
    deadline = time.monotonic() + 30
    while True:
        now = set(children_of(two_workers.pid))
        if len(now) == 2 and victim not in now:
            break
        assert time.monotonic() < deadline, f"no replacement for {victim}: {two_workers.stderr()}"
        time.sleep(0.1)
    replacement = (now - first).pop()
    seen = two_workers.worker_pids(2)
    assert replacement in seen and victim not in seen
    assert f"worker 1 (pid {victim}) was killed by SIGKILL" in two_workers.stderr() or (
        f"(pid {victim}) was killed by SIGKILL" in two_workers.stderr()
    )


@pytest.mark.timeout(120)
def test_sigterm_stops_every_worker_and_their_servers(two_workers: Served) -> None:
    workers = children_of(two_workers.pid)
    upstreams = [pid for worker in workers for pid in children_of(worker)]
    assert len(workers) == 2 and len(upstreams) == 2
    os.kill(two_workers.pid, signal.SIGTERM)
    assert two_workers.proc.wait(30) == 0, two_workers.stderr()
    deadline = time.monotonic() + 10
    while any(alive(pid) for pid in workers + upstreams):
        assert time.monotonic() < deadline, "a worker or its stdio server outlived the stop"
        time.sleep(0.05)
    with pytest.raises(httpx2.TransportError):
        httpx2.get(f"{two_workers.base}/health", timeout=2)


@pytest.mark.timeout(120)
def test_workers_stop_when_their_supervisor_is_killed(two_workers: Served) -> None:
    workers = children_of(two_workers.pid)
    os.kill(two_workers.pid, signal.SIGKILL)
    two_workers.proc.wait(5)
    deadline = time.monotonic() + 20
    while any(alive(pid) for pid in workers):
        assert time.monotonic() < deadline, "a worker outlived its supervisor"
        time.sleep(0.05)


@pytest.mark.timeout(120)
def test_workers_auto_is_one_per_core(tmp_path: Path) -> None:
    port = free_port()
    served = Served(tmp_path, settings_for(port), "--workers", "auto")
    try:
        served.wait_ready()
        cores = cpu_count()
        if cores == 1:  # one worker: the gateway serves in the process itself
            assert served.health() == {"status": "ok"}
        else:
            assert len(children_of(served.pid)) == cores
            assert len(served.worker_pids(cores)) == cores
            assert f"with {cores} workers" in served.stderr()
    finally:
        served.stop()


@pytest.mark.timeout(120)
def test_workers_from_the_environment(tmp_path: Path) -> None:
    """``CATALYST_GATEWAY__WORKERS=auto catalyst serve``, as docs/deploy.md shows it."""
    port = free_port()
    os.environ["CATALYST_GATEWAY__WORKERS"] = "auto"
    try:
        served = Served(tmp_path, settings_for(port))
    finally:
        del os.environ["CATALYST_GATEWAY__WORKERS"]
    try:
        served.wait_ready()
        if cpu_count() > 1:
            assert len(children_of(served.pid)) == cpu_count()
    finally:
        served.stop()


@pytest.mark.timeout(120)
def test_workers_that_cannot_start_fail_the_command_with_their_reason(tmp_path: Path) -> None:
    # a database nobody listens on: every worker's start-up fails (the supervisor never opens it)
    settings = settings_for(free_port())
    settings["audit"] = {"enabled": True}
    settings["storage"] = {"url": f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"}
    served = Served(tmp_path, settings, "--workers", "2")
    try:
        code = served.proc.wait(90)
    finally:
        served.stop()
    err = served.stderr()
    assert code != 0
    assert "the workers could not start" in err and "worker 1:" in err, err
    assert "catalyst: serving MCP" not in err


def test_a_taken_port_is_reported_once_by_the_supervisor(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        served = Served(tmp_path, settings_for(port), "--workers", "2")
        try:
            code = served.proc.wait(30)
        finally:
            served.stop()
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}" in served.stderr()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "0"], "--workers: '0' is not a number of processes"),
        (["--workers", "many"], "--workers: 'many' is not a number of processes"),
        (["--workers", "2", "--stdio"], "--workers serves HTTP"),
    ],
)
def test_bad_workers_options_are_refused(tmp_path: Path, args: list[str], message: str) -> None:
    done = subprocess.run(
        [CATALYST, "serve", *args],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")},
    )
    assert done.returncode != 0
    assert message in done.stderr


def worker_and_status(base: str, server: str) -> tuple[int, str]:
    """One worker's pid and what its /ready says of ``server`` (one connection: one worker)."""
    with httpx2.Client(timeout=5) as client:
        pid = int(client.get(f"{base}/health").json()["pid"])
        report = client.get(f"{base}/ready").json()
    (entry,) = [s for s in report["servers"] if s["name"] == server]
    return pid, str(entry["status"])


@pytest.mark.timeout(120)
def test_a_server_stopped_through_one_workers_api_stops_in_every_worker(
    two_workers: Served,
) -> None:
    pytest.importorskip(
        "catalyst_mcp.cluster.announce",
        reason="this build announces no configuration changes (cluster/announce.py)",
    )
    with httpx2.Client(timeout=10) as client:
        response = client.post(f"{two_workers.base}/api/v1/servers/io/stop")
    assert response.status_code == 200, response.text
    statuses: dict[int, str] = {}
    deadline = time.monotonic() + 10
    while len(statuses) < 2 or set(statuses.values()) != {"stopped"}:
        assert time.monotonic() < deadline, f"not stopped everywhere: {statuses}"
        pid, status = worker_and_status(two_workers.base, "io")
        statuses[pid] = status
    while "applied admin.servers.stop made on another worker" not in two_workers.stderr():
        assert time.monotonic() < deadline, two_workers.stderr()  # logged once it is done
        time.sleep(0.05)


@pytest.mark.timeout(120)
def test_a_legacy_session_is_known_only_to_the_worker_that_made_it(two_workers: Served) -> None:
    """What the start-up warning and docs/deploy.md say: without shared session state, another
    worker answers a legacy session's request with 404."""
    from catalyst_mcp.workers.serve import shared_sessions

    if shared_sessions(Settings()):  # pragma: no cover - never by default
        pytest.skip("sessions are shared")
    with httpx2.Client(timeout=10) as client:
        owner = int(client.get(f"{two_workers.base}/health").json()["pid"])
        response = client.post(
            f"{two_workers.base}/mcp", json=initialize_request(), headers=JSON_HEADERS
        )
        assert response.status_code == 200, response.text
        session = response.headers["mcp-session-id"]
    headers = {**JSON_HEADERS, "mcp-session-id": session, "mcp-protocol-version": LEGACY}
    answers: dict[bool, int] = {}
    deadline = time.monotonic() + 30
    while len(answers) < 2:
        assert time.monotonic() < deadline, answers
        with httpx2.Client(timeout=10) as client:  # a new connection: any worker
            pid = int(client.get(f"{two_workers.base}/health").json()["pid"])
            ping = client.post(
                f"{two_workers.base}/mcp", json=legacy_request("ping"), headers=headers
            )
        answers[pid == owner] = ping.status_code
    assert answers == {True: 200, False: 404}


@pytest.mark.timeout(120)
def test_workers_share_one_unix_socket_and_remove_it_at_exit(tmp_path: Path) -> None:
    path = tmp_path / "gw.sock"
    served = Served(tmp_path, settings_for(0), "--workers", "2", "--uds", str(path))
    try:
        served.wait_ready()
        assert f"on the Unix socket {path} with 2 workers" in served.stderr()
        assert oct(path.stat().st_mode & 0o777) == oct(0o600)
        seen: set[int] = set()
        deadline = time.monotonic() + 30
        while len(seen) < 2:  # one queue, two workers accepting from it: both answer in time
            assert time.monotonic() < deadline, seen
            transport = httpx2.HTTPTransport(uds=str(path))
            with httpx2.Client(transport=transport, base_url="http://localhost") as client:
                seen.add(int(client.get("/health").json()["pid"]))
        assert seen == set(children_of(served.pid))
    finally:
        served.stop()
    assert served.proc.returncode == 0
    assert not path.exists()
